"""The admin walker and its parts over a real FSBackend and the real master-key KMS: the
checkpoint's low-water mark never passes an unfinished object even with items finishing out of
order; a saved checkpoint resumes only the same job with the same parameters and a torn or
foreign file is refused or ignored; a resumed walk skips what was done; one failing object is
listed without stopping the walk; verify finds a broken sealed key; the transit ciphertext
version parser; the master-key KMS refuses rewrap clearly."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from sealstore.admin.progress import Reporter
from sealstore.admin.records import AuditLog, Metrics
from sealstore.admin.state import Checkpoint, load
from sealstore.admin.verify import VerifyJob
from sealstore.admin.walker import Outcome, Walker, WalkOptions
from sealstore.kms.base import KMSRewrapUnsupportedError
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.kms.vault import ciphertext_version
from sealstore.objects import metadata as md
from sealstore.objects.choice import SSE_S3
from sealstore.objects.service import NewObject, ObjectService
from sealstore.storage import FSBackend, ObjectMeta, UploadMeta

KMS_VALUE = "walk-key:" + "22" * 32


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.md5_hex: str | None = None

    async def __aiter__(self) -> Any:
        import hashlib

        self.md5_hex = hashlib.md5(self.data, usedforsecurity=False).hexdigest()
        yield self.data


class RecordingCheckpoint(Checkpoint):
    """Checks the low-water-mark promise at every save."""

    done: set[tuple[str, str]]

    def save(self, *, force: bool = False, every: float = 1.0) -> None:
        for bucket, state in self.buckets.items():
            for b, k in self.all_keys:
                if b == bucket and k.encode() <= state.after.encode():
                    assert (b, k) in self.done, f"checkpoint passed unfinished {b}/{k}"
        super().save(force=True)


class SlowJob:
    """Finishes items in random order; fails one object on purpose."""

    name = "slow"

    def __init__(self, done: set[tuple[str, str]]) -> None:
        self.done = done
        self.seen: list[str] = []

    def params(self) -> dict[str, Any]:
        return {"v": 1}

    async def on_object(self, meta: ObjectMeta) -> Outcome:
        await asyncio.sleep(random.random() / 200)
        self.seen.append(meta.key)
        self.done.add((meta.bucket, meta.key))
        if meta.key == "k07":
            raise RuntimeError("boom")
        return Outcome("touched", changed=True, fields={"n": 1})

    async def on_upload(self, upload: UploadMeta) -> Outcome:
        return Outcome("upload")

    def summary(self, failed: int) -> dict[str, Any]:
        return {"failed_seen": failed}


async def _filled(tmp_path: Path) -> tuple[FSBackend, ObjectService, list[tuple[str, str]]]:
    store = FSBackend(tmp_path / "data", gc_grace=0)
    await store.open()
    service = ObjectService(store, MasterKeyKMS.from_env_value(KMS_VALUE), auto_encryption=False)
    names = []
    for bucket in ("bkt-a", "bkt-b"):
        await store.create_bucket(bucket)
        for i in range(12):
            key = f"k{i:02d}"
            await service.put(bucket, key, Body(b"x" * (i + 1)), NewObject("a/b"), sse=SSE_S3)
            names.append((bucket, key))
    return store, service, names


def _walker(store: FSBackend, job: Any, cp: Checkpoint, out: io.StringIO, tmp: Path) -> Walker:
    return Walker(
        store,
        job,
        WalkOptions(concurrency=4, rate=0),
        cp,
        Reporter(job.name, json_lines=True, out=out, err=io.StringIO()),
        AuditLog(tmp / "audit.jsonl", job.name),
        Metrics(tmp / "m.prom", job.name),
    )


def test_low_water_mark_failures_audit_and_resume(tmp_path: Path) -> None:
    async def body() -> None:
        store, _, names = await _filled(tmp_path)
        try:
            done: set[tuple[str, str]] = set()
            cp = RecordingCheckpoint(path=tmp_path / "cp.json", job="slow", params={"v": 1})
            cp.done, cp.all_keys = done, names  # type: ignore[attr-defined]
            out = io.StringIO()
            summary = await _walker(store, SlowJob(done), cp, out, tmp_path).run()
            assert summary["objects"] == 24 and summary["failed"] == 2
            assert {(f["bucket"], f["key"]) for f in summary["failures"]} == {
                ("bkt-a", "k07"),
                ("bkt-b", "k07"),
            }
            assert not cp.path.exists()  # finished: removed
            audit = (tmp_path / "audit.jsonl").read_text().splitlines()
            assert len(audit) == 22 and json.loads(audit[0])["job"] == "slow"
            assert 'result="touched"} 22' in (tmp_path / "m.prom").read_text()
            lines = [json.loads(x) for x in out.getvalue().splitlines()]
            assert lines[0]["event"] == "start" and lines[-1]["event"] == "summary"

            # a checkpoint half-way through bkt-b: only the rest is walked
            saved = Checkpoint(path=tmp_path / "cp2.json", job="slow", params={"v": 1})
            saved.bucket("bkt-a").objects_done = saved.bucket("bkt-a").uploads_done = True
            saved.bucket("bkt-b").after = "k05"
            saved.save(force=True)
            resumed = load(saved.path, "slow", {"v": 1})
            assert resumed.resumed
            job = SlowJob(set())
            summary = await _walker(store, job, resumed, io.StringIO(), tmp_path).run()
            assert sorted(job.seen) == [f"k{i:02d}" for i in range(6, 12)]
            assert summary["resumed"] is True
        finally:
            await store.close()

    asyncio.run(body())


def test_checkpoint_identity_and_torn_files(tmp_path: Path) -> None:
    cp = Checkpoint(path=tmp_path / "s" / "job.json", job="rewrap", params={"dry_run": False})
    cp.bucket("b").after = "x"
    cp.save(force=True)
    assert (cp.path.stat().st_mode & 0o777) == 0o600
    assert load(cp.path, "rewrap", {"dry_run": False}).buckets["b"].after == "x"
    assert not load(cp.path, "rewrap", {"dry_run": True}).resumed  # other parameters
    assert not load(cp.path, "verify", {"dry_run": False}).resumed  # other job
    assert not load(cp.path, "rewrap", {"dry_run": False}, restart=True).resumed
    cp.path.write_text('{"job": "rew')
    with pytest.raises(ValueError, match="unreadable"):
        load(cp.path, "rewrap", {"dry_run": False})


def test_verify_lists_a_broken_sealed_key(tmp_path: Path) -> None:
    async def body() -> None:
        store, service, _ = await _filled(tmp_path)
        try:
            meta = await store.head("bkt-a", "k03")
            broken = dict(meta.internal)
            broken[md.META_S3_SEALED_KEY] = base64.b64encode(b"\0" * 64).decode()
            await store.update_internal(meta, broken)
            cp = Checkpoint(path=tmp_path / "v.json", job="verify", params={"deep": True})
            job = VerifyJob(store, service.kms, deep=True)
            summary = await _walker(store, job, cp, io.StringIO(), tmp_path).run()
            assert summary["failed"] == 1
            assert summary["failures"][0]["key"] == "k03"
            assert "does not open" in summary["failures"][0]["error"]
            assert summary["results"] == {"ok": 23, "failed": 1}
        finally:
            await store.close()

    asyncio.run(body())


def test_ciphertext_version() -> None:
    assert ciphertext_version(b"vault:v1:abc") == 1
    assert ciphertext_version(b"vault:v42:abc=") == 42
    for bad in (b"vault:vx:abc", b"vault:1:abc", b"vault:v1", b"other:v1:abc", b"\x00" * 64):
        assert ciphertext_version(bad) is None


def test_master_key_refuses_rewrap() -> None:
    kms = MasterKeyKMS.from_env_value(KMS_VALUE)
    with pytest.raises(KMSRewrapUnsupportedError, match="static master key"):
        asyncio.run(kms.key_versions("walk-key"))
    with pytest.raises(KMSRewrapUnsupportedError, match="migrate-kms"):
        asyncio.run(kms.rewrap_key("walk-key", b"x", {}))


def test_verify_reports_a_layout_mismatch_through_the_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sealstore.objects import maintenance

    def check(meta: ObjectMeta, oek: bytes) -> str:
        assert len(oek) == 32  # called with the opened object key
        if meta.key == "k05":
            raise maintenance.LayoutMismatch("size differs from the bound layout")
        return "legacy"

    monkeypatch.setattr(maintenance, "LAYOUT_CHECK", check)

    async def body() -> None:
        store, service, _ = await _filled(tmp_path)
        try:
            cp = Checkpoint(path=tmp_path / "v.json", job="verify", params={"deep": False})
            job = VerifyJob(store, service.kms)
            summary = await _walker(store, job, cp, io.StringIO(), tmp_path).run()
            assert [(f["bucket"], f["key"]) for f in summary["failures"]] == [
                ("bkt-a", "k05"),
                ("bkt-b", "k05"),
            ]
            assert "layout mismatch" in summary["failures"][0]["error"]
            assert summary["layout"] == {"legacy": 22, "mismatch": 2}
        finally:
            await store.close()

    asyncio.run(body())
