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

import json
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import custody_lib
import hvac
import hvac.adapters
import hvac.exceptions
import pytest
import requests
from infra_lib import Deployment, VaultAPI, parse_policy, vault_api

PROBE = Path(__file__).resolve().parent / "files" / "approle_probe.py"
REMOTE_PROBE = "/usr/local/lib/sealstore_approle_probe.py"


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
    keys = custody_lib.shares(custody)
    assert len(keys) == seal["n"], "custody must hold every unseal share"
    assert int(custody.get("unseal_threshold", seal["t"])) == seal["t"]
    # The admin token in custody is valid, scoped (not root) and is what the roles used.
    admin = dep.admin_token(vault_host)
    with must("the custody admin token does not look itself up"):
        me = api.client(token=admin).auth.token.lookup_self()
    policy = str(dep.setting("vault_server_admin_policy_name", vault_host))
    assert policy in me["data"]["policies"]
    assert "root" not in me["data"]["policies"]
    assert me["data"]["orphan"] is True and int(me["data"]["period"]) > 0


def test_share_files_are_separate_and_private(dep: Deployment, vault_host: str):
    """One 0600 file per share (each can go to its own holder); the main document holds none."""
    custody = dep.custody(vault_host)
    files = custody_lib.share_files(custody)
    assert files, f"no share-N.json files under {custody.get('shares_dir')}"
    assert [p.name for p in files] == [f"share-{i}.json" for i in range(1, len(files) + 1)]
    for p in files:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == 0o600, f"{p} has mode {oct(mode)}"
    keys = custody_lib.shares(custody)
    assert len(set(keys)) == len(keys), "two share files hold the same share"
    text = custody_lib.read_text(dep.custody_file(vault_host))
    assert not any(k in text for k in keys), "the custody document still holds key shares"


def test_root_token_revoked_after_setup(dep: Deployment, vault_host: str, api: VaultAPI):
    """No root token is kept, and the only live root token is the one this session made
    from the admin token and the shares (and revokes at exit)."""
    custody = dep.custody(vault_host)
    assert "root_token" not in custody, "the custody file still keeps a root token"
    assert custody.get("root_token_revoked_at"), "no record of the root token's revocation"
    root = api.client()  # the session's generated root token
    accessors = root.list("auth/token/accessors")["data"]["keys"]
    mine = root.auth.token.lookup_self()["data"]["accessor"]
    live_roots = []
    for acc in accessors:
        doc = root.auth.token.lookup_accessor(acc)["data"]
        if "root" in doc["policies"] and acc != mine:
            live_roots.append(doc.get("display_name"))
    assert not live_roots, f"root tokens still valid besides the session's: {live_roots}"


def test_root_token_regenerated_on_demand_and_revoked(dep: Deployment, vault_host: str):
    """The emergency procedure: admin token + threshold of shares give a root token; once
    revoked, it is refused (403)."""
    admin_api = vault_api(dep, vault_host, with_token=False)
    admin_api.token = dep.admin_token(vault_host)

    def admin_call(method: str, path: str, body: dict[str, Any] | None):
        return admin_api.request(method, path, body=body)

    token = custody_lib.generate_root(admin_call, custody_lib.shares(dep.custody(vault_host)))
    probe = vault_api(dep, vault_host, with_token=False)
    probe.token = token
    status, doc = probe.get("/v1/auth/token/lookup-self")
    assert status == 200 and "root" in doc["data"]["policies"], (status, doc.get("errors"))
    status, _ = probe.request("POST", "/v1/auth/token/revoke-self", body={})
    assert status in (200, 204)
    status, _ = probe.get("/v1/auth/token/lookup-self")
    assert status == 403, "a revoked root token still looks itself up"


def test_admin_token_is_scoped(dep: Deployment, vault_host: str, api: VaultAPI, names):
    """The admin token manages the setup, but cannot export or back up keys, make data keys or
    seal the server (it is not a security boundary: see docs/security.md)."""
    admin = vault_api(dep, vault_host, with_token=False)
    admin.token = dep.admin_token(vault_host)
    ns, t, k = names["ns"], names["transit"], names["key"]
    status, _ = admin.get(f"/v1/{t}/keys/{k}", namespace=ns)
    assert status == 200, "the admin token cannot read the transit key it manages"
    status, _ = admin.get("/v1/sys/mounts", namespace=ns)
    assert status == 200
    denied = [
        ("GET", f"/v1/{t}/export/encryption-key/{k}"),
        ("GET", f"/v1/{t}/backup/{k}"),
        ("POST", f"/v1/{t}/datakey/plaintext/{k}"),
        ("POST", f"/v1/{t}/encrypt/{k}"),
    ]
    for method, path in denied:
        status, doc = admin.request(method, path, namespace=ns, body={})
        assert status == 403, f"admin token may {method} {path}: {status} {doc}"
    status, doc = admin.request("POST", "/v1/sys/seal", body={})
    assert status == 403, f"admin token may seal the server: {status} {doc}"


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
    """The credentials on the storage host work from the storage host (they are bound to
    its address), and the token can do nothing but transit."""
    storage = dep.storage_hosts[0]
    env = dep.storage_env(storage)
    assert env.get("MINIO_SSE_VAULT_NAMESPACE", "") == names["ns"]
    h = dep.host(storage)
    h.ansible("copy", f"src={PROBE} dest={REMOTE_PROBE} mode=0644", check=False, become=True)
    out = h.run(
        "python3 %s %s %s %s",
        REMOTE_PROBE,
        dep.storage_env_file(storage),
        names["approle"],
        names["policy"],
    )
    assert out.rc == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["login"] == 200, f"AppRole login from {storage} failed: {doc}"
    assert doc["lease_duration"] <= 60
    assert "root" not in doc["policies"]
    assert doc["datakey"] == 200, "the AppRole token cannot make a data key"
    assert doc["policy_read"] == 403, "the AppRole token can read policies: not least privilege"
    assert doc["revoke"] in (200, 204)


def test_approle_secret_ids_expire_and_are_bound(
    dep: Deployment, ns: hvac.Client, names: dict[str, str]
):
    """secret_id_ttl, secret_id_bound_cidrs and token_bound_cidrs on the role, and each
    storage host's secret-id bound to that host's address."""
    role = ns.auth.approle.read_role(names["role"], mount_point=names["approle"])["data"]
    ttl = str(dep.setting("vault_kms_secret_id_ttl", dep.vault_hosts[0]))
    want_ttl = (
        int(ttl[:-1]) * {"h": 3600, "m": 60, "s": 1}[ttl[-1]] if ttl[-1] in "hms" else int(ttl)
    )
    assert role["secret_id_ttl"] == want_ttl > 0
    # OpenBao answers a /32 as the bare address
    bare = lambda cidrs: sorted(c.removesuffix("/32") for c in cidrs or [])  # noqa: E731
    cidrs = sorted(dep.address(h) for h in dep.storage_hosts)
    assert bare(role["secret_id_bound_cidrs"]) == cidrs
    assert bare(role["token_bound_cidrs"]) == cidrs
    for host in dep.storage_hosts:
        kept = custody_lib.read_json(dep.secrets_dir / "approle" / f"{host}.json")
        doc = ns.auth.approle.read_secret_id_accessor(
            names["role"], kept["secret_id_accessor"], mount_point=names["approle"]
        )["data"]
        assert bare(doc["cidr_list"]) == [dep.address(host)]
        assert bare(doc["token_bound_cidrs"]) == [dep.address(host)]
        assert not doc["expiration_time"].startswith("0001-"), "the secret-id never expires"


def test_secret_id_refused_from_another_address(
    dep: Deployment, api: VaultAPI, names: dict[str, str]
):
    """The storage host's real credentials, presented from the controller (another address
    on the container network), are refused."""
    env = dep.storage_env(dep.storage_hosts[0])
    anonymous = api.client(namespace=names["ns"], anonymous=True)
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden)) as err:
        anonymous.auth.approle.login(
            env["MINIO_SSE_VAULT_APPROLE_ID"],
            env["MINIO_SSE_VAULT_APPROLE_SECRET"],
            use_token=False,
            mount_point=names["approle"],
        )
    assert "source address" in str(err.value) or "unauthorized" in str(err.value).lower()


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


def test_unsealer_tokens_kept_by_accessor(dep: Deployment):
    """Transit auto-unseal: each KMS node's token is kept on the controller with its accessor
    (the play checks it there, never in the node's seal.env), is the token the node uses, and
    the unsealer knows the accessor as a periodic autounseal-only token."""
    unsealers = dep.group("vault_unsealers")
    if not unsealers:
        pytest.skip("no transit unsealer in this deployment")
    api = vault_api(dep, unsealers[0])
    custody_dir = Path(str(dep.setting("vault_unsealer_token_custody_dir", unsealers[0])))
    for node in dep.vault_hosts:
        kept = custody_lib.read_json(custody_dir / f"{node}.json")
        status, doc = api.request(
            "POST", "/v1/auth/token/lookup-accessor", body={"accessor": kept["accessor"]}
        )
        assert status == 200, f"{node}: the kept accessor is unknown to the unsealer"
        policy = str(dep.setting("vault_unsealer_policy_name", unsealers[0]))
        assert doc["data"]["policies"] == [policy] and int(doc["data"]["period"]) > 0
        env_file = f"{dep.setting('vault_server_config_dir', node)}/seal.env"
        seal_env = dep.host(node).run("cat %s", env_file)
        assert seal_env.rc == 0, seal_env.stderr
        assert kept["token"] in seal_env.stdout, f"{node} uses another token than the kept one"
