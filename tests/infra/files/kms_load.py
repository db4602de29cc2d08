"""Steady, bounded SSE-S3 load for the KMS fault run: fixed-rate PUT + GET, sha256-checked.

Why a standalone script: it runs ON the client host (with the client venv's boto3), the way a real
S3 client sees the storage server, while the controller kills and restarts KMS nodes. boto3 retries
are off, so every error the storage server lets through is counted, not hidden. It stops when the
stop file appears or after --max-seconds, then reads back every object it wrote and writes one JSON
report (ops, errors with timestamps, longest gap between successes, read-back result).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import time
from typing import Any

import boto3
from botocore.config import Config


def _env(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                out[k] = v.strip().strip("'\"")
    return out


def _body(i: int, size: int) -> bytes:
    seed = hashlib.sha256(f"kms-load-{i}".encode()).digest()
    out = bytearray()
    n = 0
    while len(out) < size:
        out += hashlib.sha256(seed + n.to_bytes(8, "big")).digest()
        n += 1
    return bytes(out[:size])


def _sha(s3: Any, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--bucket", default="kms-load")
    ap.add_argument("--rate", type=float, default=4.0, help="PUT+GET pairs per second")
    ap.add_argument("--size", type=int, default=48 * 1024)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    env = _env(args.env_file)
    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        verify=env.get("AWS_CA_BUNDLE") or True,  # sse_client's CA bundle for an https endpoint
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=args.bucket)

    written: dict[str, str] = {}
    put_t: dict[str, float] = {}  # key -> seconds after start its PUT began (which phase wrote it)
    errors: list[dict[str, Any]] = []
    ops = 0
    last_ok = time.time()
    max_gap = 0.0
    lat: list[float] = []
    start = time.time()
    rng = random.Random(7)
    i = 0

    def record(op: str, key: str, t0: float, exc: Exception | None) -> None:
        nonlocal ops, last_ok, max_gap
        ops += 1
        now = time.time()
        lat.append(now - t0)
        if exc is None:
            max_gap = max(max_gap, now - last_ok)
            last_ok = now
        else:
            errors.append(
                {"t": round(t0 - start, 3), "op": op, "key": key, "error": repr(exc)[:300]}
            )

    while time.time() - start < args.max_seconds and not os.path.exists(args.stop_file):
        key = f"obj-{i:06d}"
        body = _body(i, args.size)
        t0 = time.time()
        try:
            resp = s3.put_object(
                Bucket=args.bucket, Key=key, Body=body, ServerSideEncryption="AES256"
            )
            if resp.get("ServerSideEncryption") != "AES256":
                raise RuntimeError(f"PUT answered SSE {resp.get('ServerSideEncryption')!r}")
            written[key] = hashlib.sha256(body).hexdigest()
            put_t[key] = round(t0 - start, 3)
            record("put", key, t0, None)
        except Exception as exc:  # every failure is counted, whatever its type
            record("put", key, t0, exc)
        if written:
            gkey = rng.choice(sorted(written))
            t0 = time.time()
            try:
                got = _sha(s3, args.bucket, gkey)
                if got != written[gkey]:
                    raise RuntimeError("sha256 mismatch")
                record("get", gkey, t0, None)
            except Exception as exc:
                record("get", gkey, t0, exc)
        i += 1
        delay = start + i / args.rate - time.time()
        if delay > 0:
            time.sleep(delay)
    load_seconds = time.time() - start

    verify_errors = []
    for key, sha in sorted(written.items()):
        try:
            got = _sha(s3, args.bucket, key)
            if got != sha:
                verify_errors.append({"key": key, "error": "sha256 mismatch"})
        except Exception as exc:
            verify_errors.append({"key": key, "error": repr(exc)[:300]})
    lat.sort()
    report = {
        "seconds": round(load_seconds, 1),
        "ops": ops,
        "errors": errors,
        "error_count": len(errors),
        "written": len(written),
        "verified": len(written) - len(verify_errors),
        "verify_errors": verify_errors[:20],
        "put_t": put_t,
        "max_gap_between_successes_s": round(max_gap, 3),
        "latency_p50_s": round(lat[len(lat) // 2], 3) if lat else None,
        "latency_p99_s": round(lat[int(len(lat) * 0.99)], 3) if lat else None,
        "latency_max_s": round(lat[-1], 3) if lat else None,
        "start_epoch": start,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
