"""KMS backup and restore: a raft snapshot restored into a fresh cluster brings every object back.

Scenario kms-cluster only (marker kmscluster), after the fault run, whose load left objects
obj-NNNNNN (bodies derived from their index, so their sha256 is known here). In order:
playbooks/kms-backup.yml (timer installed on every node, snapshot on the leader, copy and custody
on the controller); the cluster is destroyed (service stopped, raft data wiped on every node) and
built again from nothing by site.yml, which initialises a new cluster with a new transit key and
gives the storage host credentials for it, so the old objects no longer decrypt;
playbooks/kms-restore.yml puts the snapshot back; storage.yml re-issues the storage host's
secret-id; then every object written before the snapshot reads back with its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.config import Config
from infra_lib import REPO, Deployment

pytestmark = [
    pytest.mark.kmscluster,
    pytest.mark.skipif(
        os.environ.get("SEALSTORE_KMS_RESTORE", "1") == "0",
        reason="SEALSTORE_KMS_RESTORE=0: the backup/restore proof is skipped",
    ),
]

BUCKET = "kms-load"
SIZE = 48 * 1024
SAMPLE = 40


class State:
    snapshot: ClassVar[str] = ""
    keys: ClassVar[list[str]] = []


def _body(i: int, size: int) -> bytes:
    seed = hashlib.sha256(f"kms-load-{i}".encode()).digest()
    out = bytearray()
    n = 0
    while len(out) < size:
        out += hashlib.sha256(seed + n.to_bytes(8, "big")).digest()
        n += 1
    return bytes(out[:size])


@pytest.fixture(scope="module")
def s3(dep: Deployment) -> Any:
    storage = dep.storage_hosts[0]
    env = dep.storage_env(storage)
    return boto3.client(
        "s3",
        endpoint_url=dep.storage_url(storage, dep.address(storage)),
        verify=dep.storage_ca_file(storage),
        aws_access_key_id=env["MINIO_ROOT_USER"],
        aws_secret_access_key=env["MINIO_ROOT_PASSWORD"],
        region_name=env.get("MINIO_REGION", "us-east-1"),
        config=Config(retries={"max_attempts": 3}, s3={"addressing_style": "path"}),
    )


def _readable(s3: Any, key: str) -> bool:
    i = int(key.split("-")[1])
    try:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except Exception:
        return False
    return hashlib.sha256(body).digest() == hashlib.sha256(_body(i, SIZE)).digest()


def _play(dep: Deployment, name: str, *args: str) -> str:
    proc = dep.run_playbook(REPO / "playbooks" / name, *args, timeout=1500)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-4000:]}"
    return proc.stdout


def test_01_backup_installs_the_timer_and_copies_a_snapshot(dep: Deployment, s3: Any):
    listed = s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1000).get("Contents", [])
    State.keys = sorted(o["Key"] for o in listed)[:SAMPLE]
    assert State.keys, "the fault run left no objects to restore"
    assert all(_readable(s3, k) for k in State.keys)
    _play(dep, "kms-backup.yml")
    snaps = sorted((dep.secrets_dir / "kms-snapshots").glob("raft-*.snap"))
    assert snaps, "no snapshot copied to the controller"
    assert snaps[-1].stat().st_size > 0 and (snaps[-1].stat().st_mode & 0o077) == 0
    assert Path(f"{snaps[-1]}.custody.json").exists()
    State.snapshot = str(snaps[-1])
    for node in dep.vault_hosts:
        timer = dep.host(node).service("kms-snapshot.timer")
        assert timer.is_enabled and timer.is_running, f"{node}: kms-snapshot.timer"
    # The timer's service runs on every node; only the leader saves a snapshot.
    saved = 0
    for node in dep.vault_hosts:
        h = dep.host(node)
        assert h.run("systemctl start kms-snapshot.service").rc == 0, node
        saved += "saved" in h.run("journalctl -u kms-snapshot.service -n 5 --no-pager").stdout
    assert saved == 1, f"{saved} nodes saved a snapshot from the timer's service, expected 1"


def test_02_fresh_cluster_cannot_read_the_old_objects(dep: Deployment, s3: Any):
    for node in dep.vault_hosts:
        h = dep.host(node)
        service = dep.setting("vault_server_service_name", node)
        data = dep.setting("vault_server_data_dir", node)
        assert h.run("systemctl stop %s", service).rc == 0
        assert h.run("sh -c 'rm -rf %s/raft/* %s/vault.db'", data, data).rc == 0
    _play(dep, "site.yml")
    deadline = time.monotonic() + 60
    while _readable(s3, State.keys[0]) and time.monotonic() < deadline:
        time.sleep(2)
    assert not _readable(s3, State.keys[0]), "a brand-new cluster decrypts old objects?"


def test_03_restore_brings_every_object_back(dep: Deployment, s3: Any):
    _play(dep, "kms-restore.yml", "-e", f"kms_snapshot={State.snapshot}")
    restored = json.loads(Path(f"{State.snapshot}.custody.json").read_text())
    current = json.loads(
        Path(dep.setting("vault_server_custody_file", dep.vault_hosts[0])).read_text()
    )
    token = "admin_token" if "admin_token" in current else "root_token"
    assert current[token] == restored[token], "custody file not switched"
    _play(dep, "storage.yml")
    deadline = time.monotonic() + 90
    missing = State.keys
    while missing and time.monotonic() < deadline:
        missing = [k for k in State.keys if not _readable(s3, k)]
        if missing:
            time.sleep(3)
    assert not missing, f"{len(missing)} objects unreadable after the restore: {missing[:5]}"
