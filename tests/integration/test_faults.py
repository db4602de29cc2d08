"""Failure behaviour with real processes: KMS outages, crashes, wrong keys, token expiry."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.openbao import AppRoleCreds, OpenBao
from tests.integration.server import (
    REGION,
    ROOT_PASSWORD,
    ROOT_USER,
    ServerProcess,
    base_env,
)

KEY_A = "fault-key:" + hashlib.sha256(b"A").hexdigest()
KEY_B = "fault-key:" + hashlib.sha256(b"B").hexdigest()


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBao]:
    server = OpenBao().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def creds(bao: OpenBao) -> AppRoleCreds:
    return bao.configure_sse()


def status_of(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def wait_until(pred, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


# ----------------------------------------------------------------------------- KMS outages


def test_kms_paused_gives_503_writes_nothing_then_heals(
    tmp_path: Path, bao: OpenBao, creds: AppRoleCreds
) -> None:
    srv = ServerProcess(tmp_path / "d", base_env(**creds.env()), tmp_path / "log").start()
    try:
        srv.wait_ready()
        s3 = srv.client()
        s3.create_bucket(Bucket="outage")
        s3.put_object(Bucket="outage", Key="old", Body=b"old", ServerSideEncryption="AES256")
        bao.pause()
        try:
            with pytest.raises(ClientError) as e:
                s3.put_object(
                    Bucket="outage", Key="new", Body=b"new", ServerSideEncryption="AES256"
                )
            assert status_of(e) == 503
            assert code_of(e) == "ServiceUnavailable"
            assert "KMS" in e.value.response["Error"]["Message"]
            assert e.value.response["ResponseMetadata"]["HTTPHeaders"].get("retry-after")
            with pytest.raises(ClientError) as e:
                s3.put_object(
                    Bucket="outage", Key="old", Body=b"overwrite", ServerSideEncryption="AES256"
                )
            assert status_of(e) == 503
            with pytest.raises(ClientError) as e:
                s3.get_object(Bucket="outage", Key="old")
            assert status_of(e) == 503
            # plaintext service continues while the KMS is away
            s3.put_object(Bucket="outage", Key="plain", Body=b"plain")
            assert s3.get_object(Bucket="outage", Key="plain")["Body"].read() == b"plain"
            status, doc = srv.ready()
            assert status == 503 and doc["ready"] is False
        finally:
            bao.resume()
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="outage", Key="new")
        assert status_of(e) == 404
        srv.wait_ready(timeout=40)
        assert s3.get_object(Bucket="outage", Key="old")["Body"].read() == b"old"
        s3.put_object(Bucket="outage", Key="new", Body=b"new", ServerSideEncryption="AES256")
        assert s3.get_object(Bucket="outage", Key="new")["Body"].read() == b"new"
    finally:
        srv.stop()
    assert creds.secret_id not in srv.log_text()


def test_start_while_openbao_down_then_heals(
    tmp_path: Path, bao: OpenBao, creds: AppRoleCreds
) -> None:
    bao.stop()
    srv = ServerProcess(tmp_path / "d", base_env(**creds.env()), tmp_path / "log")
    try:
        srv.start()
        assert srv.get("/minio/health/live")[0] == 200
        status, doc = srv.ready()
        assert status == 503
        assert doc["kms"]["ok"] is False and doc["kms"]["error"]
        s3 = srv.client()
        s3.create_bucket(Bucket="early")
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="early", Key="e", Body=b"x", ServerSideEncryption="AES256")
        assert status_of(e) == 503
        bao.start()
        srv.wait_ready(timeout=60)
        s3.put_object(Bucket="early", Key="e", Body=b"healed", ServerSideEncryption="AES256")
        assert s3.get_object(Bucket="early", Key="e")["Body"].read() == b"healed"
    finally:
        srv.stop()
        if bao.proc is None or bao.proc.poll() is not None:
            bao.start()


# ----------------------------------------------------------------------------- crashes


def _partial_put(srv: ServerProcess, bucket: str, key: str, body: bytes, send: int) -> None:
    """Send a correctly signed PUT but only ``send`` bytes of its body, then leave it hanging."""
    url = f"{srv.endpoint}/{bucket}/{key}"
    req = AWSRequest(
        method="PUT",
        url=url,
        data=body,
        headers={"Content-Length": str(len(body)), "x-amz-server-side-encryption": "AES256"},
    )
    S3SigV4Auth(Credentials(ROOT_USER, ROOT_PASSWORD), "s3", REGION).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.putrequest("PUT", f"/{bucket}/{key}", skip_accept_encoding=True)
    for name, value in req.headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    view = memoryview(body)
    for off in range(0, send, 1 << 20):
        conn.send(view[off : min(send, off + (1 << 20))])
    time.sleep(1.0)  # let the server encrypt and write what it has
    return None


def test_kill9_during_put_leaves_old_object_or_nothing(tmp_path: Path) -> None:
    env = base_env(MINIO_SSE_MASTER_KEY=KEY_A)
    srv = ServerProcess(tmp_path / "d", env, tmp_path / "log").start()
    s3 = srv.client()
    s3.create_bucket(Bucket="crash")
    old = os.urandom(3 * 1024 * 1024)
    s3.put_object(Bucket="crash", Key="obj", Body=old, ServerSideEncryption="AES256")
    big = os.urandom(48 * 1024 * 1024)
    _partial_put(srv, "crash", "obj", big, 40 * 1024 * 1024)
    _partial_put(srv, "crash", "fresh", big, 40 * 1024 * 1024)
    srv.kill()
    srv.start()
    try:
        s3 = srv.client()
        got = s3.get_object(Bucket="crash", Key="obj")["Body"].read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(old).digest()
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="crash", Key="fresh")
        assert status_of(e) == 404
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="crash").get("Contents", [])]
        assert listed == ["obj"]
        # no orphaned partial data survives the restart sweep
        total = sum(p.stat().st_size for p in (tmp_path / "d").rglob("*") if p.is_file())
        assert total < 20 * 1024 * 1024, total
    finally:
        srv.stop()


def test_wrong_master_key_answers_403_and_keeps_serving(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d", base_env(MINIO_SSE_MASTER_KEY=KEY_A), tmp_path / "log")
    srv.start()
    s3 = srv.client()
    s3.create_bucket(Bucket="keys")
    s3.put_object(Bucket="keys", Key="enc", Body=b"sealed with A", ServerSideEncryption="AES256")
    s3.put_object(Bucket="keys", Key="plain", Body=b"not encrypted")
    srv.stop()
    srv.env = base_env(MINIO_SSE_MASTER_KEY=KEY_B)
    srv.start()
    try:
        s3 = srv.client()
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket="keys", Key="enc")
        assert status_of(e) == 403
        assert code_of(e) == "AccessDenied"
        assert s3.get_object(Bucket="keys", Key="plain")["Body"].read() == b"not encrypted"
        s3.put_object(
            Bucket="keys", Key="enc2", Body=b"sealed with B", ServerSideEncryption="AES256"
        )
        assert s3.get_object(Bucket="keys", Key="enc2")["Body"].read() == b"sealed with B"
        assert srv.proc is not None and srv.proc.poll() is None
    finally:
        srv.stop()
    log = srv.log_text()
    for secret in (KEY_A.split(":")[1], KEY_B.split(":")[1], ROOT_PASSWORD):
        assert secret not in log


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    env = base_env(MINIO_SSE_MASTER_KEY="nocolon-" + "ab" * 32)
    srv = ServerProcess(tmp_path / "d", env, tmp_path / "log")
    srv.start(wait=False)
    assert srv.proc is not None
    assert srv.proc.wait(20) == 2
    out = srv.log_text().strip().splitlines()
    assert len(out) == 1 and "MINIO_SSE_MASTER_KEY" in out[0]
    assert "ab" * 32 not in out[0]


@pytest.fixture
def tiny_data_fs(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs for the data directory (needs root and mount rights, else skipped)."""
    import subprocess

    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_answers_507_and_keeps_serving(tmp_path: Path, tiny_data_fs: Path) -> None:
    srv = ServerProcess(tiny_data_fs / "d", base_env(MINIO_SSE_MASTER_KEY=KEY_A), tmp_path / "log")
    with srv.start():
        s3 = srv.client()
        s3.create_bucket(Bucket="full")
        s3.put_object(Bucket="full", Key="small", Body=b"fits", ServerSideEncryption="AES256")
        with pytest.raises(ClientError) as e:
            s3.put_object(
                Bucket="full", Key="big", Body=os.urandom(12 << 20), ServerSideEncryption="AES256"
            )
        assert status_of(e) == 507 and code_of(e) == "XMinioStorageFull"
        assert "full" in e.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as missing:
            s3.head_object(Bucket="full", Key="big")
        assert status_of(missing) == 404
        # the failed upload left nothing behind, so the store keeps working
        s3.put_object(Bucket="full", Key="small", Body=b"again", ServerSideEncryption="AES256")
        assert s3.get_object(Bucket="full", Key="small")["Body"].read() == b"again"


def _server_exit(
    data_dir: Path, workers: int = 1, log_dir: Path | None = None
) -> tuple[int, str, str]:
    """Run ``sealstore server`` on ``data_dir`` expecting it to exit; (code, stdout, stderr).

    ``log_dir`` (default: beside the data directory) holds the harness's log path and metrics
    token file; a test whose data file system is read-only passes a writable one."""
    import subprocess

    log = (log_dir or data_dir.parent) / "unused.log"
    srv = ServerProcess(data_dir, base_env(), log, workers=workers)
    done = subprocess.run(
        srv.argv(), env=srv.env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.parametrize("workers", [1, 2])
def test_unusable_index_exits_2_with_one_line(tmp_path: Path, workers: int) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "sealstore.sqlite3").write_bytes(b"this is not an SQLite database" * 100)
    code, out, err = _server_exit(data, workers)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "cannot use data directory" in lines[0] and "not a database" in lines[0]
    assert "Traceback" not in out + err


_WORKER_SCRIPT = """
import os, sys
from sealstore import cli
from sealstore.config import Settings
settings = Settings.from_env(os.environ, None)
object.__setattr__(settings, "data_dir", __import__("pathlib").Path(sys.argv[2]))
object.__setattr__(settings, "workers", int(sys.argv[1]))
sock = cli.bind_socket("127.0.0.1", 0)
run = cli.run_worker if settings.workers == 1 else cli._supervise
sys.exit(run(settings, sock))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_that_cannot_open_the_store_exits_2_and_supervisor_stops(
    tmp_path: Path, workers: int
) -> None:
    """Bypasses the parent's preflight (the store broke after it): a worker reports one line
    and exits 2, and the supervisor stops instead of restarting it forever."""
    import subprocess
    import sys

    data = tmp_path / "d"
    data.mkdir()
    (data / "sealstore.sqlite3").write_bytes(b"this is not an SQLite database" * 100)
    done = subprocess.run(
        [sys.executable, "-c", _WORKER_SCRIPT, str(workers), str(data)],
        env=base_env(),
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("sealstore: storage error")]
    assert 1 <= len(lines) <= workers and "not a database" in lines[0]
    assert "Traceback" not in err


def test_read_only_data_dir_exits_2_with_one_line(tmp_path: Path, tiny_data_fs: Path) -> None:
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(tiny_data_fs)], check=True)
    code, out, err = _server_exit(tiny_data_fs / "d", log_dir=tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert "DATA_DIR" in lines[0] or "data directory" in lines[0]


def test_regular_file_data_dir_exits_2_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "file"
    data.write_bytes(b"x")
    code, _out, err = _server_exit(data)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "not a directory" in lines[0], err


def test_multiple_workers_and_graceful_sigterm(tmp_path: Path) -> None:
    env = base_env(MINIO_SSE_MASTER_KEY=KEY_A)
    srv = ServerProcess(tmp_path / "d", env, tmp_path / "log", workers=2).start()
    try:
        srv.wait_ready()
        s3 = srv.client()
        s3.create_bucket(Bucket="workers")
        for i in range(20):
            s3.put_object(
                Bucket="workers", Key=f"k{i}", Body=b"w" * i, ServerSideEncryption="AES256"
            )
        for i in range(20):
            assert s3.get_object(Bucket="workers", Key=f"k{i}")["Body"].read() == b"w" * i
        pids = {
            r.get("pid") for r in srv.log_records() if r.get("msg") == "sealstore ready to serve"
        }
        assert len(pids) == 2
    finally:
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) == 0


# ----------------------------------------------------------------------------- token expiry


@pytest.mark.slow
def test_outlives_two_token_periods(tmp_path: Path, bao: OpenBao, creds: AppRoleCreds) -> None:
    """The AppRole token has period=60s: the server must renew (or re-login) on its own."""
    srv = ServerProcess(tmp_path / "d", base_env(**creds.env()), tmp_path / "log").start()
    try:
        srv.wait_ready()
        s3 = srv.client()
        s3.create_bucket(Bucket="periods")
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < 130:
            body = f"round {i}".encode() * 100
            s3.put_object(Bucket="periods", Key=f"k{i}", Body=body, ServerSideEncryption="AES256")
            assert s3.get_object(Bucket="periods", Key=f"k{i}")["Body"].read() == body
            assert s3.get_object(Bucket="periods", Key="k0")["Body"].read() == b"round 0" * 100
            i += 1
            time.sleep(5)
        assert i >= 20
        assert srv.ready()[0] == 200
    finally:
        srv.stop()
    assert creds.secret_id not in srv.log_text()


# ----------------------------------------------------------------------------- tampering


def _blob_path(data_dir: Path, bucket: str, key: str) -> Path:
    import asyncio

    from sealstore.storage.fs import FSBackend

    async def find() -> Path:
        store = FSBackend(data_dir)
        await store.open()
        try:
            meta = await store.head(bucket, key)
            return store.layout.blob(meta.files[0])
        finally:
            await store.close()

    return asyncio.run(find())


def test_tampered_ciphertext_is_detected(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d", base_env(MINIO_SSE_MASTER_KEY=KEY_A), tmp_path / "log")
    srv.start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="tamper")
        s3.put_object(Bucket="tamper", Key="t", Body=b"x" * 5000, ServerSideEncryption="AES256")
        blob = _blob_path(tmp_path / "d", "tamper", "t")
        raw = bytearray(blob.read_bytes())
        raw[100] ^= 0x01
        blob.write_bytes(bytes(raw))
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket="tamper", Key="t")
        assert code_of(e) == "XMinioObjectTampered"
        assert status_of(e) == 500
        body = str(e.value.response)
        assert "Traceback" not in body
        # the server keeps serving
        s3.put_object(Bucket="tamper", Key="ok", Body=b"fine")
        assert s3.get_object(Bucket="tamper", Key="ok")["Body"].read() == b"fine"
    finally:
        srv.stop()
