"""KMS raft cluster (scenario kms-cluster): every node joined, healthy, auto-unsealed by transit.

Checked through each node's own API from the controller (TLS verified with the play's CA, so a
pass also proves every node's certificate SANs): raft peers are exactly the vault_servers group,
all voters; autopilot is healthy and tolerates one failure; each node reports the transit seal,
unsealed. The unsealer holds only the autounseal key and policy, and each node's token can do
nothing else. The storage host knows every node's endpoint. Last, `site.yml --check` on the
converged cluster changes nothing. Marker `kmscluster`: only that scenario selects these tests.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from infra_lib import REPO, Deployment, VaultAPI, parse_env, parse_policy, vault_api

pytestmark = pytest.mark.kmscluster


@pytest.fixture(scope="module")
def nodes(dep: Deployment) -> list[str]:
    hosts = dep.vault_hosts
    assert len(hosts) >= 3, f"the kms-cluster scenario needs 3 KMS nodes, has {hosts}"
    return hosts


@pytest.fixture(scope="module")
def apis(dep: Deployment, nodes: list[str]) -> dict[str, VaultAPI]:
    return {n: vault_api(dep, n) for n in nodes}


@pytest.fixture(scope="module")
def unsealer(dep: Deployment) -> str:
    hosts = dep.group("vault_unsealers")
    assert len(hosts) == 1, f"expected one unsealer, found {hosts}"
    return hosts[0]


def _unsealer_api(dep: Deployment, host: str) -> VaultAPI:
    # the unsealer's root token is revoked after setup: a session root token from its shares
    api = vault_api(dep, host, with_token=False)
    api.token = dep.root_token(host)
    return api


def test_every_node_is_active_or_standby_and_unsealed(apis: dict[str, VaultAPI]):
    active = []
    for node, api in apis.items():
        status, health = api.get("/v1/sys/health", token=False)
        assert status in (200, 429), f"{node}: sys/health {status} {health}"
        assert health["initialized"] and not health["sealed"], f"{node}: {health}"
        if status == 200:
            active.append(node)
    assert len(active) == 1, f"exactly one active node expected, found {active}"


def test_every_node_uses_the_transit_seal(apis: dict[str, VaultAPI]):
    for node, api in apis.items():
        status, seal = api.get("/v1/sys/seal-status", token=False)
        assert status == 200
        assert seal["type"] == "transit", f"{node}: seal type {seal['type']}"
        assert seal["recovery_seal"] is True
        assert seal["sealed"] is False


def test_raft_peers_are_the_group_all_voters(apis: dict[str, VaultAPI], nodes: list[str]):
    for node, api in apis.items():
        status, doc = api.get("/v1/sys/storage/raft/configuration")
        assert status == 200, f"{node}: {status} {doc}"
        servers = doc["data"]["config"]["servers"]
        assert sorted(s["node_id"] for s in servers) == sorted(nodes), f"{node} sees {servers}"
        assert all(s["voter"] for s in servers), f"non-voters in {servers}"
        assert sum(1 for s in servers if s["leader"]) == 1


def test_autopilot_healthy_and_tolerates_one_failure(apis: dict[str, VaultAPI], nodes: list[str]):
    for node, api in apis.items():
        status, doc = api.get("/v1/sys/storage/raft/autopilot/state")
        assert status == 200, f"{node}: {status}"
        state = doc["data"]
        assert state["healthy"] is True, f"{node}: autopilot unhealthy {state}"
        assert state["failure_tolerance"] >= 1
        assert sorted(state["voters"]) == sorted(nodes)
        for sid, srv in state["servers"].items():
            assert srv["healthy"], f"{sid} unhealthy: {srv}"


def test_autopilot_configuration_is_the_roles(dep: Deployment, apis: dict[str, VaultAPI]):
    api = next(iter(apis.values()))
    status, doc = api.get("/v1/sys/storage/raft/autopilot/configuration")
    assert status == 200
    conf = doc["data"]
    node = dep.vault_hosts[0]
    assert conf["cleanup_dead_servers"] == bool(
        dep.setting("vault_server_autopilot_cleanup_dead_servers", node)
    )
    assert conf["server_stabilization_time"] == "10s"
    assert conf["last_contact_threshold"] == "10s"


def test_seal_token_only_in_root_only_env_file(dep: Deployment, nodes: list[str]):
    """The transit token is in seal.env (0600 root) and in no HCL; retry_join names every peer."""
    for node in nodes:
        h = dep.host(node)
        conf_dir = dep.setting("vault_server_config_dir", node)
        env_file = h.file(f"{conf_dir}/seal.env")
        assert env_file.exists and env_file.user == "root" and env_file.mode == 0o600
        env = parse_env(h.check_output("cat %s/seal.env", conf_dir))
        token = env.get("BAO_TOKEN", "")
        assert token, f"{node}: no BAO_TOKEN in seal.env"
        hcl = h.check_output("cat %s/server.hcl", conf_dir)
        assert token not in hcl
        assert 'seal "transit"' in hcl
        assert hcl.count("retry_join {") == len(nodes) - 1, f"{node}: retry_join stanzas"


def test_node_tokens_can_only_wrap_with_autounseal(
    dep: Deployment, unsealer: str, nodes: list[str]
):
    api = _unsealer_api(dep, unsealer)
    status, doc = api.get("/v1/sys/policy/autounseal")
    assert status == 200
    blocks = parse_policy(doc.get("rules") or doc["data"]["rules"])
    assert blocks == {
        "transit/encrypt/autounseal": ["update"],
        "transit/decrypt/autounseal": ["update"],
    }
    status, seal = api.get("/v1/sys/seal-status", token=False)
    assert seal["type"] == "shamir" and not seal["sealed"], "the unsealer itself is Shamir-sealed"
    for node in nodes:
        conf_dir = dep.setting("vault_server_config_dir", node)
        token = parse_env(dep.host(node).check_output("cat %s/seal.env", conf_dir))["BAO_TOKEN"]
        status, look = api.request("POST", "/v1/auth/token/lookup", body={"token": token})
        assert status == 200, f"{node}: its seal token is unknown to the unsealer"
        data = look["data"]
        assert data["policies"] == ["autounseal"], data["policies"]
        assert data["period"] > 0 and data["orphan"] is True
        node_api = VaultAPI(api.ip, api.port, api.server_name, api.ca_file, token)
        status, _ = node_api.request(
            "POST", "/v1/transit/encrypt/autounseal", body={"plaintext": "aGk="}
        )
        assert status == 200
        status, _ = node_api.get("/v1/sys/policy/autounseal")
        assert status == 403, "a node's seal token reads policies: not least privilege"


def test_storage_host_gets_every_endpoint(dep: Deployment, nodes: list[str]):
    env = dep.storage_env(dep.storage_hosts[0])
    endpoints = env["MINIO_SSE_VAULT_ENDPOINT"].split(",")
    port = dep.setting("vault_server_port", nodes[0])
    assert sorted(endpoints) == sorted(f"https://{n}:{port}" for n in nodes)
    assert env.get("MINIO_SSE_VAULT_CAPATH")


def test_check_mode_on_converged_cluster_changes_nothing(dep: Deployment):
    proc = dep.run_playbook(REPO / "playbooks" / "site.yml", "--check")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    recap: list[Any] = re.findall(
        r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out, re.M
    )
    bad = {h: (c, u, f) for h, c, u, f in recap if int(c) or int(u) or int(f)}
    assert recap, "no PLAY RECAP in the output"
    assert not bad, f"--check on the converged cluster: (changed, unreachable, failed) {bad}"
