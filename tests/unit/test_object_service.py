"""The object service over a real FSBackend and the real master-key KMS: plain and encrypted
PUT/GET, ranges across multipart parts with per-part keys, copies that re-encrypt under the
destination's path, the encryption precedence, a KMS outage that writes nothing, and tampered
stored bytes that fail before the first plaintext byte."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sealstore.crypto import dare, keys
from sealstore.kms.base import KMSUnavailableError
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.kms.vault import VaultKMS
from sealstore.objects import metadata as md
from sealstore.objects import sealing
from sealstore.objects.choice import SSE_S3, SSEChoice
from sealstore.objects.errors import BadDigest, InvalidRequest, KMSNotConfigured
from sealstore.objects.service import NewObject, ObjectService
from sealstore.storage import FSBackend, NoSuchKey, ObjectMeta
from sealstore.storage.base import MIN_PART_SIZE, InvalidPart

KMS_VALUE = "test-key:" + "11" * 32
BUCKET = "bkt"
ATTRS = NewObject("application/x-test", {"x-amz-meta-a": "1"}, {"Cache-Control": "no-cache"})


class Body:
    """A request body as the HTTP layer gives it: chunks, then the MD5 of what was read."""

    def __init__(self, data: bytes, step: int = 65536) -> None:
        self.data, self.step = data, step
        self.md5_hex: str | None = None

    async def _iter(self) -> AsyncIterator[bytes]:
        digest = hashlib.md5(usedforsecurity=False)
        for pos in range(0, len(self.data), self.step):
            chunk = self.data[pos : pos + self.step]
            digest.update(chunk)
            yield chunk
        self.md5_hex = digest.hexdigest()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iter()


Scenario = Callable[[ObjectService, FSBackend], Awaitable[Any]]


def run(tmp_path: Path, fn: Scenario, *, kms: Any = "master", auto: bool = False, **fs: Any) -> Any:
    async def main() -> Any:
        the_kms = MasterKeyKMS.from_env_value(KMS_VALUE) if kms == "master" else kms
        async with FSBackend(tmp_path, **fs) as store:
            await store.create_bucket(BUCKET)
            return await fn(ObjectService(store, the_kms, auto_encryption=auto), store)

    return asyncio.run(main())


async def read(svc: ObjectService, meta: ObjectMeta, offset: int = 0, length: int | None = None):
    n = meta.size - offset if length is None else length
    return b"".join([c async for c in await svc.open(meta, offset, n)])


async def raw(store: FSBackend, meta: ObjectMeta) -> bytes:
    return b"".join([c async for c in store.read(meta)])


def test_plain_put_and_get(tmp_path: Path) -> None:
    data = os.urandom(300_000)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        meta = await svc.put(BUCKET, "k", Body(data), ATTRS, sse=None)
        assert meta.etag == hashlib.md5(data).hexdigest() and meta.size == len(data)
        assert not md.is_encrypted(meta.internal)
        head = await svc.head(BUCKET, "k")
        assert (head.content_type, head.user_meta, head.headers) == (
            ATTRS.content_type,
            ATTRS.user_meta,
            ATTRS.headers,
        )
        assert await raw(store, head) == data  # stored as is
        assert await read(svc, head) == data
        assert await read(svc, head, 1000, 5) == data[1000:1005]

    run(tmp_path, fn)


def test_sse_s3_put_stores_only_ciphertext_and_sealed_metadata(tmp_path: Path) -> None:
    data = os.urandom(3 * dare.PAYLOAD_SIZE + 17)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        meta = await svc.put(BUCKET, "k", Body(data), ATTRS, sse=SSE_S3)
        head = await svc.head(BUCKET, "k")
        assert md.sse_kind(head.internal) == md.DOMAIN_SSE_S3
        assert head.stored_size == dare.encrypted_size(len(data))
        assert head.internal[md.META_ACTUAL_SIZE] == str(len(data))
        stored = await raw(store, head)
        assert data[:64] not in stored
        # the sealed ETag opens to the plaintext MD5 with the object key
        oek = await sealing.open_object_key(svc.kms, head.internal, BUCKET, "k")  # type: ignore[arg-type]
        assert sealing.unseal_etag_hex(oek, head.internal[md.META_SEALED_ETAG]) == meta.etag
        assert dare.decrypt(oek, stored) == data
        assert await read(svc, head) == data
        for off, n in [(0, 1), (dare.PAYLOAD_SIZE - 1, 2), (len(data) - 5, 5)]:
            assert await read(svc, head, off, n) == data[off : off + n]

    run(tmp_path, fn)


def test_bad_digest_stores_nothing(tmp_path: Path) -> None:
    async def fn(svc: ObjectService, store: FSBackend) -> None:
        with pytest.raises(BadDigest):
            await svc.put(BUCKET, "k", Body(b"abc"), ATTRS, sse=SSE_S3, content_md5="0" * 32)
        with pytest.raises(NoSuchKey):
            await svc.head(BUCKET, "k")

    run(tmp_path, fn)


def test_encryption_precedence_auto_bucket_rule_and_no_kms(tmp_path: Path) -> None:
    rule = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ServerSideEncryptionConfiguration xmlns='
        '"http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ApplyServerSideEncryptionByDefault>'
        "<SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>"
        "</ServerSideEncryptionConfiguration>"
    )

    async def plain_bucket(svc: ObjectService, store: FSBackend) -> None:
        assert await svc.decide(BUCKET, None) is None
        await store.put_bucket_config(BUCKET, "encryption", rule)
        assert await svc.decide(BUCKET, None) == SSE_S3  # the bucket default rule
        kms_choice = SSEChoice(md.DOMAIN_SSE_KMS, "test-key")
        assert await svc.decide(BUCKET, kms_choice) == kms_choice  # the request wins
        meta = await svc.put(BUCKET, "k", Body(b"x"), ATTRS, sse=None)
        assert md.sse_kind(meta.internal) == md.DOMAIN_SSE_S3

    run(tmp_path / "a", plain_bucket)

    async def auto(svc: ObjectService, store: FSBackend) -> None:
        assert await svc.decide(BUCKET, None) == SSE_S3

    run(tmp_path / "b", auto, auto=True)

    async def no_kms(svc: ObjectService, store: FSBackend) -> None:
        assert await svc.decide(BUCKET, None) is None
        with pytest.raises(KMSNotConfigured):
            await svc.put(BUCKET, "k", Body(b"x"), ATTRS, sse=SSE_S3)
        with pytest.raises(NoSuchKey):
            await svc.head(BUCKET, "k")

    run(tmp_path / "c", no_kms, kms=None)


def test_kms_outage_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    dead = VaultKMS(
        "http://127.0.0.1:1", "role", "secret", "k", connect_timeout=0.5, request_timeout=1.0
    )

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        with pytest.raises(KMSUnavailableError):
            await svc.put(BUCKET, "k", Body(os.urandom(10_000)), ATTRS, sse=SSE_S3)
        with pytest.raises(NoSuchKey):
            await svc.head(BUCKET, "k")
        assert [p for p in (tmp_path / "tmp").iterdir()] == []  # no temp data left either
        await dead.close()

    run(tmp_path, fn, kms=dead)


def test_copy_reencrypts_under_the_destination_path(tmp_path: Path) -> None:
    data = os.urandom(200_000)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        src = await svc.put(BUCKET, "src", Body(data), ATTRS, sse=SSE_S3)
        src = await svc.head(BUCKET, "src")
        dst = await svc.copy(src, BUCKET, "dst", attrs=None, sse=None)
        head = await svc.head(BUCKET, "dst")
        assert md.sse_kind(head.internal) == md.DOMAIN_SSE_S3  # inherited: stays encrypted
        assert dst.etag == src.etag and head.user_meta == src.user_meta
        assert head.internal[md.META_S3_SEALED_KEY] != src.internal[md.META_S3_SEALED_KEY]
        assert await raw(store, head) != await raw(store, src)
        assert await read(svc, head) == data
        # a copy onto itself must change something
        with pytest.raises(InvalidRequest):
            await svc.copy(src, BUCKET, "src", attrs=None, sse=None)
        # plaintext source -> encrypted destination when asked
        plain = await svc.put(BUCKET, "plain", Body(data), ATTRS, sse=None)
        enc = await svc.copy(plain, BUCKET, "enc", attrs=NewObject("text/plain"), sse=SSE_S3)
        assert md.is_encrypted(enc.internal) and enc.content_type == "text/plain"
        assert await read(svc, await svc.head(BUCKET, "enc")) == data

    run(tmp_path, fn)


def test_multipart_parts_have_their_own_keys_and_ranges_cross_parts(tmp_path: Path) -> None:
    p1, p2, p3 = os.urandom(MIN_PART_SIZE), os.urandom(MIN_PART_SIZE + 3), os.urandom(1000)
    whole = p1 + p2 + p3

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        upload = await svc.create_upload(BUCKET, "mp", ATTRS, sse=SSE_S3)
        assert md.META_ENCRYPTED_MULTIPART in upload.meta.internal
        parts = []
        for n, data in [(1, p1), (2, p2)]:
            part = await svc.put_part(upload, n, Body(data), max_size=1 << 30)
            assert part.size == len(data) and part.etag == hashlib.md5(data).hexdigest()
            parts.append((n, part.etag))
        src = await svc.put(BUCKET, "src", Body(p3), ATTRS, sse=None)
        part3 = await svc.copy_part(upload, 3, src, 0, len(p3))
        parts.append((3, part3.etag))
        with pytest.raises(InvalidPart):
            await svc.complete(upload, [(1, "nothex")])
        done = await svc.complete(upload, parts)
        digest = hashlib.md5(b"".join(bytes.fromhex(e) for _, e in parts)).hexdigest()
        assert done.etag == f"{digest}-3"
        head = await svc.head(BUCKET, "mp")
        oek = await sealing.open_object_key(svc.kms, head.internal, BUCKET, "mp")  # type: ignore[arg-type]
        stored = await raw(store, head)
        first = stored[: head.parts[0].stored_size]
        assert dare.decrypt(keys.derive_part_key(oek, 1), first) == p1  # per-part key
        assert await read(svc, head) == whole
        for off, n in [(len(p1) - 10, 20), (len(p1) - 1, len(p2) + 2), (len(whole) - 3, 3)]:
            assert await read(svc, head, off, n) == whole[off : off + n]

    run(tmp_path, fn)


def test_tampered_first_package_fails_before_the_first_byte(tmp_path: Path) -> None:
    data = os.urandom(2 * dare.PAYLOAD_SIZE)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "k", Body(data), ATTRS, sse=SSE_S3)
        head = await svc.head(BUCKET, "k")
        (blob,) = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
        stored = bytearray(blob.read_bytes())
        stored[100] ^= 1
        blob.chmod(0o600)
        blob.write_bytes(bytes(stored))
        stream = await svc.open(head, 0, len(data))  # the key opens; no byte read yet
        with pytest.raises(dare.DareError):
            await anext(stream)

    run(tmp_path, fn)


def test_delete_is_idempotent(tmp_path: Path) -> None:
    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "k", Body(b"x"), ATTRS, sse=None)
        await svc.delete(BUCKET, "k")
        await svc.delete(BUCKET, "k")
        with pytest.raises(NoSuchKey):
            await svc.head(BUCKET, "k")

    run(tmp_path, fn)
