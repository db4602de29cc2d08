"""sealstore benchmark: PUT/GET throughput with no encryption, SSE-S3 (master key) and SSE-S3
(OpenBao transit), for 4 KiB, 1 MiB and 64 MiB objects, next to the single-core AES-256-GCM
ceiling and the DARE rate measured in the same run, and next to a peer measured in the same
run: SeaweedFS (``weed server -s3``) plain, with SSE-S3, and with SSE-S3 plus fsync. Prints
Markdown tables and writes a PNG bar chart.

Everything runs on 127.0.0.1: a real OpenBao (``bao server -dev``, AppRole + transit as in the
MinIO KMS quickstart), one real ``sealstore server`` per configuration (one worker, pinned to
its own core), wrk (C) for small objects and a streaming Python client for 64 MiB objects
(pinned to the other core). Every process started is stopped before exit.

    python bench/run.py [--seconds 3] [--output FILE] [--chart PNG] [--json FILE] [--no-peer]
                        [--baseline-src DIR]

``--baseline-src OTHER/src`` also runs every configuration from another sealstore tree (for
example a worktree of the previous commit) in the same run, interleaved with this one, and
prints this tree's rates as ratios of the baseline's: a before/after measured under the same
host load, which timings from two separate runs cannot give.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
try:
    import sealstore  # noqa: F401
except ImportError:
    sys.path.insert(1, os.path.join(REPO, "src"))

import bao_launcher  # noqa: E402
import crypto_rates  # noqa: E402
import loadgen  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
import sealstore_proc  # noqa: E402
import seaweed_proc  # noqa: E402

CONFIGS = [
    ("none", "plain", "no encryption"),
    ("sse-master-key", "master-key", "SSE-S3, master key"),
    ("sse-openbao", "vault", "SSE-S3, OpenBao transit"),
]
# The peer, same clients, same core: (name, seaweed_proc kind, title).
PEERS = [
    ("seaweedfs", "plain", "SeaweedFS, no encryption"),
    ("seaweedfs-sse", "sse", "SeaweedFS, SSE-S3 (bucket default)"),
    ("seaweedfs-sse-fsync", "sse-fsync", "SeaweedFS, SSE-S3 + fsync"),
]
SEALSTORE_DURABILITY = "fsync of data and index before the answer (every PUT)"
SIZES = [
    ("4 KiB", 4 << 10, "wrk", 16, 256),
    ("1 MiB", 1 << 20, "wrk", 4, 32),
    ("64 MiB", 64 << 20, "large", 1, 1),
]
BUCKET = "bench"


def _cpu_split() -> tuple[str | None, str | None]:
    """Server on core 0, load generator on core 1, when there are two cores or more."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return "0", "1"
    return None, None


def _crypto_on(cpus: str | None) -> tuple[float, float, float]:
    """Measure the crypto ceilings on the core the servers will use, then unpin."""
    before = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    try:
        aes = crypto_rates.aes_gcm_ceiling()
        dare_enc, dare_dec = crypto_rates.dare_rates()
    finally:
        os.sched_setaffinity(0, before)
    return aes, dare_enc, dare_dec


def _measure(server, op: str, size_row, workdir: str, seconds: float, cpus: str | None):
    _label, size, tool, conns, nkeys = size_row
    keys = [f"obj-{size}-{i}" for i in range(nkeys)]
    if tool == "wrk":
        return loadgen.run_wrk(server, op, BUCKET, keys, size, workdir, seconds, conns, cpus)
    return loadgen.run_large(server, op, BUCKET, keys[0], size, seconds)


def _seed(server, size_row) -> None:
    """Make every GET target exist, whatever wrk's PUT rotation happened to hit."""
    _label, size, tool, _conns, nkeys = size_row
    if tool != "wrk":
        return  # the large-object PUT cell wrote its single key
    body = os.urandom(size)
    for i in range(nkeys):
        status = loadgen.request(server, "PUT", BUCKET, f"obj-{size}-{i}", body)
        if status != 200:
            raise RuntimeError(f"{server.name}: seeding answered HTTP {status}")


def prepare(servers: dict, expect_encrypted: dict[str, bool]) -> dict[str, str]:
    """CreateBucket everywhere, the peer's bucket settings, then prove each server stores
    what it claims: ciphertext for the encrypting ones, plaintext (scan works) for plain."""
    checks = {}
    for name, server in servers.items():
        status = loadgen.request(server, "PUT", BUCKET)
        if status != 200:
            raise RuntimeError(f"{server.name}: CreateBucket answered HTTP {status}")
        if server.extra.get("kind"):
            seaweed_proc.configure_bucket(server, BUCKET)
        checks[name] = seaweed_proc.at_rest_check(
            server, BUCKET, server.data_dir, expect_encrypted[name]
        )
        print(f"bench: at rest {name}: {checks[name]}", file=sys.stderr, flush=True)
    return checks


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def measure_all(servers: dict, seconds: float, repeat: int, workdir: str, cpus: str | None) -> dict:
    """Best of ``repeat`` rounds per cell; configurations alternate within every round so
    that load from other work on the host spreads over all of them instead of one."""
    best: dict = {name: {row[0]: {} for row in SIZES} for name in servers}
    total = repeat * len(SIZES) * 2 * len(servers)
    done, started = 0, time.monotonic()
    for rnd in range(repeat):
        for row in SIZES:
            for op in ("PUT", "GET"):
                for name, server in servers.items():
                    if op == "GET" and rnd == 0:
                        _seed(server, row)
                    cell = _measure(server, op, row, workdir, seconds, cpus)
                    kept = best[name][row[0]].get(op)
                    if kept is None or cell.mib_per_s > kept.mib_per_s:
                        best[name][row[0]][op] = cell
                    done += 1
                    left = (time.monotonic() - started) / done * (total - done)
                    print(
                        f"  [cell {done}/{total} ETA {_eta(left)}] round {rnd + 1} {name:19} "
                        f"{row[0]:>6} {op:3} {cell.mib_per_s:8.1f} MiB/s {cell.ops_per_s:8.1f} "
                        f"ops/s errors {cell.errors}",
                        file=sys.stderr,
                        flush=True,
                    )
    return best


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "n/a"


BASELINE_SUFFIX = "@baseline"


def render_baseline(results: dict) -> str:
    """This tree vs the ``--baseline-src`` tree, per configuration and size (same run)."""
    lines = [
        "| configuration | size | PUT MiB/s this / baseline | GET MiB/s this / baseline | "
        "PUT ratio | GET ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, _kind, title in CONFIGS:
        for label, *_ in SIZES:
            this, base = results[name][label], results[name + BASELINE_SUFFIX][label]
            lines.append(
                f"| {title} | {label} | {this['PUT'].mib_per_s:.1f} / {base['PUT'].mib_per_s:.1f}"
                f" | {this['GET'].mib_per_s:.1f} / {base['GET'].mib_per_s:.1f} | "
                f"{_ratio(this['PUT'].mib_per_s, base['PUT'].mib_per_s)} | "
                f"{_ratio(this['GET'].mib_per_s, base['GET'].mib_per_s)} |"
            )
    return "\n".join(lines)


def render(results: dict, aes: float, dare_enc: float, dare_dec: float, meta: dict) -> str:
    lines = [
        "| configuration | size | PUT MiB/s | PUT ops/s | GET MiB/s | GET ops/s | "
        "PUT vs plain | GET vs plain | client |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    peers = [p for p in PEERS if p[0] in results]
    for name, _kind, title in CONFIGS + peers:
        for label, *_ in SIZES:
            cell = results[name][label]
            base = results["seaweedfs" if name.startswith("seaweedfs") else "none"][label]
            put, get = cell["PUT"], cell["GET"]
            lines.append(
                f"| {title} | {label} | {put.mib_per_s:.1f} | {put.ops_per_s:.0f} | "
                f"{get.mib_per_s:.1f} | {get.ops_per_s:.0f} | "
                f"{_ratio(put.mib_per_s, base['PUT'].mib_per_s)} | "
                f"{_ratio(get.mib_per_s, base['GET'].mib_per_s)} | {put.tool} |"
            )
    lines += [
        "",
        "| single-core crypto (same run) | MiB/s |",
        "|---|---:|",
        f"| AES-256-GCM ceiling (cryptography, 64 KiB packages) | {aes:.0f} |",
        f"| DARE 2.0 encrypt (sealstore.crypto.dare) | {dare_enc:.0f} |",
        f"| DARE 2.0 decrypt (sealstore.crypto.dare) | {dare_dec:.0f} |",
        "",
        host_note(meta, bool(peers)),
    ]
    if peers:
        lines += ["", "Peer comparison (same run):", "", report.peer_table(results)]
    rows = [
        (
            report.LABELS.get(name, name),
            meta["durability"].get(name, ""),
            meta["rss_mib"].get(name),
            meta["at_rest"].get(name, ""),
        )
        for name in results
    ]
    lines += ["", report.servers_table(rows)]
    errors = sum(c[op].errors for cfg in results.values() for c in cfg.values() for op in c)
    if errors:
        lines.append(f"Requests that failed during the run: {errors} (excluded from the rates).")
    return "\n".join(lines)


def host_note(meta: dict, peers: bool) -> str:
    """One paragraph: where and how everything ran (also the chart's footer)."""
    peer = (
        f"SeaweedFS {meta['peer_version']} as one `weed server -s3` process per configuration "
        "(Go sizes GOMAXPROCS to the pinned CPU), SSE-S3 via bucket default encryption; "
    )
    return (
        f"Host: {meta['cpu']}, {meta['cores']} cores, Python {meta['python']}; servers pinned "
        f"to CPU {meta['server_cpus']}, load generator to CPU {meta['client_cpus']}; "
        f"{meta['seconds']:.0f} s per cell, best of {meta['repeat']} interleaved rounds; "
        "one sealstore worker, SSE via MINIO_SSE_AUTO_ENCRYPTION; "
        + (peer if peers else "")
        + f"total {meta['elapsed']:.0f} s; 1-min load average {meta['load_start']:.1f} at "
        f"start, {meta['load_end']:.1f} at end (other work on the host makes numbers noisy)."
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _chart_path(args) -> str:
    """--chart, else next to --output, else results.png in a temp dir that outlives the run."""
    if args.chart:
        return args.chart
    if args.output:
        return os.path.splitext(args.output)[0] + ".png"
    return os.path.join(tempfile.mkdtemp(prefix="sealstore-bench-results-"), "results.png")


def _start_servers(args, workdir: str, server_cpus, client_cpus) -> tuple[dict, dict, dict]:
    """All servers of the run: sealstore configurations (+ baseline tree), then the peer."""
    print("bench: starting OpenBao", file=sys.stderr, flush=True)
    bao = bao_launcher.start(workdir, client_cpus)
    servers, encrypted, durability = {}, {}, {}
    for name, kind, _title in CONFIGS:
        names = [name] + ([name + BASELINE_SUFFIX] if args.baseline_src else [])
        for each in names:
            print(f"bench: starting server {each}", file=sys.stderr, flush=True)
            src = os.path.abspath(args.baseline_src) if each != name else None
            servers[each] = sealstore_proc.start(each, kind, workdir, server_cpus, bao, src=src)
            encrypted[each], durability[each] = kind != "plain", SEALSTORE_DURABILITY
    for name, kind, _title in [] if args.no_peer else PEERS:
        print(f"bench: starting SeaweedFS {name}", file=sys.stderr, flush=True)
        servers[name] = seaweed_proc.start(name, kind, workdir, server_cpus)
        encrypted[name], durability[name] = kind != "plain", seaweed_proc.DURABILITY[kind]
    return servers, encrypted, durability


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each cell")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the best cell is kept")
    parser.add_argument("--output", help="also write the Markdown table to this file")
    parser.add_argument(
        "--chart", help="PNG bar chart (default: next to --output, else a temp dir; printed)"
    )
    parser.add_argument("--json", help="write raw numbers as JSON to this file")
    parser.add_argument("--no-peer", action="store_true", help="skip the SeaweedFS peer")
    parser.add_argument(
        "--baseline-src",
        help="src/ of another sealstore tree to run beside this one (before/after ratios)",
    )
    args = parser.parse_args(argv)
    if args.baseline_src and not os.path.isdir(os.path.join(args.baseline_src, "sealstore")):
        print(f"bench: {args.baseline_src} has no sealstore package", file=sys.stderr)
        return 2
    if not shutil.which("wrk"):
        print("bench: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    peer_version = "" if args.no_peer else seaweed_proc.version()
    server_cpus, client_cpus = _cpu_split()
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    workdir = tempfile.mkdtemp(prefix="sealstore-bench-")
    results: dict = {}
    try:
        print("bench: crypto ceilings", file=sys.stderr, flush=True)
        aes, dare_enc, dare_dec = _crypto_on(server_cpus)
        servers, encrypted, durability = _start_servers(args, workdir, server_cpus, client_cpus)
        at_rest = prepare(servers, encrypted)
        results = measure_all(servers, args.seconds, args.repeat, workdir, client_cpus)
        rss = {name: procs.peak_rss_mib(server.proc) for name, server in servers.items()}
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "server_cpus": server_cpus or "any",
        "client_cpus": client_cpus or "any",
        "seconds": args.seconds,
        "repeat": args.repeat,
        "elapsed": time.monotonic() - started,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "peer_version": peer_version,
        "durability": durability,
        "rss_mib": rss,
        "at_rest": at_rest,
    }
    table = render(results, aes, dare_enc, dare_dec, meta)
    if args.baseline_src:
        table += "\n\nThis tree against " + args.baseline_src + " (same run):\n\n"
        table += render_baseline(results)
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(table + "\n")
    chart = _chart_path(args)
    try:
        report.chart(results, chart, host_note(meta, not args.no_peer))
        print(f"bench: chart written to {chart}", file=sys.stderr)
    except ImportError as exc:  # the numbers above are still worth having
        print(f"bench: no chart ({exc}; pip install -r requirements/dev.txt)", file=sys.stderr)
    if args.json:
        raw = {
            "meta": meta,
            "crypto": {"aes_gcm": aes, "dare_encrypt": dare_enc, "dare_decrypt": dare_dec},
            "cells": {
                cfg: {size: {op: vars(c) for op, c in ops.items()} for size, ops in cells.items()}
                for cfg, cells in results.items()
            },
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(raw, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
