"""Vault/OpenBao host: the quickstart's KMS setup, checked through the real API.

Proves that the deployed server is a real (non ``-dev``), initialised, unsealed Shamir server
whose custody file matches it, serving only TLS; that the transit key, the quickstart's
least-privilege policy and the AppRole role (``period=60s``, unlimited uses) exist where the
inventory says (inside the namespace when there is one, and then nowhere in the root); and that
the credentials on the storage host log in and can do transit and nothing else.

API calls go from the controller to the host with ``hvac`` over TLS verified with the CA the
play made for the host's name, so a pass also proves the listener, the certificate and the CA
file the storage hosts get.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hvac
import hvac.adapters
import hvac.exceptions
import pytest
import requests
from infra_lib import Deployment, VaultAPI, parse_policy, vault_api


@contextmanager
def must(what: str) -> Iterator[None]:
    """Fail the test saying ``what`` is wrong when the hvac call inside raises."""
    try:
        yield
    except hvac.exceptions.VaultError as exc:
        pytest.fail(f"{what}: {type(exc).__name__}: {exc}")


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


@pytest.fixture(scope="module")
def root(api: VaultAPI) -> hvac.Client:
    """Root-token client in the root namespace."""
    return api.client()


@pytest.fixture(scope="module")
def ns(api: VaultAPI, names: dict[str, str]) -> hvac.Client:
    """Root-token client in the deployment's namespace (the root namespace when there is none)."""
    return api.client(namespace=names["ns"])


def _health(api: VaultAPI) -> tuple[int, dict[str, Any]]:
    """``GET sys/health`` without a token: (status, document); any status is an answer."""
    resp = api.client(anonymous=True, raw=True).sys.read_health_status(method="GET")
    return resp.status_code, resp.json()


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
    status, health = _health(api)
    assert status == 200, health
    # ... and plain HTTP is not served (the same hvac call, over http://).
    plain = hvac.Client(
        url=f"http://{api.ip}:{api.port}", token="", timeout=5, adapter=hvac.adapters.RawAdapter
    )
    try:
        reply = plain.sys.read_health_status(method="GET").text
    except requests.RequestException:
        reply = ""  # refused, reset or not HTTP at all: not served either
    assert '"initialized"' not in reply, "the API answers over plain HTTP"


def test_initialised_and_unsealed(api: VaultAPI):
    status, health = _health(api)
    assert status == 200, f"sys/health answered {status}: {health}"
    assert health["initialized"] is True
    assert health["sealed"] is False
    assert health.get("standby") is False


def test_shamir_custody_matches_server(dep: Deployment, vault_host: str, api: VaultAPI):
    custody = dep.custody(vault_host)
    with must("sys/seal-status"):
        seal = api.client(anonymous=True).sys.read_seal_status()
    assert seal["type"] == "shamir"
    keys = custody.get("unseal_keys_b64") or custody.get("keys_base64") or []
    assert len(keys) == seal["n"], "custody file must hold every unseal share"
    assert int(custody.get("unseal_threshold", seal["t"])) == seal["t"]
    # The root token in custody is valid (and is what the roles used).
    with must("the custody root token does not look itself up"):
        me = api.client().auth.token.lookup_self()
    assert "root" in me["data"]["policies"]


def test_transit_key_present(ns: hvac.Client, names: dict[str, str]):
    with must(f"transit key {names['key']} missing"):
        doc = ns.secrets.transit.read_key(name=names["key"], mount_point=names["transit"])
    assert doc["data"]["type"] == "aes256-gcm96"
    mounts = ns.sys.list_mounted_secrets_engines()
    assert mounts["data"][names["transit"] + "/"]["type"] == "transit"


def test_policy_is_the_quickstart_policy(ns: hvac.Client, names: dict[str, str]):
    with must(f"policy {names['policy']} missing"):
        doc = ns.sys.read_policy(name=names["policy"])
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


def test_approle_role_settings(ns: hvac.Client, names: dict[str, str]):
    with must("sys/auth"):
        auths = ns.sys.list_auth_methods()
    assert auths["data"][names["approle"] + "/"]["type"] == "approle"
    with must(f"role {names['role']} missing"):
        doc = ns.auth.approle.read_role(names["role"], mount_point=names["approle"])
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
    anonymous = api.client(namespace=names["ns"], anonymous=True)
    with must("AppRole login with the storage host's credentials failed"):
        login = anonymous.auth.approle.login(
            env["MINIO_SSE_VAULT_APPROLE_ID"],
            env["MINIO_SSE_VAULT_APPROLE_SECRET"],
            use_token=False,
            mount_point=names["approle"],
        )
    auth = login["auth"]
    assert auth["lease_duration"] <= 60
    assert "root" not in auth["policies"]
    app = api.client(namespace=names["ns"], token=auth["client_token"])
    with must("the AppRole token cannot make a data key"):
        app.secrets.transit.generate_data_key(
            name=names["key"], key_type="plaintext", mount_point=names["transit"]
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        app.sys.read_policy(name=names["policy"])
        pytest.fail("the AppRole token can read policies: not least privilege")
    app.auth.token.revoke_self()


def test_namespace_isolation(root: hvac.Client, names: dict[str, str]):
    """With a namespace, everything lives inside it and none of it exists in the root."""
    if not names["ns"]:
        pytest.skip("no namespace in this deployment")
    # hvac has no typed read for one namespace; its generic read answers None for a 404
    doc = root.read(f"sys/namespaces/{names['ns']}")
    assert doc, f"namespace {names['ns']} missing"
    with pytest.raises(
        (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath)
    ):
        root.secrets.transit.read_key(name=names["key"], mount_point=names["transit"])
        pytest.fail("transit key also exists in the root namespace")
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.read_policy(name=names["policy"])
        pytest.fail("policy also exists in the root namespace")
    auths = root.sys.list_auth_methods()
    assert names["approle"] + "/" not in auths["data"], "AppRole also enabled in the root"
    mounts = root.sys.list_mounted_secrets_engines()
    assert names["transit"] + "/" not in mounts["data"], "transit also mounted in the root"
