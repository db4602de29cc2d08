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
    scheme = "https" if dep.storage_tls(storage_host) else "http"
    ca = f"{_s(dep, 'storage_server_config_dir', storage_host)}/tls/s3-ca.pem"
    ctx = f"ssl.create_default_context(cafile='{ca}')" if scheme == "https" else "None"
    probe = (
        "import ssl, urllib.request as u\n"
        f"r = u.urlopen('{scheme}://127.0.0.1:{port}/minio/health/ready', context={ctx})\n"
        "print(r.status, r.read().decode())\n"
    )
    ready = h.run("python3 -c %s", probe)
    # anonymous readiness is the verdict only: no KMS kind, key id or URL
    assert ready.stdout.strip() == "200 ok", f"not ready: {ready.stdout} {ready.stderr}"


def test_s3_endpoint_is_https_with_the_play_ca(dep: Deployment, storage_host: str):
    """TLS 1.2+ with a certificate from the play's CA (unless the inventory chose plain HTTP)."""
    import ssl

    if not dep.storage_tls(storage_host):
        pytest.skip("this inventory serves plain HTTP (storage_server_tls_enabled: false)")
    env = dep.storage_env(storage_host)
    assert env["SEALSTORE_TLS_CERT_FILE"] and env["SEALSTORE_TLS_KEY_FILE"]
    h = dep.host(storage_host)
    key = h.file(env["SEALSTORE_TLS_KEY_FILE"])
    assert key.user == "root" and key.mode & 0o007 == 0, oct(key.mode)
    port = int(dep.setting("storage_server_port", storage_host))
    ctx = ssl.create_default_context(cafile=str(dep.storage_ca_file(storage_host)))
    dep.storage_url(storage_host, dep.address(storage_host))  # pins the name to the container IP
    import socket

    with (
        socket.create_connection((storage_host, port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=storage_host) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection((storage_host, port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        old.wrap_socket(raw, server_hostname=storage_host)


def test_metrics_need_the_token(dep: Deployment, storage_host: str):
    import requests

    url = dep.storage_url(storage_host, dep.address(storage_host)) + "/minio/v2/metrics/cluster"
    verify = dep.storage_ca_file(storage_host)
    assert requests.get(url, verify=verify, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-0123456789"}
    assert requests.get(url, headers=wrong, verify=verify, timeout=10).status_code == 403
    token = dep.metrics_token(storage_host)
    r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, verify=verify, timeout=10)
    assert r.status_code == 200 and "sealstore_ready 1" in r.text


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
    tls = dep.storage_tls(storage_host)
    ca = f"{_s(dep, 'storage_server_config_dir', storage_host)}/tls/s3-ca.pem"
    out = h.run(
        "%s kms-status --endpoint %s --env-file %s --json" + (" --ca-bundle %s" if tls else ""),
        client,
        f"{'https' if tls else 'http'}://127.0.0.1:{port}",
        dep.storage_env_file(storage_host),
        *([ca] if tls else []),
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


def test_users_file_gives_a_user_only_its_policy(dep: Deployment, storage_host: str):
    """storage_server_users: a 0400 file only the service user reads, named in the env file,
    and the user it defines can do exactly what its policy allows (read, not write)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    users = dep.setting("storage_server_users", storage_host) or []
    if not users:
        pytest.skip("this inventory defines no users besides root")
    env = dep.storage_env(storage_host)
    path = env["SEALSTORE_USERS_FILE"]
    f = dep.host(storage_host).file(path)
    assert f.user == _s(dep, "storage_server_user", storage_host)
    assert f.mode == 0o400, oct(f.mode)

    def client(access: str, secret: str):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=dep.storage_url(storage_host, dep.address(storage_host)),
            verify=dep.storage_ca_file(storage_host),
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            region_name=env.get("MINIO_REGION", "us-east-1"),
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )

    root = client(env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"])
    bucket = "infra-users"
    try:
        root.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    root.put_object(Bucket=bucket, Key="readable", Body=b"for the reader")
    user = users[0]
    reader = client(str(user["access_key"]), str(user["secret_key"]))
    assert reader.get_object(Bucket=bucket, Key="readable")["Body"].read() == b"for the reader"
    assert [o["Key"] for o in reader.list_objects_v2(Bucket=bucket)["Contents"]] == ["readable"]
    with pytest.raises(ClientError) as denied:
        reader.put_object(Bucket=bucket, Key="written", Body=b"x")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as denied:
        reader.delete_object(Bucket=bucket, Key="readable")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as wrong:
        client(str(user["access_key"]), "not-the-secret-key").list_buckets()
    assert wrong.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
