"""The admin walker visits every version of every object, not only current ones: each
version is sealed under its own key, so verify (and rewrap, migrate-kms) must reach the
noncurrent ones. Over a real FSBackend and the master-key KMS: verify counts every
non-marker version, names a broken noncurrent version, and the checkpoint's low-water mark
never passes a key while one of its versions is unfinished."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import random
from pathlib import Path
from typing import Any

from sealstore.admin.progress import Reporter
from sealstore.admin.records import AuditLog, Metrics
from sealstore.admin.state import Checkpoint
from sealstore.admin.verify import VerifyJob
from sealstore.admin.walker import Outcome, Walker, WalkOptions
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.objects import metadata as md
from sealstore.objects.choice import SSE_S3
from sealstore.objects.service import NewObject, ObjectService
from sealstore.storage import FSBackend, ObjectMeta, UploadMeta, Versioning

KMS_VALUE = "walk-versions:" + "44" * 32
BUCKET = "bkt-v"


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.md5_hex: str | None = hashlib.md5(data, usedforsecurity=False).hexdigest()

    async def __aiter__(self) -> Any:
        yield self.data


class Checked(Checkpoint):
    """Asserts at every save that no key at or below the mark has an unfinished version."""

    done: set[tuple[str, str]]
    every: list[tuple[str, str]]

    def save(self, *, force: bool = False, every: float = 1.0) -> None:
        after = self.bucket(BUCKET).after.encode()
        for key, version in self.every:
            if after and key.encode() <= after:
                assert (key, version) in self.done, f"passed unfinished {key} {version}"
        super().save(force=True)


class Shuffled:
    """Finishes versions in random order, recording each (key, version)."""

    name = "shuffled"

    def __init__(self, done: set[tuple[str, str]]) -> None:
        self.done = done

    def params(self) -> dict[str, Any]:
        return {}

    async def on_object(self, meta: ObjectMeta) -> Outcome:
        await asyncio.sleep(random.random() / 100)
        self.done.add((meta.key, meta.version_label))
        return Outcome("ok")

    async def on_upload(self, upload: UploadMeta) -> Outcome:
        return Outcome("upload")

    def summary(self, failed: int) -> dict[str, Any]:
        return {}


def walker(store: FSBackend, job: Any, cp: Checkpoint, tmp: Path) -> Walker:
    return Walker(
        store,
        job,
        WalkOptions(concurrency=4, rate=0),
        cp,
        Reporter(job.name, json_lines=True, out=io.StringIO(), err=io.StringIO()),
        AuditLog(tmp / "audit.jsonl", job.name),
        Metrics(tmp / "m.prom", job.name),
    )


def test_walker_covers_every_version(tmp_path: Path) -> None:
    async def body() -> None:
        store = FSBackend(tmp_path / "data", gc_grace=0)
        await store.open()
        try:
            service = ObjectService(
                store, MasterKeyKMS.from_env_value(KMS_VALUE), auto_encryption=False
            )
            await store.create_bucket(BUCKET)
            await service.put(BUCKET, "a", Body(b"null"), NewObject("a/b"), sse=SSE_S3)
            await store.put_versioning(BUCKET, Versioning.ENABLED)
            for key, count in (("a", 3), ("b", 4), ("c", 2)):
                for i in range(count):
                    await service.put(BUCKET, key, Body(b"%d" % i), NewObject("a/b"), sse=SSE_S3)
            await store.delete(BUCKET, "b")  # a marker: nothing to verify
            listed = await store.list_versions(BUCKET)
            every = [(m.key, m.version_label) for m in listed.versions if not m.is_delete_marker]
            assert len(every) == 10

            done: set[tuple[str, str]] = set()
            cp = Checked(path=tmp_path / "s.json", job="shuffled", params={})
            cp.done, cp.every = done, every
            summary = await walker(store, Shuffled(done), cp, tmp_path).run()
            assert summary["objects"] == 10 and done == set(every)

            assert every[5][0] == "b"  # a: 4 versions (null included), then b's
            noncurrent = await store.head(BUCKET, "b", every[5][1])
            assert not noncurrent.is_latest
            broken = dict(noncurrent.internal)
            broken[md.META_S3_SEALED_KEY] = base64.b64encode(b"\0" * 64).decode()
            await store.update_internal(noncurrent, broken)
            cp = Checkpoint(path=tmp_path / "v.json", job="verify", params={"deep": True})
            job = VerifyJob(store, service.kms, deep=True)
            summary = await walker(store, job, cp, tmp_path).run()
            assert summary["results"] == {"ok": 9, "failed": 1}
            assert summary["failures"][0]["key"] == f"b (version {noncurrent.version_id})"
        finally:
            await store.close()

    asyncio.run(body())
