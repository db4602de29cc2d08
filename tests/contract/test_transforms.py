"""Contract: writer counters and transforms. `accepted` counts the bytes given to `write`,
`written` the stored bytes; a write transform (a real DARE encryptor) is driven in stream
order, never concurrently, off the event loop, and finalized exactly once at commit, so the
stored bytes are a valid DARE stream of the plaintext; a read transform (a real DARE
decryptor) sees the stored bytes of the requested range in order and its empty results are
not yielded. Also: every writer the backend returns satisfies the Protocols."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from sealstore.crypto.dare import (
    PACKAGE_SIZE,
    PAYLOAD_SIZE,
    DareDecryptor,
    DareEncryptor,
    encrypted_size,
)
from sealstore.storage.base import EntityTooSmall, ObjectMeta
from sealstore.storage.contract import (
    Buffer,
    ObjectWriter,
    PartWriter,
    Store,
    WriteTransform,
)
from tests.contract.backends import StoreSite
from tests.contract.support import (
    KIB,
    MIB,
    RecordingTransform,
    content,
    drain,
    md5hex,
    put,
    put_part,
    read_all,
)

TRIVIAL = 64 * KIB  # at most this much transform work may run on the event loop thread


def recording_encryptor(key: bytes) -> RecordingTransform:
    return RecordingTransform(DareEncryptor(key), threading.get_ident())


def dare_decrypt(key: bytes, stored: bytes, start_seq: int = 0) -> bytes:
    decryptor = DareDecryptor(key, start_seq=start_seq)
    out = decryptor.update(stored)
    decryptor.finalize()
    return out


async def test_store_and_writers_satisfy_the_protocols(store: Store, bucket: str) -> None:
    assert isinstance(store, Store)
    assert isinstance(DareEncryptor(os.urandom(32)), WriteTransform)
    async with await store.new_writer(bucket, "k") as writer:
        assert isinstance(writer, ObjectWriter)
    upload = await store.create_upload(bucket, "k", ObjectMeta(bucket, "k"))
    async with await store.new_part_writer(upload, 1) as part_writer:
        assert isinstance(part_writer, PartWriter)


async def test_counters_without_a_transform(store: Store, bucket: str) -> None:
    upload = await store.create_upload(bucket, "counted", ObjectMeta(bucket, "counted"))
    object_writer = await store.new_writer(bucket, "counted")
    part_writer = await store.new_part_writer(upload, 1)
    for writer in (object_writer, part_writer):
        assert (writer.accepted, writer.written) == (0, 0)
        total = 0
        for size in (10, MIB + 1, 3, 2 * MIB):
            await writer.write(content(size, size))
            total += size
            assert writer.accepted == total
            assert writer.written == total  # no transform: stored bytes are the given bytes
    meta = await object_writer.commit(ObjectMeta(bucket, "counted", size=total))
    part = await part_writer.commit("e", total, {})
    assert meta.stored_size == part.stored_size == total
    for writer in (object_writer, part_writer):
        assert (writer.accepted, writer.written) == (total, total)


@pytest.mark.parametrize("size", [0, 1, PAYLOAD_SIZE, 3 * MIB + 12345])
async def test_write_transform_dare(store: Store, bucket: str, size: int) -> None:
    key = os.urandom(32)
    plain = content(("dare", size), size)
    transform = recording_encryptor(key)
    writer = await store.new_writer(bucket, "sealed")
    writer.set_transform(transform)
    previous = 0
    for pos in range(0, size, 100_000):
        await writer.write(plain[pos : pos + 100_000])
        assert writer.accepted == min(pos + 100_000, size)
        # before commit only whole, non-final packages can have been produced
        assert writer.written % PACKAGE_SIZE == 0
        assert previous <= writer.written <= encrypted_size(writer.accepted)
        previous = writer.written
    assert transform.finalized == 0
    meta = await writer.commit(ObjectMeta(bucket, "sealed", size=size, etag="e"))

    assert transform.finalized == 1
    assert transform.updates_after_finalize == 0
    assert transform.overlaps == 0
    assert transform.bytes_on_loop <= TRIVIAL
    assert bytes(transform.fed) == plain  # every byte, in stream order
    assert (writer.accepted, writer.written) == (size, encrypted_size(size))
    assert (meta.size, meta.stored_size) == (size, encrypted_size(size))
    head = await store.head(bucket, "sealed")
    assert (head.size, head.stored_size) == (size, encrypted_size(size))
    stored = await read_all(store, head)
    assert stored == bytes(transform.produced)
    assert dare_decrypt(key, stored) == plain


async def test_abort_never_finalizes(store: Store, bucket: str) -> None:
    transform = recording_encryptor(os.urandom(32))
    async with await store.new_writer(bucket, "aborted") as writer:
        writer.set_transform(transform)
        await writer.write(content("abort", 2 * MIB))
    assert transform.finalized == 0
    assert (await store.list_objects(bucket)).objects == []


async def test_part_write_transform_and_plaintext_part_sizes(
    store: Store, bucket: str, site: StoreSite
) -> None:
    floor = site.min_part_size
    keys = [os.urandom(32) for _ in range(3)]
    plains = [content("ep1", floor), content("ep2", floor - 1), content("ep3", 1000)]
    upload = await store.create_upload(bucket, "enc", ObjectMeta(bucket, "enc"))
    parts = []
    for number, (key, plain) in enumerate(zip(keys, plains, strict=True), 1):
        transform = recording_encryptor(key)
        part = await put_part(store, upload, number, plain, transform=transform)
        assert transform.finalized == 1 and transform.overlaps == 0
        assert (part.size, part.stored_size) == (len(plain), encrypted_size(len(plain)))
        parts.append(part)
    listed, _ = await store.list_parts(upload)
    assert [(p.size, p.stored_size) for p in listed] == [(p.size, p.stored_size) for p in parts]

    # part 2 stores more than the floor but its plaintext is one byte short of it
    assert parts[1].stored_size >= floor
    with pytest.raises(EntityTooSmall):
        await store.complete_upload(
            upload, [(p.number, p.etag) for p in parts], ObjectMeta(bucket, "enc")
        )
    meta = await store.complete_upload(
        upload, [(1, parts[0].etag), (3, parts[2].etag)], ObjectMeta(bucket, "enc")
    )
    assert meta.size == floor + 1000
    assert meta.stored_size == encrypted_size(floor) + encrypted_size(1000)
    first = await read_all(store, meta, 0, meta.parts[0].stored_size)
    second = await read_all(store, meta, meta.parts[0].stored_size)
    assert dare_decrypt(keys[0], first) == plains[0]
    assert dare_decrypt(keys[2], second) == plains[2]


async def test_read_transform_decrypts_whole_and_ranged(store: Store, bucket: str) -> None:
    key = os.urandom(32)
    plain = content("read-dare", 40 * PAYLOAD_SIZE + 999)
    meta = await put(store, bucket, "sealed", plain, step=MIB, transform=DareEncryptor(key))
    loop_thread = threading.get_ident()
    on_loop = 0

    decryptor = DareDecryptor(key)

    def decrypt(chunk: bytes) -> Buffer:
        nonlocal on_loop
        if threading.get_ident() == loop_thread:
            on_loop += len(chunk)
        return decryptor.update(chunk)

    assert await read_all(store, meta, transform=decrypt) == plain
    decryptor.finalize()
    assert on_loop <= TRIVIAL

    # packages 17..19 only: a ranged GET decrypts from the package's sequence number
    decryptor = DareDecryptor(key, start_seq=17)
    got = await read_all(store, meta, 17 * PACKAGE_SIZE, 3 * PACKAGE_SIZE, decrypt)
    assert got == plain[17 * PAYLOAD_SIZE : 20 * PAYLOAD_SIZE]


async def test_read_transform_sees_the_range_in_order(store: Store, bucket: str) -> None:
    data = content("plain-read", 3 * MIB + 5)
    meta = await put(store, bucket, "plain", data, step=MIB)
    seen = bytearray()
    calls = 0
    held = b""

    busy = threading.Lock()
    overlaps = 0

    def hold_every_other(chunk: bytes) -> bytes:
        """Returns nothing on odd calls (holding the chunk back), both on even ones."""
        nonlocal calls, held, overlaps
        if not busy.acquire(blocking=False):
            overlaps += 1
            busy.acquire()
        try:
            calls += 1
            seen.extend(chunk)
            if calls % 2:
                held = bytes(chunk)
                return b""
            out, held = held + bytes(chunk), b""
            return out
        finally:
            busy.release()

    chunks = [bytes(c) async for c in store.read(meta, 10, 3 * MIB, transform=hold_every_other)]
    assert bytes(seen) == data[10 : 10 + 3 * MIB]
    assert calls >= 2, "the backend never split a 3 MiB read; the hold-back case is untested"
    assert all(chunks), "an empty transform result was yielded"
    assert overlaps == 0, "the transform was called concurrently"
    assert b"".join(chunks) + held == data[10 : 10 + 3 * MIB]


async def test_read_transform_runs_in_order_under_concurrent_reads(
    store: Store, bucket: str
) -> None:
    """Several GETs of one encrypted object at once: each decryptor gets its own stream."""
    key = os.urandom(32)
    plain = content("many", 2 * MIB + 77)
    meta = await put(store, bucket, "many", plain, transform=DareEncryptor(key))

    async def get() -> bytes:
        decryptor = DareDecryptor(key)
        out = await drain(store.read(meta, transform=decryptor.update))
        decryptor.finalize()
        return out

    results = await asyncio.gather(*(get() for _ in range(4)))
    assert all(r == plain for r in results)
    assert md5hex(results[0]) == md5hex(plain)
