"""Vault/OpenBao host: the quickstart's KMS setup, checked through the real API.

API calls go from the controller to the host over TLS verified with the CA the play made, so a
pass also proves the listener, the certificate and the CA file the storage hosts get.
"""

from __future__ import annotations

import socket

import pytest
from infra_lib import Deployment, VaultAPI, parse_policy, vault_api


@pytest.fixture(scope="module")
def vault_host(dep: Deployment) -> str:
    if dep.kms_mode != "vault":
        pytest.skip(f"kms_mode={dep.kms_mode}: no Vault/OpenBao in this deployment")
    assert dep.vault_hosts, "kms_mode=vault but the inventory has no vault_servers"
    return dep.vault_hosts[0]


@pytest.fixture(scope="module")
def api(dep: Deployment, vault_host: str) -> VaultAPI:
    return vault_api(dep, vault_host)


@pytest.fixture(scope="module")
def names(dep: Deployment, vault_host: str) -> dict[str, str]:
    s = lambda v: str(dep.setting(v, vault_host))  # noqa: E731
    return {
        "service": s("vault_server_service_name"),
        "transit": s("vault_kms_transit_mount"),
        "approle": s("vault_kms_approle_mount"),
        "key": s("vault_kms_key_name"),
        "policy": s("vault_kms_policy_name"),
        "role": s("vault_kms_role_name"),
        "ns": dep.namespace,
    }


def test_service_active_and_enabled(dep: Deployment, vault_host: str, names: dict[str, str]):
    svc = dep.host(vault_host).service(names["service"])
    assert svc.is_running, f"{names['service']} is not active on {vault_host}"
    assert svc.is_enabled, f"{names['service']} is not enabled on {vault_host}"


def test_not_dev_mode(dep: Deployment, vault_host: str, names: dict[str, str]):
    h = dep.host(vault_host)
    exec_start = h.check_output("systemctl show -p ExecStart --value %s", names["service"])
    assert " -dev" not in exec_start, "the scenario must run a real server, not -dev"
    assert "-config=" in exec_start


def test_tls_listener(dep: Deployment, vault_host: str, api: VaultAPI):
    h = dep.host(vault_host)
    assert (
        h.socket(f"tcp://0.0.0.0:{api.port}").is_listening
        or h.socket(f"tcp://{api.port}").is_listening
    )
    # A verified TLS handshake for the host name with the play's CA ...
    status, health = api.get("/v1/sys/health", token=False)
    assert status == 200, health
    # ... and plain HTTP is not served.
    with socket.create_connection((api.ip, api.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/sys/health HTTP/1.0\r\nHost: x\r\n\r\n")
        reply = sock.recv(4096)
    assert b'"initialized"' not in reply, "the API answers over plain HTTP"


def test_initialised_and_unsealed(api: VaultAPI):
    status, health = api.get("/v1/sys/health", token=False)
    assert status == 200, f"sys/health answered {status}: {health}"
    assert health["initialized"] is True
    assert health["sealed"] is False
    assert health.get("standby") is False


def test_shamir_custody_matches_server(dep: Deployment, vault_host: str, api: VaultAPI):
    custody = dep.custody(vault_host)
    status, seal = api.get("/v1/sys/seal-status", token=False)
    assert status == 200
    assert seal["type"] == "shamir"
    keys = custody.get("unseal_keys_b64") or custody.get("keys_base64") or []
    assert len(keys) == seal["n"], "custody file must hold every unseal share"
    assert int(custody.get("unseal_threshold", seal["t"])) == seal["t"]
    # The root token in custody is valid (and is what the roles used).
    status, me = api.get("/v1/auth/token/lookup-self")
    assert status == 200, me
    assert "root" in me["data"]["policies"]


def test_transit_key_present(api: VaultAPI, names: dict[str, str]):
    status, doc = api.get(f"/v1/{names['transit']}/keys/{names['key']}", namespace=names["ns"])
    assert status == 200, f"transit key {names['key']} missing: {status} {doc}"
    assert doc["data"]["type"] == "aes256-gcm96"
    status, mounts = api.get("/v1/sys/mounts", namespace=names["ns"])
    assert mounts["data"][names["transit"] + "/"]["type"] == "transit"


def test_policy_is_the_quickstart_policy(api: VaultAPI, names: dict[str, str]):
    status, doc = api.get(f"/v1/sys/policy/{names['policy']}", namespace=names["ns"])
    assert status == 200, f"policy {names['policy']} missing: {status}"
    rules = doc.get("rules") or doc["data"]["rules"]
    t, k = names["transit"], names["key"]
    expected = {
        f"{t}/datakey/plaintext/{k}",
        f"{t}/decrypt/{k}",
        f"{t}/encrypt/{k}",
    }
    blocks = parse_policy(rules)
    assert set(blocks) == expected, f"policy paths differ from the quickstart's: {sorted(blocks)}"
    for path, caps in blocks.items():
        assert "update" in caps, f"{path} lacks update"
        assert set(caps) <= {"read", "update"}, f"{path} grants more than read/update: {caps}"


def test_approle_role_settings(api: VaultAPI, names: dict[str, str]):
    status, auths = api.get("/v1/sys/auth", namespace=names["ns"])
    assert status == 200
    assert auths["data"][names["approle"] + "/"]["type"] == "approle"
    status, doc = api.get(
        f"/v1/auth/{names['approle']}/role/{names['role']}", namespace=names["ns"]
    )
    assert status == 200, f"role {names['role']} missing: {status}"
    role = doc["data"]
    assert role["token_num_uses"] == 0
    assert role["secret_id_num_uses"] == 0
    assert role.get("token_period", role.get("period")) == 60
    policies = role.get("token_policies") or role.get("policies")
    assert policies == [names["policy"]]


def test_storage_secret_id_logs_in_with_least_privilege(
    dep: Deployment, api: VaultAPI, names: dict[str, str]
):
    """The credentials on the storage host work, and the token can do nothing but transit."""
    env = dep.storage_env(dep.storage_hosts[0])
    assert env.get("MINIO_SSE_VAULT_NAMESPACE", "") == names["ns"]
    status, login = api.request(
        "POST",
        f"/v1/auth/{names['approle']}/login",
        namespace=names["ns"],
        body={
            "role_id": env["MINIO_SSE_VAULT_APPROLE_ID"],
            "secret_id": env["MINIO_SSE_VAULT_APPROLE_SECRET"],
        },
        token=False,
    )
    assert status == 200, f"AppRole login with the storage host's credentials failed: {status}"
    auth = login["auth"]
    assert auth["lease_duration"] <= 60
    assert "root" not in auth["policies"]
    app = VaultAPI(api.ip, api.port, api.server_name, api.ca_file, auth["client_token"])
    status, _ = app.request(
        "POST",
        f"/v1/{names['transit']}/datakey/plaintext/{names['key']}",
        namespace=names["ns"],
        token=True,
    )
    assert status == 200
    status, _ = app.get(f"/v1/sys/policy/{names['policy']}", namespace=names["ns"])
    assert status == 403, "the AppRole token can read policies: not least privilege"
    app.request("POST", "/v1/auth/token/revoke-self", namespace=names["ns"])


def test_namespace_isolation(api: VaultAPI, names: dict[str, str]):
    """With a namespace, everything lives inside it and none of it exists in the root."""
    if not names["ns"]:
        pytest.skip("no namespace in this deployment")
    status, doc = api.get(f"/v1/sys/namespaces/{names['ns']}")
    assert status == 200, f"namespace {names['ns']} missing: {status} {doc}"
    status, _ = api.get(f"/v1/{names['transit']}/keys/{names['key']}")
    assert status in (400, 403, 404), "transit key also exists in the root namespace"
    status, _ = api.get(f"/v1/sys/policy/{names['policy']}")
    assert status == 404, "policy also exists in the root namespace"
    status, auths = api.get("/v1/sys/auth")
    assert names["approle"] + "/" not in auths["data"], "AppRole also enabled in the root"
    status, mounts = api.get("/v1/sys/mounts")
    assert names["transit"] + "/" not in mounts["data"], "transit also mounted in the root"
