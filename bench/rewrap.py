"""Benchmark `sealstore admin rewrap` against a real OpenBao and its effect on live requests.

`python bench/rewrap.py [--objects N] [--seconds S] [--json FILE]` starts OpenBao (dev mode,
quickstart setup plus the temporary rewrap grant the playbook gives) and one `sealstore
server` (SSE-S3 under transit), writes N small objects, then measures in one run:

* live GET latency (p50/p99, one client looping over the objects) with nothing else running;
* after a key rotation, `sealstore admin rewrap` with no rate cap (``--rate 0``, default
  concurrency 4): its rate in objects/s, and the live latency while it runs;
* after another rotation, rewrap capped below that (``--rate 15``): the same numbers.

It prints a table with each latency as a ratio of the quiet baseline and, with ``--json``,
writes the raw numbers. Everything listens on loopback ports the OS picks and is stopped by
PID at the end. Timings on a shared host are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bao_launcher
import procs
import sealstore_proc

REWRAP_POLICY = f"""
path "transit/rewrap/{bao_launcher.KEY_NAME}" {{ capabilities = ["update"] }}
path "transit/keys/{bao_launcher.KEY_NAME}" {{ capabilities = ["read"] }}
"""


def _client(server: sealstore_proc.Server) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class LatencyLoop:
    """One client GETting the objects in a loop; latencies in ms while it runs."""

    def __init__(self, server: sealstore_proc.Server, keys: list[str]) -> None:
        self.s3 = _client(server)
        self.keys = keys
        self.samples: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            key = self.keys[i % len(self.keys)]
            i += 1
            start = time.perf_counter()
            try:
                self.s3.get_object(Bucket="bench", Key=key)["Body"].read()
            except Exception:
                self.errors += 1
                continue
            self.samples.append((time.perf_counter() - start) * 1000)

    def __enter__(self) -> LatencyLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def stats(self) -> dict[str, float]:
        return {
            "requests": len(self.samples),
            "errors": self.errors,
            "p50_ms": round(statistics.median(self.samples), 2) if self.samples else float("nan"),
            "p99_ms": round(_percentile(self.samples, 0.99), 2),
        }


def _rewrap(env: dict[str, str], data: str, rate: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "sealstore", "admin", "rewrap", "--json", "--rate", rate, data]
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800, check=False)
    elapsed = time.perf_counter() - start
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    summary = next((x for x in lines if x["event"] == "summary"), None)
    if proc.returncode != 0 or summary is None:
        raise RuntimeError(f"rewrap failed ({proc.returncode}): {proc.stderr[-500:]}")
    rewrapped = summary["results"].get("rewrapped", 0)
    return {
        "rate_cap": float(rate),
        "objects": summary["objects"],
        "rewrapped": rewrapped,
        "seconds": round(elapsed, 2),
        "objects_per_s": round(summary["objects"] / elapsed, 1),
        "walk_seconds": summary["seconds"],
        "walk_objects_per_s": round(summary["objects"] / max(summary["seconds"], 1e-3), 1),
    }


def run(n_objects: int, seconds: float) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="sealstore-bench-rewrap-")
    os.chmod(workdir, 0o700)
    try:
        bao = bao_launcher.start(workdir, None)
        token = bao.root_token
        ep = bao.endpoint
        bao_launcher._api(ep, token, "PUT", "sys/policies/acl/rewrap", {"policy": REWRAP_POLICY})
        bao_launcher._api(
            ep, token, "POST", "auth/approle/role/my-role", {"policies": "minio-policy,rewrap"}
        )
        server = sealstore_proc.start("rewrap", "vault", workdir, None, bao)
        data = os.path.join(workdir, "data-rewrap")
        s3 = _client(server)
        s3.create_bucket(Bucket="bench")
        keys = [f"obj/{i:05d}" for i in range(n_objects)]
        body = os.urandom(4096)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: s3.put_object(Bucket="bench", Key=k, Body=body), keys))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": workdir,
            "PYTHONPATH": os.path.join(sealstore_proc.REPO, "src"),
            "MINIO_ROOT_USER": server.access_key,
            "MINIO_ROOT_PASSWORD": server.secret_key,
            "MINIO_SSE_VAULT_ENDPOINT": bao.endpoint,
            "MINIO_SSE_VAULT_APPROLE_ID": bao.role_id,
            "MINIO_SSE_VAULT_APPROLE_SECRET": bao.secret_id,
            "MINIO_SSE_VAULT_KEY_NAME": bao_launcher.KEY_NAME,
        }
        with LatencyLoop(server, keys) as quiet:
            time.sleep(seconds)
        results: dict[str, Any] = {"objects": n_objects, "baseline": quiet.stats(), "runs": []}
        for rate in ("0", "15"):
            bao_launcher._api(ep, token, "POST", f"transit/keys/{bao_launcher.KEY_NAME}/rotate")
            with LatencyLoop(server, keys) as busy:
                run_doc = _rewrap(env, data, rate)
            run_doc["live"] = busy.stats()
            results["runs"].append(run_doc)
        return results
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def table(results: dict[str, Any]) -> str:
    base = results["baseline"]
    rows = [
        "| scenario | rewrap obj/s (walk / incl. start) | live GETs | p50 ms | p99 ms "
        "| p50 ratio | p99 ratio |",
        "|---|---|---|---|---|---|---|",
        f"| no rewrap | - | {base['requests']} | {base['p50_ms']} | {base['p99_ms']} "
        "| 1.00 | 1.00 |",
    ]
    for r in results["runs"]:
        live = r["live"]
        cap = "no cap" if r["rate_cap"] == 0 else f"--rate {r['rate_cap']:g}"
        rows.append(
            f"| rewrap {cap} | {r['walk_objects_per_s']} / {r['objects_per_s']} "
            f"| {live['requests']} | {live['p50_ms']} | "
            f"{live['p99_ms']} | {live['p50_ms'] / base['p50_ms']:.2f} | "
            f"{live['p99_ms'] / base['p99_ms']:.2f} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=6.0, help="quiet baseline window")
    parser.add_argument("--json", help="write the raw numbers here")
    args = parser.parse_args()
    results = run(args.objects, args.seconds)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    print(json.dumps(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
