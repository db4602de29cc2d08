"""``sealstore-client``: prove an S3 endpoint encrypts what it stores.

Subcommands:

* ``roundtrip``: PUT/GET/HEAD objects with SSE-S3 (header, auto-encryption, bucket default)
  and without, several sizes plus a multipart upload, optional range GETs; verifies sha256,
  ETags and the ``x-amz-server-side-encryption`` header; prints one summary line (or JSON).
* ``scan``: on a storage host, regenerate round-trip plaintext from its seed (one object, or
  every object of a kept run with ``--from-json``) and prove that no 16-byte run of it is
  anywhere in the data directory.
* ``kms-status``: print the server's KMS self-test.

Credentials come only from the environment or ``--env-file`` (never argv). Exit status 0 means
every check passed; 1 means a check failed or the endpoint could not be used; 2 is bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from sealstore.client import scan_cli
from sealstore.client.config import (
    DEFAULT_SIZES,
    ClientConfigError,
    Credentials,
    env_file_world_readable,
    human_size,
    load_credentials,
    parse_endpoint,
    parse_modes,
    parse_size,
    parse_sizes,
    read_env_file,
)
from sealstore.client.endpoint import FatalClientError, fetch_kms_status, make_s3
from sealstore.client.report import Report
from sealstore.client.roundtrip import Options, RoundTrip

DEFAULT_MODES = "sse-s3,bucket-default"
_CRED_HELP = (
    "Credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or MINIO_ROOT_USER/MINIO_ROOT_PASSWORD "
    "from the environment, or --env-file PATH (KEY=VALUE lines, e.g. the server's "
    "EnvironmentFile). They are never accepted as arguments."
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", required=True, help="S3 endpoint URL, e.g. https://host:9000")
    parser.add_argument(
        "--region",
        default=None,
        help="SigV4 region (default: MINIO_REGION, AWS_REGION or us-east-1)",
    )
    parser.add_argument("--env-file", help="read credentials from this KEY=VALUE file")
    parser.add_argument(
        "--ca-bundle",
        help="PEM CA bundle for an https endpoint (default: AWS_CA_BUNDLE from --env-file or "
        "the environment; certificates are always verified)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document on stdout")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for --help tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="sealstore-client",
        description="Verify SSE-S3 encryption of an S3 endpoint end to end.",
        epilog=_CRED_HELP,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    rt = sub.add_parser("roundtrip", help="verified encrypted round trips", epilog=_CRED_HELP)
    _common(rt)
    rt.add_argument(
        "--bucket",
        help="bucket to use (default: sealstore-verify-<random>, created "
        "and removed); bucket-default mode uses <bucket>-bd",
    )
    rt.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="comma-separated object sizes, units allowed (default: %(default)s)",
    )
    rt.add_argument(
        "--multipart-size",
        default="12MiB",
        help="size of the multipart object per mode, 0 disables (default: %(default)s)",
    )
    rt.add_argument(
        "--modes",
        default=DEFAULT_MODES,
        help="sse-s3 (header), auto (server auto-encryption), bucket-default, plain "
        "(expects no encryption); default: %(default)s",
    )
    rt.add_argument(
        "--range-checks",
        action="store_true",
        help="range GETs at DARE package boundaries, part boundaries and the end",
    )
    rt.add_argument("--seed", help="content seed (default: random; recorded in the output)")
    rt.add_argument(
        "--keep",
        action="store_true",
        help="leave objects and buckets in place (for `scan` on the storage host)",
    )

    scan_cli.add_parser(sub)

    ks = sub.add_parser("kms-status", help="print the server's KMS self-test", epilog=_CRED_HELP)
    _common(ks)
    return parser


def _region(arg: str | None, env: dict[str, str]) -> str:
    for value in (arg, env.get("MINIO_REGION"), os.environ.get("MINIO_REGION")):
        if value:
            return value
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _credentials(args: argparse.Namespace, err: TextIO) -> tuple[Credentials, dict[str, str]]:
    file_env: dict[str, str] = {}
    if args.env_file:
        if env_file_world_readable(args.env_file):
            print(f"warning: {args.env_file} is world-readable and holds secrets", file=err)
        file_env = read_env_file(args.env_file)
    return load_credentials(os.environ, args.env_file), file_env


def _ca_bundle(arg: str | None, file_env: dict[str, str]) -> str | None:
    """--ca-bundle, else AWS_CA_BUNDLE of the env file (what sse_client writes), else of the
    environment; None means the system trust store."""
    return arg or file_env.get("AWS_CA_BUNDLE") or os.environ.get("AWS_CA_BUNDLE") or None


def _fail(prefix: str, reason: str, as_json: bool, out: TextIO, err: TextIO) -> int:
    line = f"FAIL {prefix}: {reason}"
    if as_json:
        print(json.dumps({"ok": False, "summary": line, "fatal": reason}, indent=2), file=out)
        print(line, file=err)
    else:
        print(line, file=out)
    return 1


def summary_line(report: Report) -> str:
    """The one line operators and playbooks read."""
    where = f"endpoint={report.endpoint}"
    if report.fatal:
        return f"FAIL sealstore roundtrip: {report.fatal} {where}"
    total = len(report.checks)
    passed = total - len(report.failures)
    size = human_size(sum(o.size for o in report.objects))
    sse = sorted({o.sse for o in report.objects if o.sse}) or ["none"]
    key = report.kms.key_id if report.kms and report.kms.key_id else "none"
    facts = (
        f"{passed}/{total} checks, {len(report.objects)} objects, {size}, sse={','.join(sse)}, "
        f"kms-key={key} seed={report.seed} {where}"
    )
    if report.ok:
        return f"OK sealstore roundtrip: {facts}"
    first = report.failures[0] if report.failures else None
    reason = f"{first.name} {first.object or ''}: {first.detail}" if first else "no checks ran"
    return f"FAIL sealstore roundtrip: {reason.replace('  ', ' ')} ({facts})"


def cmd_roundtrip(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the round trips and print the summary (or JSON)."""
    try:
        creds, file_env = _credentials(args, err)
        opts = Options(
            endpoint=parse_endpoint(args.endpoint),
            region=_region(args.region, file_env),
            modes=parse_modes(args.modes),
            sizes=parse_sizes(args.sizes),
            multipart_size=parse_size(args.multipart_size),
            range_checks=args.range_checks,
            keep=args.keep,
            bucket=args.bucket,
            ca_bundle=_ca_bundle(args.ca_bundle, file_env),
            seed=args.seed,
        )
        if 0 < opts.multipart_size <= 5 << 20:
            raise ClientConfigError("--multipart-size must be 0 or above 5MiB (two parts at least)")
        s3 = make_s3(opts.endpoint, opts.region, creds, opts.ca_bundle)
    except (ClientConfigError, FatalClientError) as exc:
        return _fail("sealstore roundtrip", str(exc), args.json, out, err)
    report = RoundTrip(s3, creds, opts).run()
    line = summary_line(report)
    if args.json:
        doc = report.to_json()
        doc["summary"] = line
        print(json.dumps(doc, indent=2), file=out)
        print(line, file=err)
    else:
        print(line, file=out)
    return 0 if report.ok else 1


def cmd_kms_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Print the KMS self-test of the server."""
    try:
        creds, file_env = _credentials(args, err)
        status = fetch_kms_status(
            parse_endpoint(args.endpoint),
            _region(args.region, file_env),
            creds,
            _ca_bundle(args.ca_bundle, file_env),
        )
    except (ClientConfigError, FatalClientError) as exc:
        return _fail("sealstore kms-status", str(exc), args.json, out, err)
    where = f"endpoint={args.endpoint}"
    if not status.available:
        line = (
            f"FAIL sealstore kms-status: the endpoint offers no KMS status ({status.error}) {where}"
        )
    elif status.ok:
        latency = f" latency={status.latency_ms:.1f}ms" if status.latency_ms is not None else ""
        line = (
            f"OK sealstore kms-status: key-id={status.key_id} kind={status.kind or 'unknown'}"
            f"{latency} {where}"
        )
    else:
        line = f"FAIL sealstore kms-status: {status.error} key-id={status.key_id} {where}"
    if args.json:
        doc = {
            "ok": status.available and status.ok,
            "summary": line,
            "status": status.raw,
            "key_id": status.key_id,
            "kind": status.kind,
            "error": status.error,
        }
        print(json.dumps(doc, indent=2), file=out)
        print(line, file=err)
    else:
        print(line, file=out)
    return 0 if status.available and status.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``sealstore-client`` and ``sealstore client``."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    commands = {
        "roundtrip": cmd_roundtrip,
        "scan": scan_cli.run,
        "kms-status": cmd_kms_status,
    }
    try:
        return commands[args.command](args, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        print("FAIL sealstore client: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
