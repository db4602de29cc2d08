"""The SSE client CLI as operators and the verify playbook run it: a real subprocess against
real sealstore servers (master key, auto-encryption, no KMS, OpenBao transit), checking exit
codes, the one-line summary, the JSON document, the at-rest scan and the failure lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealstore.client import content as client_content
from tests.integration.server import (
    REPO,
    ROOT_PASSWORD,
    ROOT_USER,
    ServerProcess,
    base_env,
    free_port,
)

KEY_ID = "client-test-key"
MASTER_KEY = f"{KEY_ID}:" + hashlib.sha256(b"client cli master").hexdigest()
OK_LINE = re.compile(
    r"^OK sealstore roundtrip: (\d+)/(\d+) checks, (\d+) objects, [\d.]+ (?:B|KiB|MiB|GiB), "
    r"sse=(\S+), kms-key=(\S+) seed=([0-9a-f]+) endpoint=(\S+)$"
)


def _start(tmp: Path, name: str, **env: str) -> ServerProcess:
    root = tmp / name
    root.mkdir()
    srv = ServerProcess(root / "data", base_env(**env), root / "server.log").start()
    srv.wait_ready()
    return srv


@pytest.fixture(scope="module")
def mk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _start(tmp_path_factory.mktemp("client"), "mk", MINIO_SSE_MASTER_KEY=MASTER_KEY)
    yield srv
    srv.stop()
    log = srv.log_text()
    assert ROOT_PASSWORD not in log and MASTER_KEY.split(":")[1] not in log


@pytest.fixture(scope="module")
def auto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _start(
        tmp_path_factory.mktemp("client"),
        "auto",
        MINIO_SSE_MASTER_KEY=MASTER_KEY,
        MINIO_SSE_AUTO_ENCRYPTION="on",
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _start(tmp_path_factory.mktemp("client"), "plain")
    yield srv
    srv.stop()


def client_env(**extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO / "src"),
        "MINIO_ROOT_USER": ROOT_USER,
        "MINIO_ROOT_PASSWORD": ROOT_PASSWORD,
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run_client(*args: str, env: dict[str, str] | None = None, timeout: float = 180):
    """Run ``python -m sealstore client ...`` (the same code as ``sealstore-client``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "sealstore", "client", *args],
        env=env if env is not None else client_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    for secret in (ROOT_PASSWORD, MASTER_KEY.split(":")[1]):
        assert secret not in proc.stdout and secret not in proc.stderr
    return proc


def test_roundtrip_master_key_json(mk_server: ServerProcess):
    proc = run_client(
        "roundtrip",
        "--endpoint",
        mk_server.endpoint,
        "--modes",
        "sse-s3,bucket-default,plain",
        "--sizes",
        "0,1,65536,1048577",
        "--multipart-size",
        "11MiB",
        "--range-checks",
        "--json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["fatal"] is None
    assert doc["kms_key_id"] == KEY_ID
    assert doc["kms"]["ok"] is True and doc["kms"]["kind"] == "master-key"
    # 3 modes x (4 sizes + 1 multipart)
    assert len(doc["objects"]) == 15
    names = {c["name"] for c in doc["checks"]}
    assert {"kms-status", "bucket-encryption", "put", "get", "head", "etag", "range"} <= names
    assert {"multipart"} <= names and all(c["ok"] for c in doc["checks"])
    for obj in doc["objects"]:
        sha, md5 = client_content.digests(obj["seed"], obj["size"])
        assert obj["sha256"] == sha
        assert obj["sse"] == (None if obj["mode"] == "plain" else "AES256")
        if obj["multipart"]:
            assert obj["parts"] == 3 and obj["etag"].endswith('-3"')
        else:
            assert obj["etag"] == f'"{md5}"'
    line = proc.stderr.strip().splitlines()[-1]
    m = OK_LINE.match(line)
    assert m, line
    assert m.group(1) == m.group(2) == str(len(doc["checks"]))
    assert m.group(5) == KEY_ID and m.group(6) == doc["seed"]
    assert doc["summary"] == line
    # The random buckets were removed again.
    listed = {b["Name"] for b in mk_server.client().list_buckets()["Buckets"]}
    assert not set(doc["buckets"]) & listed


def test_roundtrip_text_is_one_line(mk_server: ServerProcess):
    proc = run_client("roundtrip", "--endpoint", mk_server.endpoint, "--sizes", "1,70000")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    m = OK_LINE.match(lines[0])
    assert m and m.group(3) == "6" and m.group(4) == "AES256"  # sse-s3 + bucket-default


def test_existing_bucket_and_fixed_seed(mk_server: ServerProcess):
    s3 = mk_server.client()
    s3.create_bucket(Bucket="ops-verify")
    s3.put_object(Bucket="ops-verify", Key="keep-me", Body=b"not the client's")
    proc = run_client(
        "roundtrip",
        "--endpoint",
        mk_server.endpoint,
        "--bucket",
        "ops-verify",
        "--modes",
        "sse-s3,plain",
        "--sizes",
        "1,65537",
        "--multipart-size",
        "0",
        "--seed",
        "fixedseed",
        "--json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["seed"] == "fixedseed" and doc["buckets"] == ["ops-verify"]
    assert [o["seed"] for o in doc["objects"]] == [f"fixedseed.{i}" for i in range(4)]
    assert doc["objects"][1]["sha256"] == client_content.digests("fixedseed.1", 65537)[0]
    # The operator's bucket and its other objects stay; only the client's objects are removed.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ops-verify").get("Contents", [])]
    assert keys == ["keep-me"]


def test_keep_then_scan_proves_ciphertext_at_rest(mk_server: ServerProcess, tmp_path: Path):
    proc = run_client(
        "roundtrip",
        "--endpoint",
        mk_server.endpoint,
        "--modes",
        "sse-s3,plain",
        "--sizes",
        "65536,300001",
        "--multipart-size",
        "0",
        "--keep",
        "--json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kept"] is True
    data_dir = str(mk_server.data_dir)
    for obj in doc["objects"]:
        scan = run_client(
            "scan", "--data-dir", data_dir, "--seed", obj["seed"], "--size", str(obj["size"])
        )
        if obj["mode"] == "plain":
            # Negative control: the unencrypted object must be found, which proves the scan
            # really reads the server's files.
            assert scan.returncode == 1, scan.stdout
            assert scan.stdout.startswith(
                f"FAIL sealstore scan: plaintext of {obj['seed']} found in 1 file(s)"
            )
        else:
            assert scan.returncode == 0, scan.stdout
            assert scan.stdout.startswith("OK sealstore scan: no plaintext at rest;")
            files = int(re.search(r"; (\d+) files", scan.stdout).group(1))
            assert files >= 4
    # All objects in one go from the round trip's JSON; plain objects are must-find controls.
    report = tmp_path / "roundtrip.json"
    report.write_text(proc.stdout)
    scan = run_client("scan", "--data-dir", data_dir, "--from-json", str(report), "--json")
    assert scan.returncode == 0, scan.stdout + scan.stderr
    doc = json.loads(scan.stdout)
    assert doc["summary"].startswith("OK sealstore scan: no plaintext at rest;")
    assert doc["summary"].endswith("2 encrypted object(s), 2 unencrypted control(s)")
    found = {o["name"]: (o["expect"], o["plaintext_found"]) for o in doc["objects"]}
    assert sorted(found.values()) == [("ciphertext", False)] * 2 + [("plaintext-control", True)] * 2
    # The wrong directory cannot pass vacuously: the controls are missing there.
    empty = tmp_path / "not-the-data-dir"
    empty.mkdir()
    scan = run_client("scan", "--data-dir", str(empty), "--from-json", str(report))
    assert scan.returncode == 1
    assert scan.stdout.startswith("FAIL sealstore scan: unencrypted control object ")
    assert "is --data-dir the server's data directory?" in scan.stdout


def test_auto_encryption_mode(auto_server: ServerProcess):
    proc = run_client(
        "roundtrip", "--endpoint", auto_server.endpoint, "--modes", "auto", "--range-checks"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert OK_LINE.match(proc.stdout.strip())


def test_plain_mode_against_auto_server_fails_with_reason(auto_server: ServerProcess):
    proc = run_client(
        "roundtrip",
        "--endpoint",
        auto_server.endpoint,
        "--modes",
        "plain",
        "--sizes",
        "10",
        "--multipart-size",
        "0",
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith("FAIL sealstore roundtrip: put ")
    assert "sse=AES256 (want none: the server encrypts everything" in proc.stdout


def test_server_without_kms(plain_server: ServerProcess):
    ok = run_client("roundtrip", "--endpoint", plain_server.endpoint, "--modes", "plain")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "sse=none, kms-key=none" in ok.stdout
    bad = run_client(
        "roundtrip", "--endpoint", plain_server.endpoint, "--modes", "sse-s3", "--sizes", "1"
    )
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAIL sealstore roundtrip: put ")
    status = run_client("kms-status", "--endpoint", plain_server.endpoint)
    assert status.returncode == 1
    assert "offers no KMS status" in status.stdout


@pytest.mark.parametrize(
    ("user", "secret", "code"),
    [
        (ROOT_USER, "not-the-secret-at-all", "SignatureDoesNotMatch"),
        ("nobody-here", ROOT_PASSWORD, "InvalidAccessKeyId"),
    ],
)
def test_bad_credentials(mk_server: ServerProcess, user: str, secret: str, code: str):
    env = client_env(MINIO_ROOT_USER=user, MINIO_ROOT_PASSWORD=secret)
    proc = run_client("roundtrip", "--endpoint", mk_server.endpoint, env=env)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"FAIL sealstore roundtrip: bad credentials: {code} (")
    assert len(proc.stdout.splitlines()) == 1
    status = run_client("kms-status", "--endpoint", mk_server.endpoint, env=env)
    assert status.returncode == 1
    assert f"bad credentials: {code}" in status.stdout


def test_server_down():
    endpoint = f"http://127.0.0.1:{free_port()}"
    proc = run_client("roundtrip", "--endpoint", endpoint, "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    assert doc["fatal"] == f"endpoint unreachable: {endpoint} (connection refused)"
    proc = run_client("kms-status", "--endpoint", endpoint)
    assert proc.returncode == 1
    assert proc.stdout.startswith("FAIL sealstore kms-status: endpoint unreachable")


def test_env_file_credentials_and_kms_status(mk_server: ServerProcess, tmp_path: Path):
    env_file = tmp_path / "sealstore.env"
    env_file.write_text(
        f"# like the server's EnvironmentFile\nMINIO_ROOT_USER={ROOT_USER}\n"
        f'MINIO_ROOT_PASSWORD="{ROOT_PASSWORD}"\nMINIO_SSE_MASTER_KEY={MASTER_KEY}\n'
    )
    env_file.chmod(0o600)
    env = client_env(MINIO_ROOT_USER=None, MINIO_ROOT_PASSWORD=None)
    proc = run_client(
        "kms-status", "--endpoint", mk_server.endpoint, "--env-file", str(env_file), env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"OK sealstore kms-status: key-id={KEY_ID} kind=master-key")
    assert proc.stderr == ""
    env_file.chmod(0o644)
    proc = run_client(
        "roundtrip",
        "--endpoint",
        mk_server.endpoint,
        "--env-file",
        str(env_file),
        "--sizes",
        "1",
        "--multipart-size",
        "0",
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "world-readable" in proc.stderr
    missing = run_client("kms-status", "--endpoint", mk_server.endpoint, env=env)
    assert missing.returncode == 1 and "no credentials" in missing.stdout


# ------------------------------------------------------------------------ OpenBao transit mode


@pytest.fixture(scope="module")
def vault_server(tmp_path_factory: pytest.TempPathFactory, openbao) -> Iterator[ServerProcess]:
    creds = openbao.configure_sse(namespace="ns1")
    srv = _start(tmp_path_factory.mktemp("client"), "vault", **creds.env())
    yield srv
    srv.stop()
    assert creds.secret_id not in srv.log_text()


def test_roundtrip_vault_namespace(vault_server: ServerProcess):
    proc = run_client(
        "roundtrip",
        "--endpoint",
        vault_server.endpoint,
        "--modes",
        "sse-s3,bucket-default",
        "--range-checks",
        "--keep",
        "--json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    assert doc["kms_key_id"] == "my-minio-key" and doc["kms"]["kind"] == "vault"
    assert {o["sse"] for o in doc["objects"]} == {"AES256"}
    assert OK_LINE.match(doc["summary"])
    biggest = max(doc["objects"], key=lambda o: o["size"])
    scan = run_client(
        "scan",
        "--data-dir",
        str(vault_server.data_dir),
        "--seed",
        biggest["seed"],
        "--size",
        str(biggest["size"]),
        "--index-mib",
        "16",
        "--json",
    )
    assert scan.returncode == 0, scan.stdout
    report = json.loads(scan.stdout)
    assert report["ok"] is True and report["leaks"] == [] and report["bytes"] > biggest["size"]
    status = run_client("kms-status", "--endpoint", vault_server.endpoint, "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["kind"] == "vault"


def test_kms_outage_is_reported(tmp_path: Path, private_openbao):
    creds = private_openbao.configure_sse()
    srv = _start(tmp_path, "outage", **creds.env())
    try:
        args = ("roundtrip", "--endpoint", srv.endpoint, "--sizes", "1", "--multipart-size", "0")
        assert run_client(*args).returncode == 0
        private_openbao.stop()
        proc = run_client(*args, "--json")
        assert proc.returncode == 1
        doc = json.loads(proc.stdout)
        failed = [c for c in doc["checks"] if not c["ok"]]
        assert failed and failed[0]["name"] == "kms-status"
        assert doc["summary"].startswith("FAIL sealstore roundtrip: kms-status")
    finally:
        srv.stop()


def test_tls_error_is_one_clear_line(openbao_tls):
    proc = run_client("roundtrip", "--endpoint", openbao_tls.address, "--sizes", "1")
    assert proc.returncode == 1
    assert proc.stdout.startswith(
        f"FAIL sealstore roundtrip: TLS error talking to {openbao_tls.address}"
    )
    assert "certificate verify failed" in proc.stdout
    assert len(proc.stdout.splitlines()) == 1
    # With the right CA the handshake succeeds: what fails now is S3 itself (OpenBao is no S3
    # server), which proves --ca-bundle reached the TLS layer.
    proc = run_client(
        "roundtrip",
        "--endpoint",
        openbao_tls.address,
        "--ca-bundle",
        str(openbao_tls.ca_file),
        "--modes",
        "plain",
        "--sizes",
        "1",
    )
    assert proc.returncode == 1
    assert "TLS error" not in proc.stdout
    assert proc.stdout.startswith("FAIL sealstore roundtrip: create-bucket ")
