"""`sealstore admin rewrap` and `verify` against a real OpenBao and a live sealstore server.

Proves: after a transit key rotation, rewrap moves every object's (single-part, multipart,
pending upload) KMS ciphertext to the newest version without rewriting a data file, with an
audit line per object and metrics, JSON-lines output of the documented shape; objects stay
readable after raising min_decryption_version; an object left behind is listed by verify
(exit 1) and the documented rollback (lower min_decryption_version, rewrap, raise) heals it;
a rewrap killed with SIGKILL midway resumes from its checkpoint while a client reading in a
loop never fails; without the temporary grant rewrap fails clearly and changes nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealstore.objects import metadata as md
from tests.integration.admin_support import (
    TransitKey,
    admin,
    blob_digests,
    events,
    kms_version,
    new_transit_key,
    server_env,
    stored,
    summary_of,
)
from tests.integration.openbao import OpenBao
from tests.integration.server import ServerProcess

MIB = 1024 * 1024


def payload(name: str, size: int) -> bytes:
    return (name.encode() * (size // max(1, len(name)) + 1))[:size]


@pytest.fixture
def key(openbao: OpenBao) -> TransitKey:
    return new_transit_key(openbao, derived=True)  # derived: rewrap must send the context


@pytest.fixture
def server(tmp_path: Path, key: TransitKey) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", server_env(key.creds), tmp_path / "server.log")
    with srv.start():
        yield srv


def write_objects(s3: object, bucket: str, n: int) -> dict[str, bytes]:
    s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    out = {}
    for i in range(n):
        body = payload(f"{bucket}-{i}", 1000 + 97 * i)
        s3.put_object(Bucket=bucket, Key=f"obj/{i:03d}", Body=body)  # type: ignore[attr-defined]
        out[f"obj/{i:03d}"] = body
    return out


def test_rewrap_moves_every_key_to_the_newest_version(
    server: ServerProcess, key: TransitKey, tmp_path: Path
) -> None:
    s3 = server.client()
    data = write_objects(s3, "alpha", 12)
    parts = [payload("part1", 5 * MIB), payload("part2", 1234)]
    up = s3.create_multipart_upload(Bucket="alpha", Key="multi")
    etags = [
        s3.upload_part(Bucket="alpha", Key="multi", UploadId=up["UploadId"], PartNumber=n, Body=b)[
            "ETag"
        ]
        for n, b in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket="alpha",
        Key="multi",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    data["multi"] = b"".join(parts)
    pending = s3.create_multipart_upload(Bucket="alpha", Key="pending")
    s3.upload_part(
        Bucket="alpha", Key="pending", UploadId=pending["UploadId"], PartNumber=1, Body=b"late"
    )
    s3.create_bucket(Bucket="plain-bucket")
    data_dir = server.data_dir
    before = blob_digests(data_dir)

    assert key.rotate() == 2
    s3.put_object(Bucket="alpha", Key="after-rotation", Body=b"new")  # sealed at v2 already
    data["after-rotation"] = b"new"
    key.grant_rewrap()
    env = server_env(key.creds)
    proc = admin(env, "rewrap", "--metrics-file", str(tmp_path / "m.prom"), str(data_dir))
    assert proc.returncode == 0, proc.stderr
    summary = summary_of(proc)
    assert summary["failed"] == 0 and summary["behind"] == 0
    assert summary["results"] == {"rewrapped": 14, "current": 1}
    assert summary["target_versions"] == {key.name: 2}
    assert summary["key_versions"] == {f"{key.name}:v2": 15}
    assert summary["failures"] == []

    # JSON lines: start, one item per changed object, progress, one summary
    docs = events(proc.stdout)
    assert docs[0]["event"] == "start" and docs[0]["objects"] == 15 and docs[0]["job"] == "rewrap"
    items = [d for d in docs if d["event"] == "item"]
    assert len(items) == 14
    assert {d["result"] for d in items} == {"rewrapped"}
    assert all(d["from_version"] == 1 and d["to_version"] == 2 for d in items)
    assert {"bucket", "key", "job"} <= set(items[0])
    progress = [d for d in docs if d["event"] == "progress"]
    assert progress[-1]["done"] == 15 and progress[-1]["objects"] == 15
    assert {"bytes", "bytes_done", "rate", "eta_s"} <= set(progress[-1])

    objects, uploads = stored(data_dir)
    assert {kms_version(o.internal) for o in objects} == {2}
    assert [kms_version(u.meta.internal) for u in uploads] == [2]
    assert blob_digests(data_dir) == before | {
        k: v for k, v in blob_digests(data_dir).items() if k not in before
    }, "an existing data file was rewritten"

    audit = (data_dir / ".sealstore-admin" / "audit.jsonl").read_text().splitlines()
    assert len(audit) == 14
    assert all(key.creds.secret_id not in line and "vault:v" not in line for line in audit)
    metrics = (tmp_path / "m.prom").read_text()
    assert 'sealstore_admin_objects_total{job="rewrap",result="rewrapped"} 14' in metrics
    assert not (data_dir / ".sealstore-admin" / "rewrap.json").exists()  # finished: no state
    again = admin(env, "rewrap", "--dry-run", str(data_dir))  # the playbook's proof
    assert again.returncode == 0, again.stderr
    assert summary_of(again)["behind"] == 0
    assert summary_of(again)["results"] == {"current": 15}

    key.grant_rewrap(False)
    key.set_min_decryption(2)  # v1 is now dead: everything must still read
    for name, body in data.items():
        assert s3.get_object(Bucket="alpha", Key=name)["Body"].read() == body
    s3.complete_multipart_upload(
        Bucket="alpha",
        Key="pending",
        UploadId=pending["UploadId"],
        MultipartUpload={
            "Parts": [
                {
                    "PartNumber": 1,
                    "ETag": s3.list_parts(
                        Bucket="alpha", Key="pending", UploadId=pending["UploadId"]
                    )["Parts"][0]["ETag"],
                }
            ]
        },
    )
    assert s3.get_object(Bucket="alpha", Key="pending")["Body"].read() == b"late"
    verify = admin(env, "verify", "--deep", str(data_dir))
    assert verify.returncode == 0, verify.stdout[-2000:]
    assert summary_of(verify)["key_versions"] == {f"{key.name}:v2": 15}


def test_verify_lists_an_object_left_behind_and_rollback_heals(
    server: ServerProcess, key: TransitKey
) -> None:
    s3 = server.client()
    write_objects(s3, "done-bucket", 3)
    left = write_objects(s3, "left-bucket", 2)
    key.rotate()
    key.grant_rewrap()
    env = server_env(key.creds)
    proc = admin(env, "rewrap", "--bucket", "done-bucket", str(server.data_dir))
    assert proc.returncode == 0, proc.stderr
    assert summary_of(proc)["results"] == {"rewrapped": 3}

    key.set_min_decryption(2)  # too early: left-bucket still holds v1 ciphertexts
    verify = admin(env, "verify", str(server.data_dir))
    assert verify.returncode == 1
    summary = summary_of(verify)
    failed = sorted((f["bucket"], f["key"]) for f in summary["failures"])
    assert failed == [("left-bucket", k) for k in sorted(left)]
    assert all("does not unseal" in f["error"] for f in summary["failures"])
    assert summary["key_versions"] == {f"{key.name}:v1": 2, f"{key.name}:v2": 3}
    with pytest.raises(Exception, match=r"AccessDenied|403"):
        s3.get_object(Bucket="left-bucket", Key="obj/000")

    key.set_min_decryption(1)  # the runbook's rollback: v1 is archived, not destroyed
    proc = admin(env, "rewrap", str(server.data_dir))
    assert proc.returncode == 0 and summary_of(proc)["results"] == {"rewrapped": 2, "current": 3}
    key.set_min_decryption(2)
    verify = admin(env, "verify", str(server.data_dir))
    assert verify.returncode == 0, verify.stdout[-2000:]
    for name, body in left.items():
        assert s3.get_object(Bucket="left-bucket", Key=name)["Body"].read() == body


def test_rewrap_without_the_grant_fails_clearly_and_changes_nothing(
    server: ServerProcess, key: TransitKey
) -> None:
    s3 = server.client()
    write_objects(s3, "nogrant", 2)
    key.rotate()
    proc = admin(server_env(key.creds), "rewrap", str(server.data_dir))
    assert proc.returncode == 2  # stopped at the first denial, not one failure per object
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "denied rewrap" in proc.stderr and "policy" in proc.stderr
    assert {kms_version(o.internal) for o in stored(server.data_dir)[0]} == {1}
    assert key.creds.secret_id not in proc.stdout + proc.stderr


def test_rewrap_killed_midway_resumes_and_objects_stay_readable(
    server: ServerProcess, key: TransitKey
) -> None:
    s3 = server.client()
    data = write_objects(s3, "resume", 40)
    key.rotate()
    key.grant_rewrap()
    env = server_env(key.creds)
    errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        client = server.client()
        while not stop.is_set():
            for name, body in data.items():
                try:
                    got = client.get_object(Bucket="resume", Key=name)["Body"].read()
                except Exception as exc:
                    errors.append(f"{name}: {exc}")
                    continue
                reads += 1
                if got != body:
                    errors.append(f"{name}: wrong bytes")

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        argv = [sys.executable, "-m", "sealstore", "admin", "rewrap", "--rate", "4"]
        victim = subprocess.Popen(
            [*argv, "--concurrency", "2", str(server.data_dir)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        state = server.data_dir / ".sealstore-admin" / "rewrap.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            partial = [o for o in stored(server.data_dir)[0] if kms_version(o.internal) == 2]
            if len(partial) >= 10 and state.exists():
                break
            time.sleep(0.2)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        done_before = sum(kms_version(o.internal) == 2 for o in stored(server.data_dir)[0])
        assert 10 <= done_before < 40, done_before
        assert state.exists()

        proc = admin(env, "rewrap", "--json", str(server.data_dir))
        assert proc.returncode == 0, proc.stderr
        summary = summary_of(proc)
        assert summary["resumed"] is True
        assert summary["objects"] < 40  # started from the checkpoint, not from scratch
        assert summary["failed"] == 0 and summary["behind"] == 0
        assert {kms_version(o.internal) for o in stored(server.data_dir)[0]} == {2}
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(30)
    assert errors == [], errors[:5]
    assert reads > 0
    key.set_min_decryption(2)
    assert admin(env, "verify", str(server.data_dir)).returncode == 0


def test_verify_deep_detects_a_flipped_byte(server: ServerProcess, key: TransitKey) -> None:
    s3 = server.client()
    write_objects(s3, "tamper", 3)
    objects, _ = stored(server.data_dir)
    victim = next(o for o in objects if o.key == "obj/001")
    path = server.data_dir / "blobs" / victim.files[0][:2] / victim.files[0]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    env = server_env(key.creds)
    shallow = admin(env, "verify", str(server.data_dir))
    assert shallow.returncode == 0  # the key still unseals: only the data is damaged
    deep = admin(env, "verify", "--deep", str(server.data_dir))
    assert deep.returncode == 1
    failures = summary_of(deep)["failures"]
    assert [(f["bucket"], f["key"]) for f in failures] == [("tamper", "obj/001")]
    assert "tampered" in failures[0]["error"]


def test_progress_bar_on_a_terminal(server: ServerProcess, key: TransitKey) -> None:
    import pty

    write_objects(server.client(), "tty", 5)
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sealstore", "admin", "verify", str(server.data_dir)],
            env=server_env(key.creds),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=120,
            check=False,
        )
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "\r" in screen and "5/5 objects" in screen and "ETA" in screen and "obj/s" in screen
    assert "objects: 5" in proc.stdout  # the human summary, not JSON
    assert md.META_S3_KMS_SEALED_KEY not in screen
