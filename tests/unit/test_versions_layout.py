"""Each version is its own sealed object, and its layout binds its version id: through the
real object service (FSBackend + master-key KMS), encrypted versions of one key get distinct
object keys and read back under their ids, a row claiming another version's id (what swapping
two versions' index rows yields) is refused before any byte, and so is a format-1 tag on a
row that claims a version id."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sealstore.crypto import layout as cl
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.objects import layout
from sealstore.objects import metadata as md
from sealstore.objects.choice import SSE_S3
from sealstore.objects.errors import ObjectIntegrityError
from sealstore.objects.service import NewObject, ObjectService
from sealstore.storage import FSBackend, ObjectMeta, Versioning

BUCKET = "bkt"


class Body:
    """A request body as the HTTP layer gives it: chunks, then the MD5 of what was read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.md5_hex: str | None = hashlib.md5(data, usedforsecurity=False).hexdigest()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


async def read(svc: ObjectService, meta: ObjectMeta) -> bytes:
    return b"".join([c async for c in await svc.open(meta, 0, meta.size)])


def test_versions_are_sealed_and_bound_separately(tmp_path: Path) -> None:
    async def main() -> None:
        kms = MasterKeyKMS.from_env_value("test-key:" + "33" * 32)
        async with FSBackend(tmp_path) as store:
            await store.create_bucket(BUCKET)
            await store.put_versioning(BUCKET, Versioning.ENABLED)
            svc = ObjectService(store, kms, auto_encryption=False)
            attrs = NewObject("application/x-test")
            v1 = await svc.put(BUCKET, "k", Body(b"first"), attrs, sse=SSE_S3)
            v2 = await svc.put(BUCKET, "k", Body(b"second"), attrs, sse=SSE_S3)
            assert v1.version_id and v2.version_id and v1.version_id != v2.version_id
            sealed = {md.ci_get(m.internal, md.META_S3_SEALED_KEY) for m in (v1, v2)}
            assert len(sealed) == 2  # one object key per version
            old = await svc.head(BUCKET, "k", v1.version_id)
            assert await read(svc, old) == b"first"
            assert old.internal[layout.META_LAYOUT].startswith("2:")

            swapped = dataclasses.replace(old, version_id=v2.version_id)
            with pytest.raises(ObjectIntegrityError):
                await svc.open(swapped, 0, swapped.size)
            as_null = dataclasses.replace(old, version_id=None)
            with pytest.raises(ObjectIntegrityError):
                await svc.open(as_null, 0, as_null.size)

            oek = await svc._open_key(old)
            assert oek is not None
            legacy = "1:" + cl.tag(oek, layout.describe(old), cl.LEGACY_VERSION).hex()
            forged = dataclasses.replace(old, internal={**old.internal, layout.META_LAYOUT: legacy})
            with pytest.raises(ObjectIntegrityError):
                await svc.open(forged, 0, forged.size)
            null_row = dataclasses.replace(forged, version_id=None)
            assert await read(svc, null_row) == b"first"  # format 1 = a pre-versioning object

    asyncio.run(main())
