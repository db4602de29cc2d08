"""No two distinct object keys share a key-encryption key and KMS context: sealed keys and
contexts bind the exact ``bucket/key`` (not Go's cleaned path, under which ``a//b`` = ``a/b``
and ``dir/`` = ``dir``), the exact path equals MinIO's for every key MinIO encrypts, and a
sealed key moved between such keys by the real object service fails to open; only an empty
legacy folder marker may still open with the cleaned path."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sealstore.crypto import keys
from sealstore.kms.base import KMSDecryptError
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.objects import layout
from sealstore.objects import metadata as md
from sealstore.objects.choice import SSE_S3, SSEChoice
from sealstore.objects.service import NewObject, ObjectService
from sealstore.storage import FSBackend

DEK = bytes(range(32))
PAIRS = [("a/b", "a//b"), ("dir", "dir/"), ("x/y/", "x//y"), ("a/b", "a/b/")]


@pytest.mark.parametrize(("one", "other"), PAIRS)
def test_exact_binding_separates_keys_that_clean_alike(one: str, other: str) -> None:
    assert keys.go_path_join("bkt", one) == keys.go_path_join("bkt", other)
    assert keys.object_path("bkt", one) != keys.object_path("bkt", other)
    oek = keys.generate_object_key(DEK)
    sealed = keys.seal_object_key(oek, DEK, "SSE-S3", "bkt", one, exact=True)
    assert keys.unseal_object_key(sealed, DEK, "SSE-S3", "bkt", one, exact=True) == oek
    with pytest.raises(keys.KeyMismatchError):
        keys.unseal_object_key(sealed, DEK, "SSE-S3", "bkt", other, exact=True)
    assert md.object_context("bkt", one) != md.object_context("bkt", other)
    assert md.kms_context("bkt", one, {"a": "b"}) != md.kms_context("bkt", other, {"a": "b"})


@pytest.mark.parametrize("key", ["a/b", "obj", "dir/sub/file.txt", "ü/ß", "a b/c"])
def test_exact_binding_is_minio_binding_for_clean_keys(key: str) -> None:
    assert keys.is_clean_key(key)
    iv = os.urandom(32)
    oek = keys.generate_object_key(DEK)
    minio = keys.seal_object_key(oek, DEK, "SSE-S3", "bkt", key, iv=iv)
    # what MinIO sealed opens with exact binding, and the KMS context is MinIO's
    assert keys.unseal_object_key(minio, DEK, "SSE-S3", "bkt", key, exact=True) == oek
    assert md.object_context("bkt", key) == {"bkt": keys.go_path_join("bkt", key)}


@pytest.mark.parametrize("key", ["dir/", "a//b", "/a", "a/./b"])
def test_unclean_keys_are_recognised(key: str) -> None:
    assert not keys.is_clean_key(key)


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.md5_hex: str | None = None

    async def _iter(self) -> AsyncIterator[bytes]:
        if self.data:
            yield self.data
        self.md5_hex = hashlib.md5(self.data, usedforsecurity=False).hexdigest()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iter()


SEALING = [
    md.META_SEAL_ALGORITHM,
    md.META_IV,
    md.META_S3_SEALED_KEY,
    md.META_KMS_SEALED_KEY,
    md.META_S3_KMS_KEY_ID,
    md.META_S3_KMS_SEALED_KEY,
    md.META_CONTEXT,
]


@pytest.mark.parametrize("choice", [SSE_S3, SSEChoice(md.DOMAIN_SSE_KMS, None, {"app": "x"})])
@pytest.mark.parametrize(("one", "other"), PAIRS)
def test_sealed_key_moved_between_alike_keys_does_not_open(
    tmp_path: Path, one: str, other: str, choice: SSEChoice
) -> None:
    async def main() -> None:
        kms = MasterKeyKMS.from_env_value("test-key:" + "33" * 32)
        async with FSBackend(tmp_path) as store:
            await store.create_bucket("bkt")
            svc = ObjectService(store, kms, auto_encryption=False)
            for key in (one, other):
                await svc.put("bkt", key, Body(key.encode() * 9), NewObject("t"), sse=choice)
            src, dst = await svc.head("bkt", one), await svc.head("bkt", other)
            for name in SEALING:
                if name in src.internal:
                    dst.internal[name] = src.internal[name]
            dst.internal.pop(layout.META_LAYOUT)  # even posing as a legacy object
            # the master key binds the context (KMSDecryptError); a transit key that ignores
            # it leaves the KEK to refuse (KeyMismatchError): both are 403 AccessDenied
            with pytest.raises((KMSDecryptError, keys.KeyMismatchError)):
                await svc.open(dst, 0, dst.size)
            with pytest.raises((KMSDecryptError, keys.KeyMismatchError)):
                await svc.verify(dst)

    asyncio.run(main())


def test_empty_legacy_folder_marker_still_opens(tmp_path: Path) -> None:
    """A ``dir/`` marker sealed (before exact binding) under the cleaned path has no data
    to substitute, so it stays readable; with data, the cleaned path is never tried."""

    async def main() -> None:
        kms = MasterKeyKMS.from_env_value("test-key:" + "44" * 32)
        async with FSBackend(tmp_path) as store:
            await store.create_bucket("bkt")
            svc = ObjectService(store, kms, auto_encryption=False)
            await svc.put("bkt", "dir", Body(b""), NewObject("t"), sse=SSE_S3)
            await svc.put("bkt", "dir/", Body(b""), NewObject("t"), sse=SSE_S3)
            marker = await svc.head("bkt", "dir/")
            legacy = await svc.head("bkt", "dir")  # sealed under bkt/dir, as before
            for name in SEALING:
                if name in legacy.internal:
                    marker.internal[name] = legacy.internal[name]
            marker.internal.pop(layout.META_LAYOUT)
            assert (await svc.verify(marker)).state is layout.LayoutState.LEGACY
            assert [c async for c in await svc.open(marker, 0, 0)] == []
            await svc.put("bkt", "full", Body(b"data"), NewObject("t"), sse=SSE_S3)
            full = await svc.head("bkt", "full")
            marker.internal.update({n: full.internal[n] for n in SEALING if n in full.internal})
            with pytest.raises(KMSDecryptError):  # empty, but sealed for another name
                await svc.verify(marker)

    asyncio.run(main())
