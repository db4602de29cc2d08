"""Seal migration of a running KMS, Shamir -> OpenBao's static-key seal, under a steady SSE-S3 load.

Scenario ``default`` only (one Shamir-sealed OpenBao node, a storage host, a client host), and
LAST in its verify (conftest ranks this module after every other suite: it changes the seal
for good). While the client host runs tests/infra/files/kms_load.py (fixed rate PUT + GET,
sha256 checked, boto3 retries off), the controller runs ``playbooks/kms-seal-migrate.yml`` with
``vault_server_seal_type=static``, then restarts the OpenBao service with no playbook run.

Proves: the playbook migrates (seal-status ``type`` static, unsealed, custody now holds the old
shares as recovery keys), the restarted node comes back unsealed by itself, every object the
load wrote before, during and after the migration reads back with its sha256, and no client
error happens outside the two moments the only KMS node is down. One node cannot serve while it
restarts, and the storage server fails fast with 503 ServiceUnavailable (a single endpoint is
one attempt, by design): those errors are counted per window, must be 503s and nothing else.
The cluster scenario proves the 0-error case, where another node serves during a restart.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import ClassVar

import custody_lib
import pytest
from infra_lib import REPO, Deployment, VaultAPI, inventory_source, vault_api
from load_lib import MEASURED, errors_in, load_running, start_load, stop_load

RATE = 3.0
MAX_LOAD_S = 600
# The node restarts twice (migration, then the proof restart): each may cost the clients 503s.
DOWN_WINDOWS = ("migration", "restart")


def _scenario() -> str:
    name = os.environ.get("MOLECULE_SCENARIO_NAME", "")
    if name:
        return name
    source = inventory_source()
    # molecule's inventory: ~/.cache/molecule/<project>/<scenario>/inventory/ansible_inventory.yml
    return source.parent.parent.name if source is not None and source.is_file() else ""


pytestmark = pytest.mark.skipif(
    _scenario() != "default" and os.environ.get("SEALSTORE_SEAL_MIGRATION") != "1",
    reason="changes the KMS seal for good: molecule scenario default only "
    "(SEALSTORE_SEAL_MIGRATION=1 runs it against another deployment)",
)


class State:
    """What the ordered steps share: epoch windows and measured numbers."""

    windows: ClassVar[dict[str, list[float]]] = {}
    numbers: ClassVar[dict[str, object]] = {}


@pytest.fixture(scope="module")
def node(dep: Deployment) -> str:
    if dep.kms_mode != "vault" or len(dep.vault_hosts) != 1:
        pytest.skip("needs exactly one Vault/OpenBao node (kms_mode=vault)")
    return dep.vault_hosts[0]


@pytest.fixture(scope="module")
def api(dep: Deployment, node: str) -> VaultAPI:
    return vault_api(dep, node)


def _seal(api: VaultAPI) -> dict[str, object]:
    status, doc = api.get("/v1/sys/seal-status", token=False)
    assert status == 200, doc
    return doc


def _serving(api: VaultAPI) -> bool:
    try:
        status, health = api.get("/v1/sys/health", token=False)
    except OSError:
        return False
    return status == 200 and not health.get("sealed", True)


def test_01_shamir_today_and_load_running(dep: Deployment, node: str, api: VaultAPI):
    seal = _seal(api)
    assert seal["type"] == "shamir" and not seal["sealed"], seal
    client = dep.client_hosts[0]
    State.windows["before"] = [start_load(dep, client, rate=RATE, max_seconds=MAX_LOAD_S)]
    time.sleep(15)
    running, journal = load_running(dep, client)
    assert running, journal
    State.windows["before"].append(time.time())


def test_02_playbook_migrates_to_the_static_seal(dep: Deployment, node: str, api: VaultAPI):
    t0 = time.time()
    proc = dep.run_playbook(
        REPO / "playbooks" / "kms-seal-migrate.yml", "-e", "vault_server_seal_type=static"
    )
    State.windows["migration"] = [t0, time.time()]
    State.numbers["migrate_playbook_s"] = round(time.time() - t0, 1)
    assert proc.returncode == 0, proc.stdout[-4000:]
    seal = _seal(api)
    assert seal["type"] == "static" and not seal["sealed"], seal
    custody = dep.custody(node)
    assert custody["seal_type"] == "static"
    assert custody["unseal_threshold"] == 0 and custody["recovery_threshold"] > 0
    # the former unseal shares are the recovery keys now (share files, or the old list)
    assert len(custody_lib.shares(custody)) >= custody["recovery_threshold"]
    key = dep.host(node).file(
        f"{dep.setting('vault_server_config_dir', node)}/seal/"
        f"{dep.setting('vault_server_static_seal_key_id', node)}.key"
    )
    assert key.exists and key.mode == 0o440 and key.user == "root"
    assert key.group == dep.setting("vault_server_group", node)


def test_03_restarted_node_unseals_itself(dep: Deployment, node: str, api: VaultAPI):
    service = dep.setting("vault_server_service_name", node)
    time.sleep(10)  # load between the two windows: no error allowed there
    t0 = time.time()
    assert dep.host(node).run("systemctl restart %s", service).rc == 0
    start = time.monotonic()
    while not _serving(api):
        assert time.monotonic() - start < 90, f"{node} not unsealed 90 s after a restart"
        time.sleep(0.2)
    State.numbers["restart_to_unsealed_s"] = round(time.monotonic() - start, 2)
    State.windows["restart"] = [t0, time.time()]
    seal = _seal(api)
    assert seal["type"] == "static" and not seal["sealed"] and not seal.get("migration"), seal
    time.sleep(15)  # load after the restart: no error allowed there


def test_04_every_object_reads_back_and_errors_only_while_the_node_was_down(dep: Deployment):
    report = stop_load(dep, dep.client_hosts[0])
    migration_start = State.windows["migration"][0] - report["start_epoch"]
    before = [k for k, t in report["put_t"].items() if t < migration_start]
    down = {w: errors_in(report, State.windows[w]) for w in DOWN_WINDOWS}
    inside = [e for errs in down.values() for e in errs]
    outside = [e for e in report["errors"] if e not in inside]
    State.numbers.update(
        {
            "objects_written": report["written"],
            "objects_written_before_migration": len(before),
            "verified": report["verified"],
            "client_errors_total": report["error_count"],
            "client_errors_per_window": {w: len(e) for w, e in down.items()},
            "max_gap_between_successes_s": report["max_gap_between_successes_s"],
        }
    )
    MEASURED["seal migration (default)"] = dict(State.numbers)
    out = REPO / ".cache" / "molecule" / "default-seal-migration.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(State.numbers, indent=2) + "\n")
    assert len(before) > 0, "the load wrote nothing before the migration"
    assert report["verified"] == report["written"], report["verify_errors"]
    assert outside == [], f"client errors while the KMS node was up: {outside[:5]}"
    not_503 = [e for e in inside if "ServiceUnavailable" not in e["error"]]
    assert not_503 == [], f"errors other than 503 ServiceUnavailable: {not_503[:5]}"
