"""Compatibility with real third-party S3 clients from the venv: awscli, s3cmd, the minio
Python SDK and rclone, each against a real sealstore process with SSE-S3 (master-key KMS).

Every client's round trip checks sha256 equality of what comes back and that the stored
object is SSE-S3 (``x-amz-server-side-encryption: AES256`` on HEAD). Credentials reach the
CLIs only through 0600 config files, never argv, because process lists are world-readable.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sealstore.client.scan import scan_dir
from tests.integration.server import REGION, ROOT_PASSWORD, ROOT_USER, ServerProcess, base_env

MASTER_KEY = "clients-key:" + hashlib.sha256(b"third-party clients master").hexdigest()
MiB = 1024 * 1024
BIN = Path(sys.executable).parent


def content(size: int, seed: str) -> bytes:
    """Deterministic bytes in which every 16-byte window is distinctive."""
    out = bytearray()
    base = hashlib.sha256(seed.encode()).digest()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(base + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:size])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def private_file(path: Path, text: str) -> Path:
    """Write a credentials-bearing file that only its owner can read (created 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path


def run(argv: list[str], env: dict[str, str], timeout: float = 180) -> str:
    """Run a client CLI; fail with its output (never containing secrets: argv has none)."""
    for arg in argv:
        assert ROOT_PASSWORD not in arg
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (
        f"{argv[:3]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    assert ROOT_PASSWORD not in proc.stdout + proc.stderr
    return proc.stdout


def assert_sse_s3(s3, bucket: str, key: str, expected_sha: str) -> None:
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head.get("ServerSideEncryption") == "AES256", f"{key} is not SSE-S3"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == expected_sha


def assert_no_plaintext(srv: ServerProcess, data: bytes) -> None:
    res = scan_dir(str(srv.data_dir), lambda off, n: data[off : off + n], len(data))
    assert res.ok, f"plaintext at rest: {res.leaks[:2]}"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("clients")
    (root / "data").mkdir()
    server = ServerProcess(
        root / "data", base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY), root / "server.log"
    ).start()
    server.wait_ready()
    yield server
    server.stop()
    log = server.log_text()
    for secret in (ROOT_PASSWORD, MASTER_KEY.split(":")[1]):
        assert secret not in log


@pytest.fixture(scope="module")
def s3(srv: ServerProcess):
    return srv.client()


def clean_env(home: Path) -> dict[str, str]:
    """An environment with no inherited credentials or client configuration."""
    return {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }


def awscli_env(tmp_path: Path, s3_options: str = "") -> dict[str, str]:
    """A clean environment for the awscli: root's credentials and the region in 0600 files
    (never argv), path-style addressing plus ``s3_options`` (indented lines of the ``s3``
    section, e.g. multipart sizes)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = clean_env(home)
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(
        private_file(
            tmp_path / "aws-credentials",
            f"[default]\naws_access_key_id = {ROOT_USER}\n"
            f"aws_secret_access_key = {ROOT_PASSWORD}\n",
        )
    )
    env["AWS_CONFIG_FILE"] = str(
        private_file(
            tmp_path / "aws-config",
            f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n{s3_options}",
        )
    )
    return env


def minio_client(srv: ServerProcess) -> Any:
    """minio-py's client for the plain-HTTP test server, as root."""
    from minio import Minio

    return Minio(
        srv.endpoint.removeprefix("http://"),
        access_key=ROOT_USER,
        secret_key=ROOT_PASSWORD,
        secure=False,
        region=REGION,
    )


# =========================================================================== awscli


def test_awscli(srv, s3, tmp_path) -> None:
    env = awscli_env(tmp_path, "    multipart_threshold = 8MB\n    multipart_chunksize = 5MB\n")
    aws = [str(BIN / "aws"), "--endpoint-url", srv.endpoint]
    run([*aws, "s3", "mb", "s3://cli-aws"], env)

    small = tmp_path / "small.txt"
    small.write_bytes(content(70_000, "aws-small"))
    run([*aws, "s3", "cp", str(small), "s3://cli-aws/small.txt", "--sse", "AES256"], env)
    assert_sse_s3(s3, "cli-aws", "small.txt", sha256_file(small))

    run(
        [
            *aws,
            "s3api",
            "put-object",
            "--bucket",
            "cli-aws",
            "--key",
            "api/put.bin",
            "--body",
            str(small),
            "--server-side-encryption",
            "AES256",
        ],
        env,
    )
    assert_sse_s3(s3, "cli-aws", "api/put.bin", sha256_file(small))

    big = tmp_path / "big.bin"
    big_data = content(20 * MiB, "aws-big")
    big.write_bytes(big_data)
    run([*aws, "s3", "cp", str(big), "s3://cli-aws/big.bin", "--sse", "AES256"], env)
    head = s3.head_object(Bucket="cli-aws", Key="big.bin")
    assert head["ETag"].endswith('-4"'), head["ETag"]  # 20 MiB in 5 MiB parts
    assert_sse_s3(s3, "cli-aws", "big.bin", sha256_file(big))
    back = tmp_path / "big.back"
    run([*aws, "s3", "cp", "s3://cli-aws/big.bin", str(back)], env)
    assert sha256_file(back) == sha256_file(big)
    assert_no_plaintext(srv, big_data)
    # Server-side copy of a 20 MiB object: awscli uses multipart UploadPartCopy with ranges.
    run(
        [*aws, "s3", "cp", "s3://cli-aws/big.bin", "s3://cli-aws/copy/big.bin", "--sse", "AES256"],
        env,
    )
    copied = s3.head_object(Bucket="cli-aws", Key="copy/big.bin")
    assert copied["ETag"].endswith('-4"'), copied["ETag"]  # 5 MiB copy parts
    assert_sse_s3(s3, "cli-aws", "copy/big.bin", sha256_file(big))

    tree = tmp_path / "tree"
    files = {"a.txt": 10, "sub/b.bin": 200_000, "sub/deeper/c d.txt": 3, "ü/ω.txt": 65536}
    for rel, size in files.items():
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content(size, rel))
    run([*aws, "s3", "sync", str(tree), "s3://cli-aws/tree/", "--sse", "AES256"], env)
    listing = run([*aws, "s3", "ls", "--recursive", "s3://cli-aws/tree/"], env)
    listed = sorted(line.split(None, 3)[3] for line in listing.splitlines() if line.strip())
    assert listed == sorted(f"tree/{rel}" for rel in files)
    top = run([*aws, "s3", "ls", "s3://cli-aws/tree/"], env)
    assert "PRE sub/" in top and "PRE ü/" in top and "a.txt" in top
    for rel in files:
        assert_sse_s3(s3, "cli-aws", f"tree/{rel}", sha256_file(tree / rel))
    # A second sync finds nothing to do (sizes and times match) and a sync back is exact.
    assert run([*aws, "s3", "sync", str(tree), "s3://cli-aws/tree/"], env).strip() == ""
    out = tmp_path / "tree.back"
    run([*aws, "s3", "sync", "s3://cli-aws/tree/", str(out)], env)
    for rel in files:
        assert sha256_file(out / rel) == sha256_file(tree / rel)
    run([*aws, "s3", "rm", "--recursive", "s3://cli-aws/tree/"], env)
    assert "Contents" not in s3.list_objects_v2(Bucket="cli-aws", Prefix="tree/")


# =========================================================================== s3cmd


def test_s3cmd(srv, s3, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    hostport = srv.endpoint.removeprefix("http://")
    cfg = private_file(
        tmp_path / "s3cfg",
        "[default]\n"
        f"access_key = {ROOT_USER}\n"
        f"secret_key = {ROOT_PASSWORD}\n"
        f"host_base = {hostport}\n"
        f"host_bucket = {hostport}\n"
        f"bucket_location = {REGION}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
        "multipart_chunk_size_mb = 5\n",
    )
    s3cmd = [
        str(BIN / "s3cmd"),
        "-c",
        str(cfg),
        "--no-ssl",
        f"--host={hostport}",
        "--host-bucket=",
        "--no-progress",
    ]
    run([*s3cmd, "mb", "s3://cli-s3cmd"], env)
    small = tmp_path / "small.bin"
    small.write_bytes(content(100_000, "s3cmd-small"))
    run(
        [*s3cmd, "put", "--server-side-encryption", str(small), "s3://cli-s3cmd/dir/small.bin"], env
    )
    assert_sse_s3(s3, "cli-s3cmd", "dir/small.bin", sha256_file(small))

    big = tmp_path / "big.bin"
    big.write_bytes(content(12 * MiB + 7, "s3cmd-big"))
    run([*s3cmd, "put", "--server-side-encryption", str(big), "s3://cli-s3cmd/big.bin"], env)
    assert s3.head_object(Bucket="cli-s3cmd", Key="big.bin")["ETag"].endswith('-3"')
    assert_sse_s3(s3, "cli-s3cmd", "big.bin", sha256_file(big))

    back = tmp_path / "big.back"
    run([*s3cmd, "get", "s3://cli-s3cmd/big.bin", str(back)], env)
    assert sha256_file(back) == sha256_file(big)
    listing = run([*s3cmd, "ls", "s3://cli-s3cmd/"], env)
    assert "DIR" in listing and "s3://cli-s3cmd/dir/" in listing
    assert "s3://cli-s3cmd/big.bin" in listing
    recursive = run([*s3cmd, "ls", "--recursive", "s3://cli-s3cmd/"], env)
    assert "s3://cli-s3cmd/dir/small.bin" in recursive
    # Multipart bookkeeping through s3cmd: list uploads, list parts, abort.
    uid = s3.create_multipart_upload(Bucket="cli-s3cmd", Key="pending/obj")["UploadId"]
    s3.upload_part(Bucket="cli-s3cmd", Key="pending/obj", UploadId=uid, PartNumber=1, Body=b"p")
    pending = run([*s3cmd, "multipart", "s3://cli-s3cmd"], env)
    assert uid in pending and "pending/obj" in pending
    parts = run([*s3cmd, "listmp", "s3://cli-s3cmd/pending/obj", uid], env)
    assert hashlib.md5(b"p").hexdigest() in parts
    run([*s3cmd, "abortmp", "s3://cli-s3cmd/pending/obj", uid], env)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="cli-s3cmd")
    run([*s3cmd, "del", "s3://cli-s3cmd/dir/small.bin"], env)
    run([*s3cmd, "del", "s3://cli-s3cmd/big.bin"], env)
    assert "Contents" not in s3.list_objects_v2(Bucket="cli-s3cmd")


# =========================================================================== minio SDK


def test_minio_sdk(srv, s3, tmp_path) -> None:
    from minio.sse import SseS3

    mc = minio_client(srv)
    mc.make_bucket("cli-minio")
    assert mc.bucket_exists("cli-minio")

    data = content(300_000, "minio-small")
    res = mc.put_object("cli-minio", "small.bin", io.BytesIO(data), len(data), sse=SseS3())
    assert res.etag == hashlib.md5(data).hexdigest()
    big = tmp_path / "big.bin"
    big.write_bytes(content(12 * MiB + 3, "minio-big"))
    mc.fput_object("cli-minio", "dir/big.bin", str(big), sse=SseS3(), part_size=5 * MiB)

    for key, sha in (
        ("small.bin", hashlib.sha256(data).hexdigest()),
        ("dir/big.bin", sha256_file(big)),
    ):
        st = mc.stat_object("cli-minio", key)
        assert st.metadata.get("x-amz-server-side-encryption") == "AES256"
        resp = mc.get_object("cli-minio", key)
        try:
            assert hashlib.sha256(resp.read()).hexdigest() == sha
        finally:
            resp.close()
            resp.release_conn()
        assert_sse_s3(s3, "cli-minio", key, sha)
    assert mc.stat_object("cli-minio", "dir/big.bin").size == big.stat().st_size
    back = tmp_path / "big.back"
    mc.fget_object("cli-minio", "dir/big.bin", str(back))
    assert sha256_file(back) == sha256_file(big)
    part = mc.get_object("cli-minio", "dir/big.bin", offset=5 * MiB - 10, length=20)
    try:
        assert part.read() == big.read_bytes()[5 * MiB - 10 : 5 * MiB + 10]
    finally:
        part.close()
        part.release_conn()

    top = sorted((o.object_name, o.is_dir) for o in mc.list_objects("cli-minio"))
    assert top == [("dir/", True), ("small.bin", False)]
    deep = sorted(o.object_name for o in mc.list_objects("cli-minio", recursive=True))
    assert deep == ["dir/big.bin", "small.bin"]
    mc.remove_object("cli-minio", "small.bin")
    # Bulk delete (DeleteObjects with Content-MD5, as the SDK sends it).
    from minio.deleteobjects import DeleteObject

    for i in range(5):
        mc.put_object("cli-minio", f"bulk/{i}", io.BytesIO(b"b"), 1, sse=SseS3())
    errors = list(
        mc.remove_objects(
            "cli-minio",
            [DeleteObject(f"bulk/{i}") for i in range(5)] + [DeleteObject("dir/big.bin")],
        )
    )
    assert errors == []
    assert list(mc.list_objects("cli-minio", recursive=True)) == []


# =========================================================================== rclone


def test_rclone(srv, s3, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    conf = private_file(
        tmp_path / "rclone.conf",
        "[ss]\n"
        "type = s3\n"
        "provider = Other\n"
        f"access_key_id = {ROOT_USER}\n"
        f"secret_access_key = {ROOT_PASSWORD}\n"
        f"endpoint = {srv.endpoint}\n"
        f"region = {REGION}\n"
        "force_path_style = true\n"
        "server_side_encryption = AES256\n",
    )
    rclone = [
        str(BIN / "rclone"),
        "--config",
        str(conf),
        "--retries",
        "1",
        "--low-level-retries",
        "1",
    ]
    src = tmp_path / "src"
    files = {"one.txt": 11, "nested/two.bin": 300_000, "nested/deep/three.bin": 65536 * 3}
    for rel, size in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content(size, "rclone" + rel))
    big = src / "big.bin"
    big.write_bytes(content(12 * MiB + 1, "rclone-big"))
    files["big.bin"] = big.stat().st_size

    run([*rclone, "mkdir", "ss:cli-rclone"], env)
    run(
        [
            *rclone,
            "copy",
            str(src),
            "ss:cli-rclone/data",
            "--s3-upload-cutoff",
            "5M",
            "--s3-chunk-size",
            "5M",
        ],
        env,
    )
    # `rclone check` compares sizes and MD5s: single-part ETags must be plaintext MD5s.
    run([*rclone, "check", str(src), "ss:cli-rclone/data"], env)
    lsf = run([*rclone, "lsf", "-R", "--files-only", "ss:cli-rclone/data"], env)
    assert sorted(lsf.split()) == sorted(files)
    top = run([*rclone, "lsf", "ss:cli-rclone/data"], env)
    assert sorted(top.split()) == sorted(["one.txt", "nested/", "big.bin"])
    for rel in files:
        assert_sse_s3(s3, "cli-rclone", f"data/{rel}", sha256_file(src / rel))
    assert s3.head_object(Bucket="cli-rclone", Key="data/big.bin")["ETag"].endswith('-3"')

    out = tmp_path / "out"
    run([*rclone, "copy", "ss:cli-rclone/data", str(out)], env)
    for rel in files:
        assert sha256_file(out / rel) == sha256_file(src / rel)
    # A changed local file is detected by `check` (so the check above could fail).
    (src / "one.txt").write_bytes(b"changed!!!!")
    proc = subprocess.run(
        [*rclone, "check", str(src), "ss:cli-rclone/data"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0 and "one.txt" in proc.stderr
    run([*rclone, "purge", "ss:cli-rclone/data"], env)
    assert "Contents" not in s3.list_objects_v2(Bucket="cli-rclone")
