"""``sealstore admin <rewrap|migrate-kms|reencrypt|verify> [options] DATA``.

Same environment (``MINIO_SSE_*``, ``SEALSTORE_*``, ``MINIO_ROOT_*``) and the same DATA
argument as ``sealstore server``, so an operator runs it with the service's EnvironmentFile
while the servers keep serving the same data (secrets never appear in argv). The KMS is the
plain back-end, without the server's data-key cache: verify must ask the real KMS.

Exit status: 0 done, 1 some objects failed (listed), 2 usage/configuration (one line).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sealstore.config import ConfigError, Settings

EXIT_FAILED = 1
EXIT_CONFIG = 2
LATER = ("migrate-kms", "reencrypt")
READY_TIMEOUT_S = 30.0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrency", type=int, default=4, help="objects in flight (default 4)")
    p.add_argument(
        "--rate", type=float, default=100.0, help="objects per second cap, 0 = none (default 100)"
    )
    p.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    p.add_argument("--state", type=Path, help="checkpoint file (default DATA/.sealstore-admin/)")
    p.add_argument("--restart", action="store_true", help="ignore a saved checkpoint")
    p.add_argument("--audit-log", type=Path, help="audit JSON lines (default beside the state)")
    p.add_argument("--metrics-file", type=Path, help="Prometheus textfile to keep updated")
    p.add_argument("--bucket", action="append", help="only this bucket (repeatable)")
    p.add_argument("--prefix", default="", help="only keys with this prefix")
    p.add_argument("data_dir", metavar="DATA", help="data directory (as for `sealstore server`)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sealstore admin",
        description="Whole-store maintenance against live data (resumable, rate-limited).",
    )
    sub = parser.add_subparsers(dest="job", metavar="JOB", required=True)
    rewrap = sub.add_parser("rewrap", help="re-wrap data keys to the newest transit key version")
    rewrap.add_argument("--dry-run", action="store_true", help="count, change nothing")
    _common(rewrap)
    verify = sub.add_parser("verify", help="check every object's key unseals (and data)")
    verify.add_argument("--deep", action="store_true", help="decrypt and check checksums too")
    _common(verify)
    for name in LATER:
        later = sub.add_parser(name, help="not implemented yet (issue 10)")
        _common(later)
    return parser


def _fail(message: str) -> int:
    print(f"sealstore admin: {message}", file=sys.stderr)
    return EXIT_CONFIG


async def _ready(kms: Any) -> None:
    """Wait for the KMS login (Vault) so a bad secret-id is one clear line, not N failures."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not kms.ready():
        if time.monotonic() > deadline:
            detail = getattr(kms, "last_error", None) or "no answer"
            raise ConfigError(f"KMS not usable: {detail}")
        await asyncio.sleep(0.2)


def _job(args: argparse.Namespace, store: Any, kms: Any) -> Any:
    from sealstore.kms.base import KMSRewrapUnsupportedError, RewrappingKMS

    if args.job == "verify":
        from sealstore.admin.verify import VerifyJob

        return VerifyJob(store, kms, deep=args.deep)
    from sealstore.admin.rewrap import RewrapJob

    if kms is None:
        raise ConfigError("rewrap needs a KMS (MINIO_SSE_VAULT_*)")
    if not isinstance(kms, RewrappingKMS):
        raise KMSRewrapUnsupportedError(f"rewrap does not apply to a {kms.kind} KMS")
    return RewrapJob(store, kms, dry_run=args.dry_run)


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from sealstore.admin import state as state_mod
    from sealstore.admin.progress import Reporter
    from sealstore.admin.records import AuditLog, Metrics
    from sealstore.admin.walker import JobAborted, Walker, WalkOptions
    from sealstore.kms.base import KMSRewrapUnsupportedError
    from sealstore.kms.factory import build_kms
    from sealstore.storage import StorageError
    from sealstore.storage.factory import open_store

    try:
        kms = build_kms(settings)
    except ValueError as exc:
        return _fail(f"configuration error: {exc}")
    store = open_store(args.data_dir)
    try:
        await store.open()
        if kms is not None:
            await kms.start()
            await _ready(kms)
        job = _job(args, store, kms)
        if hasattr(job, "prepare"):
            await job.prepare()
        state_path = args.state or state_mod.default_path(args.data_dir, job.name)
        checkpoint = state_mod.load(state_path, job.name, job.params(), restart=args.restart)
        audit_path = args.audit_log or state_path.with_name("audit.jsonl")
        json_lines = args.json or not sys.stderr.isatty()
        walker = Walker(
            store,
            job,
            WalkOptions(args.bucket, args.prefix, max(1, args.concurrency), args.rate),
            checkpoint,
            Reporter(job.name, json_lines=json_lines),
            AuditLog(audit_path, job.name),
            Metrics(args.metrics_file, job.name),
        )
        summary = await walker.run()
    except (KMSRewrapUnsupportedError, JobAborted) as exc:
        return _fail(str(exc))
    except (ConfigError, ValueError, StorageError) as exc:
        return _fail(str(exc))
    finally:
        if kms is not None:
            await kms.close()
        await store.close()
    if summary["failed"]:
        return EXIT_FAILED
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry point of ``sealstore admin`` (called by ``sealstore.cli``)."""
    args = build_parser().parse_args(list(argv))
    if args.job in LATER:
        return _fail(f"{args.job} is not implemented yet (issue 10 items 2-3)")
    try:
        settings = Settings.from_env(os.environ, args)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}")
    if "://" not in args.data_dir and not Path(args.data_dir).is_dir():
        return _fail(f"DATA {args.data_dir!r} is not a directory (no store to work on)")
    from sealstore.log import setup_logging

    setup_logging("WARNING", settings.log_format, settings.secrets())
    return asyncio.run(_run(args, settings))
