"""The ``scan`` subcommand: verdicts over the at-rest scan of one or many round-trip objects.

With ``--from-json`` it reads a kept round trip's JSON document and scans for every object at
once: encrypted objects must be absent from the data directory, and unencrypted ("plain"
mode) objects serve as controls that must be *found*, which proves the scan read the server's
real data directory rather than passing vacuously on the wrong path.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any, TextIO

from sealstore.client.config import ClientConfigError, human_size, parse_size
from sealstore.client.scan import (
    DEFAULT_INDEX_BYTES,
    MIN_RUN,
    ScanResult,
    default_jobs,
    scan_targets,
    seed_target,
)


@dataclass(frozen=True)
class Expectation:
    """One object to scan for and what a healthy deployment shows for it."""

    name: str
    seed: str
    size: int
    encrypted: bool


def add_parser(sub: Any) -> None:
    """Register ``scan`` on the subcommand parser."""
    sc = sub.add_parser(
        "scan",
        help="prove objects' plaintext is absent from a data dir",
        description="Regenerate round-trip plaintext from its seed and prove no 16-byte run of "
        "it appears in any file under --data-dir. Give --seed and --size for one object, or "
        "--from-json with the JSON of `roundtrip --keep --json` for all of its objects.",
    )
    sc.add_argument("--data-dir", required=True, help="the server's data directory")
    sc.add_argument("--seed", help="object seed from the round trip's JSON")
    sc.add_argument("--size", help="object size in bytes (units allowed)")
    sc.add_argument("--from-json", metavar="FILE", help="round-trip JSON document (all objects)")
    sc.add_argument(
        "--index-mib",
        type=int,
        default=DEFAULT_INDEX_BYTES >> 20,
        help="plaintext indexed per pass, bounds memory (default: %(default)s)",
    )
    sc.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="scanning processes (default: one per available core, at most 8)",
    )
    sc.add_argument("--json", action="store_true", help="print a JSON document on stdout")


def expectations(args: argparse.Namespace) -> list[Expectation]:
    """What to look for, from --seed/--size or from a round trip's JSON."""
    if args.from_json:
        if args.seed or args.size:
            raise ClientConfigError("give either --from-json or --seed/--size, not both")
        try:
            with open(args.from_json, encoding="utf-8") as fh:
                doc = json.load(fh)
            objects = doc["objects"]
            return [
                Expectation(str(o["key"]), str(o["seed"]), int(o["size"]), o["mode"] != "plain")
                for o in objects
            ]
        except OSError as exc:
            raise ClientConfigError(f"cannot read {args.from_json}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError):
            raise ClientConfigError(
                f"{args.from_json} is not the JSON of `sealstore-client roundtrip --json`"
            ) from None
    if not args.seed or args.size is None:
        raise ClientConfigError("give --seed and --size (or --from-json FILE)")
    return [Expectation(args.seed, args.seed, parse_size(args.size), True)]


def verdict(exps: list[Expectation], result: ScanResult) -> tuple[bool, str]:
    """(ok, reason) for the scan of ``exps``."""
    by_target: dict[str, list[Any]] = {}
    for leak in result.leaks:
        by_target.setdefault(leak.target, []).append(leak)
    for exp in exps:
        leaks = by_target.get(exp.name, [])
        if exp.encrypted and leaks:
            first = leaks[0]
            return False, (
                f"plaintext of {exp.name} found in {len(leaks)} file(s), first {first.path} at "
                f"offset {first.file_offset} (plaintext offset {first.plain_offset})"
            )
    if result.unreadable:
        return False, f"cannot read {result.unreadable[0]}"
    for exp in exps:
        if not exp.encrypted and exp.size >= MIN_RUN and not by_target.get(exp.name):
            return False, (
                f"unencrypted control object {exp.name} was not found: is --data-dir the "
                "server's data directory?"
            )
    return True, ""


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Execute ``scan`` and print its one line (or JSON)."""
    try:
        exps = expectations(args)
        targets = [seed_target(e.seed, e.size, e.name) for e in exps]
        result = scan_targets(
            args.data_dir,
            targets,
            index_bytes=max(1, args.index_mib) << 20,
            jobs=args.jobs or default_jobs(),
        )
    except (ClientConfigError, OSError) as exc:
        line = f"FAIL sealstore scan: {exc}"
        if args.json:
            print(json.dumps({"ok": False, "summary": line}, indent=2), file=out)
        print(line, file=err if args.json else out)
        return 1
    ok, reason = verdict(exps, result)
    encrypted = sum(1 for e in exps if e.encrypted)
    controls = sum(1 for e in exps if not e.encrypted and e.size >= MIN_RUN)
    what = (
        f"seed={args.seed} size={exps[0].size}"
        if not args.from_json
        else f"{encrypted} encrypted object(s), {controls} unencrypted control(s)"
    )
    facts = (
        f"{result.files} files, {human_size(result.bytes)} in {args.data_dir} scanned for "
        f"16-byte plaintext runs of {what}"
    )
    line = (
        f"OK sealstore scan: no plaintext at rest; {facts}"
        if ok
        else f"FAIL sealstore scan: {reason}; {facts}"
    )
    if args.json:
        found = {leak.target for leak in result.leaks}
        doc: dict[str, Any] = {
            "ok": ok,
            "summary": line,
            "data_dir": args.data_dir,
            "files": result.files,
            "bytes": result.bytes,
            "passes": result.passes,
            "objects": [
                {
                    "name": e.name,
                    "seed": e.seed,
                    "size": e.size,
                    "expect": "ciphertext" if e.encrypted else "plaintext-control",
                    "plaintext_found": e.name in found,
                }
                for e in exps
            ],
            "leaks": [vars(leak) for leak in result.leaks],
            "unreadable": result.unreadable,
        }
        print(json.dumps(doc, indent=2), file=out)
        print(line, file=err)
    else:
        print(line, file=out)
    return 0 if ok else 1
