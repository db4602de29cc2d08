"""Load generators: wrk with presigned URLs for small objects, streaming http.client for large.

boto3 spends ~2 ms of client CPU per request, which would measure the client, not the server.
wrk is a C load generator; presigned URLs (SigV4 in the query, host-only signature) let it
issue authenticated S3 requests without computing signatures. Large objects are few requests
with lots of bytes, where a Python client streaming 1 MiB buffers keeps up.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime

from sealstore.client.signing import Credentials, presign_url

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "presigned.lua")
REGION = "us-east-1"
_RESULT = re.compile(r"BENCH_RESULT (.*)")


@dataclass
class Cell:
    """One measured (configuration, size, operation)."""

    ops: int
    seconds: float
    bytes: int
    errors: int
    tool: str
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @property
    def mib_per_s(self) -> float:
        return self.bytes / self.seconds / (1 << 20) if self.seconds else 0.0


def presign(server, method: str, bucket: str, key: str = "", expires: int = 3600) -> str:
    path = f"/{bucket}/{urllib.parse.quote(key)}" if key else f"/{bucket}"
    return presign_raw(server, method, server.endpoint + path, expires=expires)


def presign_raw(
    server, method: str, url: str, headers: dict[str, str] | None = None, expires: int = 3600
) -> str:
    """Presign an already encoded ``url`` (query allowed); ``headers`` are signed too."""
    creds = Credentials(server.access_key, server.secret_key)
    now = datetime.now(UTC)
    return presign_url(method, url, creds, REGION, now, expires, headers=headers)


def _path_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def request(server, method: str, bucket: str, key: str = "", body: bytes = b"") -> int:
    """One small presigned request with http.client (bucket creation, seeding)."""
    host = urllib.parse.urlsplit(server.endpoint).netloc
    conn = http.client.HTTPConnection(host, timeout=60)
    try:
        conn.request(method, _path_query(presign(server, method, bucket, key)), body=body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def run_wrk(
    server,
    method: str,
    bucket: str,
    keys: list[str],
    size: int,
    workdir: str,
    seconds: float,
    connections: int,
    cpus: str | None,
) -> Cell:
    """Drive GET or PUT of ``size``-byte objects over ``keys`` with wrk for ``seconds``."""
    urls_file = os.path.join(workdir, f"urls-{method}.txt")
    with open(urls_file, "w", encoding="ascii") as fh:
        for key in keys:
            fh.write(_path_query(presign(server, method, bucket, key)) + "\n")
    body_file = os.path.join(workdir, "body.bin")
    with open(body_file, "wb") as fh:
        fh.write(os.urandom(size))
    host = urllib.parse.urlsplit(server.endpoint).netloc
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        LUA,
        server.endpoint + "/",
        "--",
        urls_file,
        body_file,
    ]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    env = dict(os.environ, BENCH_METHOD=method, BENCH_HOST=host)
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    match = _RESULT.search(out.stdout)
    if out.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout}")
    fields = dict(item.split("=") for item in match.group(1).split())
    ops = int(fields["requests"])
    errors = int(fields["status_errors"]) + int(fields["socket_errors"])
    secs = int(fields["duration_us"]) / 1e6
    return Cell(
        ops=ops - errors,
        seconds=secs,
        bytes=(ops - errors) * size,
        errors=errors,
        tool=f"wrk c={connections}",
        p50_ms=int(fields["p50_us"]) / 1000,
        p99_ms=int(fields["p99_us"]) / 1000,
    )


def _put_stream(conn: http.client.HTTPConnection, path: str, size: int, block: bytes) -> int:
    conn.putrequest("PUT", path)
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    sent = 0
    while sent < size:
        piece = block if size - sent >= len(block) else block[: size - sent]
        conn.send(piece)
        sent += len(piece)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def _get_stream(conn: http.client.HTTPConnection, path: str, buf: bytearray) -> tuple[int, int]:
    conn.request("GET", path)
    resp = conn.getresponse()
    view = memoryview(buf)
    total = 0
    while True:
        n = resp.readinto(view)
        if not n:
            break
        total += n
    return resp.status, total


def run_large(
    server, method: str, bucket: str, key: str, size: int, seconds: float, min_ops: int = 2
) -> Cell:
    """Sequential streaming PUTs or GETs of one large object over a keep-alive connection."""
    host = urllib.parse.urlsplit(server.endpoint).netloc
    conn = http.client.HTTPConnection(host, timeout=120)
    block = os.urandom(1 << 20)
    buf = bytearray(1 << 20)
    ops = errors = moved = 0
    start = time.perf_counter()
    try:
        while ops + errors < min_ops or time.perf_counter() - start < seconds:
            path = _path_query(presign(server, method, bucket, key))
            if method == "PUT":
                status, n = _put_stream(conn, path, size, block), size
            else:
                status, n = _get_stream(conn, path, buf)
            if status == 200 and n == size:
                ops += 1
                moved += n
            else:
                errors += 1
                if errors > 3:
                    raise RuntimeError(f"{method} {key}: HTTP {status}, {n} bytes")
    finally:
        conn.close()
    elapsed = time.perf_counter() - start
    return Cell(ops=ops, seconds=elapsed, bytes=moved, errors=errors, tool="http.client c=1")
