"""Storage host: the sealstore service, its EnvironmentFile, and ciphertext at rest."""

from __future__ import annotations

import json

import pytest
from infra_lib import Deployment


@pytest.fixture(scope="module", params=None)
def storage_host(dep: Deployment) -> str:
    assert dep.storage_hosts, "the inventory has no storage_servers"
    return dep.storage_hosts[0]


def _s(dep: Deployment, var: str, host: str) -> str:
    return str(dep.setting(var, host))


def test_service_active_enabled_listening(dep: Deployment, storage_host: str):
    h = dep.host(storage_host)
    name = _s(dep, "storage_server_service_name", storage_host)
    svc = h.service(name)
    assert svc.is_running, f"{name} is not active"
    assert svc.is_enabled, f"{name} is not enabled"
    port = _s(dep, "storage_server_port", storage_host)
    assert h.socket(f"tcp://0.0.0.0:{port}").is_listening
    ready = h.run(
        "python3 -c %s",
        f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/minio/health/ready').status)",
    )
    assert ready.stdout.strip() == "200", f"not ready: {ready.stdout} {ready.stderr}"


def test_runs_as_service_user_not_root(dep: Deployment, storage_host: str):
    h = dep.host(storage_host)
    name = _s(dep, "storage_server_service_name", storage_host)
    pid = h.check_output("systemctl show -p MainPID --value %s", name)
    assert pid != "0"
    user = h.check_output("ps -o user= -p %s", pid)
    assert user == _s(dep, "storage_server_user", storage_host)


def test_environment_file_owner_and_mode(dep: Deployment, storage_host: str):
    path = dep.storage_env_file(storage_host)
    f = dep.host(storage_host).file(path)
    assert f.exists and f.is_file
    assert f.user == "root"
    assert f.mode & 0o077 == 0 or (f.mode == 0o640 and f.group != "root"), oct(f.mode)
    assert f.mode & 0o007 == 0, f"{path} is readable by others: {oct(f.mode)}"


def test_environment_carries_the_quickstart_variables(dep: Deployment, storage_host: str):
    env = dep.storage_env(storage_host)
    assert env.get("MINIO_ROOT_USER") and env.get("MINIO_ROOT_PASSWORD")
    assert env.get("MINIO_SSE_AUTO_ENCRYPTION") == "on"
    if dep.kms_mode == "vault":
        for var in (
            "MINIO_SSE_VAULT_ENDPOINT",
            "MINIO_SSE_VAULT_APPROLE_ID",
            "MINIO_SSE_VAULT_APPROLE_SECRET",
            "MINIO_SSE_VAULT_KEY_NAME",
            "MINIO_SSE_VAULT_CAPATH",
        ):
            assert env.get(var), f"{var} missing from the EnvironmentFile"
        assert env["MINIO_SSE_VAULT_ENDPOINT"].startswith("https://")
        assert "MINIO_SSE_MASTER_KEY" not in env
        assert env.get("MINIO_SSE_VAULT_NAMESPACE", "") == dep.namespace
        ca = dep.host(storage_host).file(env["MINIO_SSE_VAULT_CAPATH"])
        assert ca.exists, "MINIO_SSE_VAULT_CAPATH points at a missing file"
    else:
        key = env.get("MINIO_SSE_MASTER_KEY", "")
        key_id, _, hexkey = key.partition(":")
        assert key_id and len(hexkey) == 64 and int(hexkey, 16) >= 0
        assert not any(k.startswith("MINIO_SSE_VAULT_") for k in env)


def test_variables_reach_the_service(dep: Deployment, storage_host: str):
    """The running process really has MINIO_SSE_* (the classic 'env not reaching the service')."""
    h = dep.host(storage_host)
    name = _s(dep, "storage_server_service_name", storage_host)
    pid = h.check_output("systemctl show -p MainPID --value %s", name)
    names = h.check_output(
        "tr '\\0' '\\n' < /proc/%s/environ | cut -d= -f1 | grep '^MINIO_SSE_' | sort", pid
    ).split()
    expected = (
        "MINIO_SSE_VAULT_APPROLE_SECRET" if dep.kms_mode == "vault" else "MINIO_SSE_MASTER_KEY"
    )
    assert expected in names, f"{expected} not in the service's environment: {names}"


def test_kms_self_test_reports_ok(dep: Deployment, storage_host: str):
    """The server's own KMS self-test (generate + decrypt + compare), asked with its credentials."""
    h = dep.host(storage_host)
    port = _s(dep, "storage_server_port", storage_host)
    client = f"{_s(dep, 'storage_server_prefix', storage_host)}/venv/bin/sealstore-client"
    out = h.run(
        "%s kms-status --endpoint %s --env-file %s --json",
        client,
        f"http://127.0.0.1:{port}",
        dep.storage_env_file(storage_host),
    )
    doc = json.loads(out.stdout)
    assert out.rc == 0 and doc["ok"], doc.get("summary")
    kind = "vault" if dep.kms_mode == "vault" else "master-key"
    assert doc["kind"] == kind
    if dep.kms_mode == "vault":
        assert doc["key_id"] == dep.setting("vault_kms_key_name", dep.vault_hosts[0])


def test_data_dir_private(dep: Deployment, storage_host: str):
    d = dep.host(storage_host).file(_s(dep, "storage_server_data_dir", storage_host))
    assert d.is_directory
    assert d.user == _s(dep, "storage_server_user", storage_host)
    assert d.mode & 0o007 == 0, f"data directory open to others: {oct(d.mode)}"
