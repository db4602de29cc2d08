"""The authenticated object layout: the tag binds bucket, key, size, ETag and every stream's
number, size, package count and stream nonce; real objects written by the object service
(FSBackend + the master-key KMS) verify, and dropping, reordering or resizing parts, or
editing the size to a package boundary, is a mismatch before the first byte; objects without
the entry are legacy (readable, counted); a truncated stream never releases its last batch;
a part rolled back to an earlier upload (same part key) is refused by its bound nonce."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sealstore.crypto import dare
from sealstore.crypto import layout as cl
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.objects import layout
from sealstore.objects import metadata as md
from sealstore.objects.choice import SSE_S3
from sealstore.objects.errors import ObjectIntegrityError
from sealstore.objects.service import NewObject, ObjectService
from sealstore.storage import FSBackend, ObjectMeta
from sealstore.storage.base import DataCorrupted, InvalidPart, InvalidPartOrder

OEK = bytes(range(32))
BUCKET = "bkt"
ATTRS = NewObject("application/x-test")
PART = 64 * 1024  # min part size for these tests: one DARE package
BASE = cl.Layout(
    bucket="b",
    key="k",
    size=3 * PART + 5,
    etag="e-3",
    multipart=True,
    streams=cl.streams_of([(1, PART), (2, 2 * PART), (3, 5)]),
)


# ------------------------------------------------------------------------ crypto.layout


def test_tag_is_deterministic_and_versioned() -> None:
    sealed = cl.seal(OEK, BASE)
    assert sealed.startswith("2:") and len(sealed) == 2 + 64
    assert cl.seal(OEK, BASE) == sealed
    assert cl.verify(OEK, BASE, sealed)
    assert not cl.verify(bytes(32), BASE, sealed)  # another object key


@pytest.mark.parametrize(
    "change",
    [
        {"bucket": "c"},
        {"key": "k/"},
        {"key": "k "},
        {"size": 3 * PART},
        {"etag": "f-3"},
        {"multipart": False},
        {"streams": cl.streams_of([(1, PART), (2, 2 * PART)])},  # dropped part
        {"streams": cl.streams_of([(2, 2 * PART), (1, PART), (3, 5)])},  # reordered
        {"streams": cl.streams_of([(1, PART), (2, 2 * PART), (4, 5)])},  # renumbered
        {"streams": cl.streams_of([(1, PART), (2, PART), (3, PART + 5)])},  # sizes moved
        {"version_id": "0123456789abcdef0123456789abcdef"},  # another version's row
    ],
)
def test_every_bound_field_changes_the_tag(change: dict[str, Any]) -> None:
    sealed = cl.seal(OEK, BASE)
    assert not cl.verify(OEK, dataclasses.replace(BASE, **change), sealed)


def test_fields_are_length_prefixed() -> None:
    a = dataclasses.replace(BASE, bucket="ab", key="c")
    b = dataclasses.replace(BASE, bucket="a", key="bc")
    assert cl.encode(a) != cl.encode(b)


def test_final_package_sequence_is_bound() -> None:
    assert cl.Stream(1, 0).packages == 0
    assert cl.Stream(1, 1).packages == 1
    assert cl.Stream(1, PART).packages == 1
    assert cl.Stream(1, PART + 1).packages == 2


def test_format_1_tags_verify_only_as_the_null_version() -> None:
    legacy = "1:" + cl.tag(OEK, BASE, cl.LEGACY_VERSION).hex()
    assert cl.verify(OEK, BASE, legacy)  # written before versioning: still readable
    assert not cl.verify(OEK, dataclasses.replace(BASE, version_id="0" * 32), legacy)
    assert cl.seal(OEK, BASE) != legacy  # the null version is bound by name in format 2
    versioned = dataclasses.replace(BASE, version_id="1" * 32)
    assert not cl.verify(OEK, BASE, cl.seal(OEK, versioned))


@pytest.mark.parametrize("bad", ["", "1", "3:" + "00" * 32, "1:zz", "1:" + "00" * 31])
def test_malformed_or_unknown_version_is_an_error(bad: str) -> None:
    with pytest.raises(cl.LayoutError):
        cl.verify(OEK, BASE, bad)


# ------------------------------------------------------------------------ real objects


class Body:
    """A request body as the HTTP layer gives it: chunks, then the MD5 of what was read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.md5_hex: str | None = None

    async def _iter(self) -> AsyncIterator[bytes]:
        for pos in range(0, len(self.data), 65536):
            yield self.data[pos : pos + 65536]
        self.md5_hex = hashlib.md5(self.data, usedforsecurity=False).hexdigest()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iter()


Scenario = Callable[[ObjectService, FSBackend], Awaitable[Any]]


def run(tmp_path: Path, fn: Scenario) -> Any:
    async def main() -> Any:
        kms = MasterKeyKMS.from_env_value("test-key:" + "22" * 32)
        async with FSBackend(tmp_path, min_part_size=PART) as store:
            await store.create_bucket(BUCKET)
            return await fn(ObjectService(store, kms, auto_encryption=False), store)

    return asyncio.run(main())


async def read_all(svc: ObjectService, meta: ObjectMeta) -> bytes:
    return b"".join([c async for c in await svc.open(meta, 0, meta.size)])


async def multipart(svc: ObjectService, key: str, datas: list[bytes]) -> ObjectMeta:
    upload = await svc.create_upload(BUCKET, key, ATTRS, sse=SSE_S3)
    listed = []
    for n, data in enumerate(datas, start=1):
        part = await svc.put_part(upload, n, Body(data), max_size=1 << 30)
        listed.append((n, part.etag))
    await svc.complete(upload, listed)
    return await svc.head(BUCKET, key)


def test_single_part_object_verifies_and_size_edit_is_refused(tmp_path: Path) -> None:
    data = os.urandom(2 * dare.PAYLOAD_SIZE + 10)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "k", Body(data), ATTRS, sse=SSE_S3)
        meta = await svc.head(BUCKET, "k")
        assert layout.META_LAYOUT in meta.internal
        assert (await svc.verify(meta)).state is layout.LayoutState.VERIFIED
        assert await read_all(svc, meta) == data
        # the size cut back to a package boundary, stored size and actual size to match
        cut = 2 * dare.PAYLOAD_SIZE
        meta.size, meta.stored_size = cut, dare.encrypted_size(cut)
        meta.internal[md.META_ACTUAL_SIZE] = str(cut)
        oek = await svc._open_key(meta)
        status = layout.verify_layout(meta, oek)
        assert status.state is layout.LayoutState.MISMATCH and not status.readable
        with pytest.raises(ObjectIntegrityError, match="integrity check failed"):
            await svc.open(meta, 0, cut)  # before any iterator exists
        with pytest.raises(ObjectIntegrityError):
            await svc.verify(meta)

    run(tmp_path, fn)


def test_multipart_drop_reorder_resize_are_mismatches(tmp_path: Path) -> None:
    datas = [os.urandom(PART), os.urandom(PART + 7), os.urandom(9)]

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        meta = await multipart(svc, "mp", datas)
        assert (await svc.verify(meta)).state is layout.LayoutState.VERIFIED
        assert await read_all(svc, meta) == b"".join(datas)
        p1, p2, p3 = meta.parts
        f1, f2, f3 = meta.files
        dropped = dataclasses.replace(meta, parts=[p1, p2], files=[f1, f2])
        dropped.size, dropped.stored_size = p1.size + p2.size, p1.stored_size + p2.stored_size
        reordered = dataclasses.replace(meta, parts=[p2, p1, p3], files=[f2, f1, f3])
        for tampered in (dropped, reordered):
            with pytest.raises(ObjectIntegrityError):
                await svc.open(tampered, 0, tampered.size)
        # a structurally impossible edit is caught even without the tag
        resized = dataclasses.replace(meta, size=meta.size - 1)
        status = layout.verify_layout(resized, None)
        assert status.state is layout.LayoutState.UNENCRYPTED  # no key: nothing to check
        status = layout.verify_layout(resized, await svc._open_key(meta))
        assert status.state is layout.LayoutState.MISMATCH and "sum" in status.reason

    run(tmp_path, fn)


def test_completion_checks_the_part_list_before_binding(tmp_path: Path) -> None:
    async def fn(svc: ObjectService, store: FSBackend) -> None:
        upload = await svc.create_upload(BUCKET, "mp", ATTRS, sse=SSE_S3)
        a = await svc.put_part(upload, 1, Body(os.urandom(PART)), max_size=1 << 30)
        b = await svc.put_part(upload, 2, Body(b"x"), max_size=1 << 30)
        with pytest.raises(InvalidPartOrder):
            await svc.complete(upload, [(2, b.etag), (1, a.etag)])
        with pytest.raises(InvalidPart):
            await svc.complete(upload, [(1, a.etag), (2, a.etag)])
        with pytest.raises(InvalidPart):
            await svc.complete(upload, [])
        await svc.complete(upload, [(1, a.etag), (2, b.etag)])
        meta = await svc.head(BUCKET, "mp")
        assert (await svc.verify(meta)).state is layout.LayoutState.VERIFIED

    run(tmp_path, fn)


def test_legacy_objects_stay_readable_and_are_counted(tmp_path: Path) -> None:
    data = os.urandom(1000)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "old", Body(data), ATTRS, sse=SSE_S3)
        meta = await svc.head(BUCKET, "old")
        del meta.internal[layout.META_LAYOUT]  # as written before the entry existed
        before = layout.legacy_reads()
        status = await svc.verify(meta)
        assert status.state is layout.LayoutState.LEGACY and status.readable
        assert await read_all(svc, meta) == data
        assert layout.legacy_reads() == before + 2
        await svc.put(BUCKET, "plain", Body(data), ATTRS, sse=None)
        plain = await svc.head(BUCKET, "plain")
        assert (await svc.verify(plain)).state is layout.LayoutState.UNENCRYPTED
        assert layout.legacy_reads() == before + 2

    run(tmp_path, fn)


def test_unknown_layout_version_is_refused(tmp_path: Path) -> None:
    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "k", Body(b"abc"), ATTRS, sse=SSE_S3)
        meta = await svc.head(BUCKET, "k")
        meta.internal[layout.META_LAYOUT] = "3:" + meta.internal[layout.META_LAYOUT][2:]
        with pytest.raises(ObjectIntegrityError, match="version"):
            await svc.open(meta, 0, 3)

    run(tmp_path, fn)


def test_truncated_legacy_stream_never_releases_its_last_batch(tmp_path: Path) -> None:
    """Without a tag (legacy), a size cut to a package boundary is only noticed at the
    stream's end: the batch holding the would-be final package is not released."""
    data = os.urandom(40 * dare.PAYLOAD_SIZE)  # ~2.5 MiB stored: 3 read batches

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "big", Body(data), ATTRS, sse=SSE_S3)
        meta = await svc.head(BUCKET, "big")
        del meta.internal[layout.META_LAYOUT]
        del meta.internal[md.META_ACTUAL_SIZE]
        cut = 39 * dare.PAYLOAD_SIZE
        meta.size, meta.stored_size = cut, dare.encrypted_size(cut)
        got = []
        with pytest.raises(dare.DareError, match="final package"):
            async for chunk in await svc.open(meta, 0, cut):
                got.append(chunk)
        released = b"".join(got)
        assert data.startswith(released) and len(released) < cut - dare.PAYLOAD_SIZE
        # a one-batch object is verified whole before its first byte
        small = dataclasses.replace(meta, size=dare.PAYLOAD_SIZE)
        small.stored_size = dare.encrypted_size(dare.PAYLOAD_SIZE)
        stream = await svc.open(small, 0, small.size)
        with pytest.raises(dare.DareError):
            await anext(stream)

    run(tmp_path, fn)


def test_truncated_data_file_fails_before_the_first_byte(tmp_path: Path) -> None:
    data = os.urandom(3 * dare.PAYLOAD_SIZE)

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "k", Body(data), ATTRS, sse=SSE_S3)
        meta = await svc.head(BUCKET, "k")
        (blob,) = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
        blob.chmod(0o600)
        with blob.open("r+b") as fh:
            fh.truncate(2 * dare.PACKAGE_SIZE)
        stream = await svc.open(meta, 0, len(data))
        with pytest.raises(DataCorrupted):
            await anext(stream)

    run(tmp_path, fn)


def test_decryptor_refuses_a_stream_with_another_nonce() -> None:
    key = bytes(32)
    enc = dare.DareEncryptor(key)
    stream = bytes(enc.finalize(b"x" * 70000))
    dec = dare.DareDecryptor(key, nonce=enc.nonce)
    assert dec.update(stream) == b"x" * 70000
    other = dare.DareEncryptor(key)
    with pytest.raises(dare.DareError, match="bound"):
        dare.DareDecryptor(key, nonce=other.nonce).update(stream)
    # mid-stream too (a range read starting at package 1)
    with pytest.raises(dare.DareError, match="bound"):
        dare.DareDecryptor(key, start_seq=1, nonce=other.nonce).update(stream[dare.PACKAGE_SIZE :])


def test_rolled_back_part_is_refused_before_the_first_byte(tmp_path: Path) -> None:
    """Part 1 uploaded twice in one upload: both streams are under the same part key, so
    only the bound stream nonce tells the completed one from the replaced one."""
    first, second = os.urandom(PART), os.urandom(PART)
    blobs = tmp_path / "blobs"

    def files() -> set[str]:
        return {p.name for p in blobs.rglob("*") if p.is_file()}

    async def fn(svc: ObjectService, store: FSBackend) -> None:
        upload = await svc.create_upload(BUCKET, "mp", ATTRS, sse=SSE_S3)
        await svc.put_part(upload, 1, Body(first), max_size=1 << 30)
        (old,) = files()
        again = await svc.put_part(upload, 1, Body(second), max_size=1 << 30)
        tail = await svc.put_part(upload, 2, Body(b"end"), max_size=1 << 30)
        assert layout.META_STREAM_NONCE in again.internal
        await svc.complete(upload, [(1, again.etag), (2, tail.etag)])
        meta = await svc.head(BUCKET, "mp")
        assert await read_all(svc, meta) == second + b"end"
        meta.files[0] = old  # the earlier upload of part 1, still on disk until swept
        stream = await svc.open(meta, 0, meta.size)
        with pytest.raises(dare.DareError, match="bound"):
            await anext(stream)
        # and the recorded nonce cannot be swapped along: it is under the tag
        meta.parts[0].internal[layout.META_STREAM_NONCE] = "00" * 12
        with pytest.raises(ObjectIntegrityError):
            await svc.open(meta, 0, meta.size)

    run(tmp_path, fn)


def test_single_part_stream_nonce_is_recorded_and_bound(tmp_path: Path) -> None:
    async def fn(svc: ObjectService, store: FSBackend) -> None:
        await svc.put(BUCKET, "k", Body(b"abc"), ATTRS, sse=SSE_S3)
        meta = await svc.head(BUCKET, "k")
        assert len(bytes.fromhex(meta.internal[layout.META_STREAM_NONCE])) == 12
        meta.internal[layout.META_STREAM_NONCE] = "zz"
        with pytest.raises(ObjectIntegrityError):
            await svc.open(meta, 0, 3)

    run(tmp_path, fn)
