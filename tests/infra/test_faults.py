"""Faults, in order: KMS down -> 503 and nothing stored; play re-run -> heals; storage restart ->
everything readable; more than two token periods later -> still encrypting.

Runs only where the scenario selects the ``faults`` marker (molecule `default`): it stops and
restarts services, so it runs after the read-only suites; the secret suite runs during the last
step's wait (see conftest ordering). S3 calls go from the controller with boto3 and no
retries, so a 503 is seen as a 503.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, ClassVar

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from infra_lib import REPO, Deployment, find_leaks

pytestmark = pytest.mark.faults

BUCKET = "sealstore-faults"
TOKEN_PERIOD_S = 60


def _body(n: int, tag: str) -> bytes:
    seed = hashlib.sha256(tag.encode()).digest()
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:n])


class State:
    """What the ordered steps share."""

    objects: ClassVar[dict[str, str]] = {}
    storage_restarted_at: ClassVar[float] = 0.0


@pytest.fixture(scope="module")
def storage(dep: Deployment) -> str:
    if dep.kms_mode != "vault":
        pytest.skip("the fault suite needs a Vault/OpenBao KMS")
    return dep.storage_hosts[0]


@pytest.fixture(scope="module")
def s3(dep: Deployment, storage: str) -> Any:
    env = dep.storage_env(storage)
    return boto3.client(
        "s3",
        endpoint_url=dep.storage_url(storage, dep.address(storage)),
        verify=dep.storage_ca_file(storage),
        aws_access_key_id=env["MINIO_ROOT_USER"],
        aws_secret_access_key=env["MINIO_ROOT_PASSWORD"],
        region_name=env.get("MINIO_REGION", "us-east-1"),
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def _put(s3: Any, key: str, body: bytes) -> dict[str, Any]:
    return s3.put_object(Bucket=BUCKET, Key=key, Body=body, ServerSideEncryption="AES256")


def _get_sha(s3: Any, bucket: str, key: str) -> str:
    resp = s3.get_object(Bucket=bucket, Key=key)
    h = hashlib.sha256()
    for chunk in resp["Body"].iter_chunks(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def _status(exc: ClientError) -> int:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def _vault_service(dep: Deployment) -> tuple[Any, str]:
    vh = dep.vault_hosts[0]
    return dep.host(vh), str(dep.setting("vault_server_service_name", vh))


def _wait_ready(dep: Deployment, storage: str, timeout: float = 90) -> None:
    h = dep.host(storage)
    port = dep.setting("storage_server_port", storage)
    scheme = "https" if dep.storage_tls(storage) else "http"
    ca = f"{dep.setting('storage_server_config_dir', storage)}/tls/s3-ca.pem"
    ctx = f"ssl.create_default_context(cafile='{ca}')" if scheme == "https" else "None"
    probe = (
        "import ssl, urllib.request as u\n"
        "try:\n"
        f"    print(u.urlopen('{scheme}://127.0.0.1:{port}/minio/health/ready', timeout=5,"
        f" context={ctx}).status)\n"
        "except Exception as e:\n"
        "    print(getattr(e, 'code', 0))\n"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if h.run("python3 -c %s", probe).stdout.strip() == "200":
            return
        time.sleep(2)
    pytest.fail(f"{storage} not ready after {timeout}s")


def test_01_baseline_objects(s3):
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    for size in (1, 70_000, 6 * 1024 * 1024):
        key = f"baseline-{size}"
        body = _body(size, key)
        resp = _put(s3, key, body)
        assert resp["ServerSideEncryption"] == "AES256"
        State.objects[key] = hashlib.sha256(body).hexdigest()


def test_02_kms_down_put_answers_503_and_stores_nothing(dep: Deployment, s3):
    h, service = _vault_service(dep)
    assert h.run("systemctl stop %s", service).rc == 0
    assert not h.service(service).is_running
    key = "written-while-kms-down"
    with pytest.raises(ClientError) as info:
        _put(s3, key, _body(4096, key))
    assert _status(info.value) == 503, info.value.response
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=BUCKET, Key=key)
    assert _status(head.value) == 404, "a failed PUT left an object behind"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=key)
    assert listed.get("KeyCount", 0) == 0


def test_03_kms_down_get_of_encrypted_object_answers_503(s3):
    with pytest.raises(ClientError) as info:
        _get_sha(s3, BUCKET, "baseline-1")
    assert _status(info.value) == 503


def test_04_replay_starts_and_unseals_then_put_works(dep: Deployment, s3, secrets: set[str]):
    # At -vvv: this run uses the unseal keys, so it is also the strongest leak check we have.
    proc = dep.run_playbook(REPO / "playbooks" / "site.yml", verbosity=3)
    assert proc.returncode == 0, proc.stdout[-3000:]
    leaks = find_leaks(proc.stdout + proc.stderr, secrets)
    assert not leaks, f"secrets in the -vvv output of the unsealing converge: {leaks}"
    h, service = _vault_service(dep)
    assert h.service(service).is_running
    key = "written-after-heal"
    body = _body(300_000, key)
    deadline = time.monotonic() + 90
    while True:
        try:
            resp = _put(s3, key, body)
            break
        except ClientError as exc:
            if _status(exc) != 503 or time.monotonic() > deadline:
                raise
            time.sleep(3)
    assert resp["ServerSideEncryption"] == "AES256"
    assert _get_sha(s3, BUCKET, key) == hashlib.sha256(body).hexdigest()
    State.objects[key] = hashlib.sha256(body).hexdigest()


def test_05_storage_restart_keeps_every_object_readable(dep: Deployment, storage: str, s3):
    h = dep.host(storage)
    service = str(dep.setting("storage_server_service_name", storage))
    assert h.run("systemctl restart %s", service).rc == 0
    State.storage_restarted_at = time.monotonic()
    _wait_ready(dep, storage)
    for key, sha in State.objects.items():
        assert _get_sha(s3, BUCKET, key) == sha, f"{key} changed across the restart"
    total = 0
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for obj in page.get("Contents", []):
                _get_sha(s3, bucket["Name"], obj["Key"])
                total += 1
    assert total >= len(State.objects)


def test_06_still_encrypts_after_two_token_periods(s3):
    assert State.storage_restarted_at, "depends on the restart step"
    remaining = State.storage_restarted_at + 2 * TOKEN_PERIOD_S + 5 - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    key = "written-after-two-periods"
    body = _body(200_000, key)
    resp = _put(s3, key, body)
    assert resp["ServerSideEncryption"] == "AES256"
    assert _get_sha(s3, BUCKET, key) == hashlib.sha256(body).hexdigest()
    head = s3.head_object(Bucket=BUCKET, Key="baseline-70000")
    assert head["ServerSideEncryption"] == "AES256"
