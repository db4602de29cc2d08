"""Contract: single objects. A committed object reads back with its metadata; nothing of a
new object is visible before commit; abort (explicit or by leaving `async with`) leaves
nothing; a replace is atomic (a started reader keeps the old bytes, head sees the new);
idempotent delete and NoSuchKey; key validation; stored-byte ranges, also across multipart parts."""

from __future__ import annotations

import asyncio
import time

import pytest

from sealstore.storage.base import InvalidObjectName, NoSuchKey, ObjectMeta
from sealstore.storage.contract import Store
from tests.contract.backends import StoreSite
from tests.contract.support import (
    KIB,
    MIB,
    content,
    drain,
    md5hex,
    put,
    put_multipart,
    read_all,
    sha256hex,
)


async def test_commit_then_head_and_read(store: Store, bucket: str) -> None:
    data = content("roundtrip", 300 * KIB + 7)
    before = time.time()
    committed = await put(
        store,
        bucket,
        "dir/ключ ☃.bin",
        data,
        content_type="text/x-contract",
        user_meta={"colour": "blau", "note": "cödé ☃"},
        headers={"Cache-Control": "no-cache"},
        internal={"X-Sealstore-Test": "sealed"},
    )
    assert (committed.bucket, committed.key) == (bucket, "dir/ключ ☃.bin")
    assert committed.size == committed.stored_size == len(data)
    assert committed.etag == md5hex(data)
    assert committed.parts == []
    assert before - 86400 < committed.last_modified < time.time() + 86400

    head = await store.head(bucket, "dir/ключ ☃.bin")
    for meta in (committed, head):
        assert meta.size == meta.stored_size == len(data)
        assert meta.etag == md5hex(data)
        assert meta.content_type == "text/x-contract"
        assert meta.user_meta == {"colour": "blau", "note": "cödé ☃"}
        assert meta.headers == {"Cache-Control": "no-cache"}
        assert meta.internal == {"X-Sealstore-Test": "sealed"}
        assert await read_all(store, meta) == data
    # commit returns the published time; 1 s of slack for backends that store seconds
    assert abs(head.last_modified - committed.last_modified) <= 1.0

    listed = (await store.list_objects(bucket)).objects
    assert [m.key for m in listed] == ["dir/ключ ☃.bin"]
    assert listed[0].size == len(data) and listed[0].etag == md5hex(data)
    assert await read_all(store, listed[0]) == data  # listed metadata is readable too


async def test_empty_object(store: Store, bucket: str) -> None:
    meta = await put(store, bucket, "empty", b"")
    assert meta.size == meta.stored_size == 0
    head = await store.head(bucket, "empty")
    assert head.size == 0
    assert await read_all(store, head) == b""
    assert await read_all(store, head, 0, 0) == b""


async def test_nothing_visible_before_commit(store: Store, bucket: str) -> None:
    await put(store, bucket, "replaced", b"old bytes")
    fresh = await store.new_writer(bucket, "fresh")
    replacing = await store.new_writer(bucket, "replaced")
    big = content("big", 3 * MIB)  # past any write buffering, so bytes reached the medium
    for writer in (fresh, replacing):
        for pos in range(0, len(big), 256 * KIB):
            await writer.write(big[pos : pos + 256 * KIB])

    with pytest.raises(NoSuchKey):
        await store.head(bucket, "fresh")
    old = await store.head(bucket, "replaced")
    assert old.size == 9 and await read_all(store, old) == b"old bytes"
    listed = await store.list_objects(bucket)
    assert [(m.key, m.size) for m in listed.objects] == [("replaced", 9)]

    await fresh.commit(ObjectMeta(bucket, "fresh", size=len(big), etag=md5hex(big)))
    await replacing.commit(ObjectMeta(bucket, "replaced", size=len(big), etag=md5hex(big)))
    for key in ("fresh", "replaced"):
        assert await read_all(store, await store.head(bucket, key)) == big


async def test_abort_leaves_nothing(store: Store, bucket: str) -> None:
    await put(store, bucket, "kept", b"kept bytes")
    for key in ("new", "kept"):
        writer = await store.new_writer(bucket, key)
        await writer.write(content(key, 2 * MIB))
        await writer.abort()
        await writer.abort()  # idempotent
    with pytest.raises(NoSuchKey):
        await store.head(bucket, "new")
    assert await read_all(store, await store.head(bucket, "kept")) == b"kept bytes"
    assert [m.key for m in (await store.list_objects(bucket)).objects] == ["kept"]


async def test_async_with_aborts_unless_committed(store: Store, bucket: str) -> None:
    async with await store.new_writer(bucket, "left") as writer:
        await writer.write(b"never committed")
    with pytest.raises(RuntimeError, match="boom"):
        async with await store.new_writer(bucket, "failed") as writer:
            await writer.write(content("failed", MIB + 1))
            raise RuntimeError("boom")
    for key in ("left", "failed"):
        with pytest.raises(NoSuchKey):
            await store.head(bucket, key)
    assert (await store.list_objects(bucket)).objects == []


async def test_abort_after_commit_is_a_no_op(store: Store, bucket: str) -> None:
    async with await store.new_writer(bucket, "done") as writer:
        await writer.write(b"committed")
        await writer.commit(ObjectMeta(bucket, "done", size=9))
        await writer.abort()
    assert await read_all(store, await store.head(bucket, "done")) == b"committed"


async def test_started_reader_keeps_old_bytes_through_replace(store: Store, bucket: str) -> None:
    old = content("old", 3 * MIB + 5)
    new = content("new", 2 * MIB + 11)
    await put(store, bucket, "obj", old, step=256 * KIB)
    meta = await store.head(bucket, "obj")
    stream = store.read(meta)
    first = bytes(await anext(stream))
    assert len(first) > 0 and old.startswith(first)

    await put(store, bucket, "obj", new, step=256 * KIB)
    head = await store.head(bucket, "obj")
    assert (head.size, head.etag) == (len(new), md5hex(new))
    assert await read_all(store, head) == new
    assert first + await drain(stream) == old  # the old object, never a mix


async def test_started_reader_keeps_old_bytes_through_delete(store: Store, bucket: str) -> None:
    old = content("deleted", 3 * MIB)
    await put(store, bucket, "obj", old, step=256 * KIB)
    stream = store.read(await store.head(bucket, "obj"))
    first = bytes(await anext(stream))
    await store.delete(bucket, "obj")
    with pytest.raises(NoSuchKey):
        await store.head(bucket, "obj")
    assert first + await drain(stream) == old


async def test_stale_meta_reads_old_bytes_or_no_such_key(store: Store, bucket: str) -> None:
    """Metadata taken before a replace/delete, read only afterwards: all old bytes or
    NoSuchKey (the backend may have reclaimed the data), never the new or a mix."""
    old = content("stale", MIB + 3)
    await put(store, bucket, "r", old)
    await put(store, bucket, "d", old)
    stale_r = await store.head(bucket, "r")
    stale_d = await store.head(bucket, "d")
    await put(store, bucket, "r", content("fresh", MIB + 3))
    await store.delete(bucket, "d")
    for stale in (stale_r, stale_d):
        try:
            got = await read_all(store, stale)
        except NoSuchKey:
            continue
        assert got == old


async def test_concurrent_replaces_are_atomic_for_readers(store: Store, bucket: str) -> None:
    """Readers racing a writer see, for every head they take, exactly that object."""
    sizes = [MIB + 13, 300 * KIB, 2 * MIB - 1, 5 * KIB]
    gens = {sha256hex(d): d for d in (content(f"gen{i}", s) for i, s in enumerate(sizes))}
    blobs = list(gens.values())
    await put(store, bucket, "hot", blobs[0], user_meta={"sha": sha256hex(blobs[0])})
    stop = asyncio.Event()
    checked = 0

    async def reader() -> None:
        nonlocal checked
        while not stop.is_set():
            meta = await store.head(bucket, "hot")
            try:
                got = await read_all(store, meta)
            except NoSuchKey:
                continue  # replaced between head and the first byte: allowed
            assert got == gens[meta.user_meta["sha"]]
            assert len(got) == meta.size
            checked += 1

    async def writer() -> None:
        try:
            for round_ in range(8):
                data = blobs[(round_ + 1) % len(blobs)]
                await put(
                    store, bucket, "hot", data, step=64 * KIB, user_meta={"sha": sha256hex(data)}
                )
        finally:
            stop.set()

    await asyncio.gather(writer(), reader(), reader())
    assert checked > 0


async def test_delete(store: Store, bucket: str) -> None:
    await put(store, bucket, "gone", b"bytes")
    await put(store, bucket, "stays", b"bytes")
    await store.delete(bucket, "gone")
    with pytest.raises(NoSuchKey):
        await store.head(bucket, "gone")
    assert [m.key for m in (await store.list_objects(bucket)).objects] == ["stays"]
    await put(store, bucket, "gone", b"again")
    assert await read_all(store, await store.head(bucket, "gone")) == b"again"


async def test_delete_is_idempotent(store: Store, bucket: str) -> None:
    """contract.py: deleting an absent key is no error (S3 semantics); a missing bucket is."""
    await put(store, bucket, "gone", b"bytes")
    await store.delete(bucket, "gone")
    await store.delete(bucket, "gone")
    await store.delete(bucket, "never-was")
    with pytest.raises(NoSuchKey):
        await store.head(bucket, "gone")
    assert (await store.list_objects(bucket)).objects == []


@pytest.mark.parametrize("key", ["", "/lead", "a/../b", "./x", "a/.", "nul\x00byte", "\ud800"])
async def test_invalid_keys_are_refused(store: Store, bucket: str, key: str) -> None:
    with pytest.raises(InvalidObjectName):
        await store.new_writer(bucket, key)
    with pytest.raises(InvalidObjectName):
        await store.head(bucket, key)
    with pytest.raises(InvalidObjectName):
        await store.create_upload(bucket, key, ObjectMeta(bucket, key))


async def test_key_length_limit_is_1024_utf8_bytes(store: Store, bucket: str) -> None:
    longest = "é" * 512  # 1024 bytes of UTF-8
    await put(store, bucket, longest, b"x")
    assert (await store.head(bucket, longest)).size == 1
    with pytest.raises(InvalidObjectName):
        await store.new_writer(bucket, longest + "a")


RANGES = [(0, None), (0, 1), (1, 10), (0, 0), (100, 1), (KIB - 1, 2), (5, None)]


async def test_ranges_of_a_single_part_object(store: Store, bucket: str) -> None:
    data = content("ranges", 3 * MIB + 17)
    meta = await put(store, bucket, "r", data, step=100 * KIB)
    cases = [*RANGES, (MIB - 3, 7), (len(data) - 1, None), (len(data) - 5, 100), (len(data), None)]
    for offset, length in cases:
        end = None if length is None else offset + length
        assert await read_all(store, meta, offset, length) == data[offset:end], (offset, length)


async def test_ranges_span_parts(store: Store, bucket: str, site: StoreSite) -> None:
    floor = site.min_part_size
    parts = [content("p1", floor), content("p2", floor + 3), content("p3", 17)]
    meta = await put_multipart(store, bucket, "mp", parts)
    data = b"".join(parts)
    assert meta.size == meta.stored_size == len(data)
    head = await store.head(bucket, "mp")
    b1, b2 = len(parts[0]), len(parts[0]) + len(parts[1])
    cases = [
        *RANGES,
        (b1 - 1, 2),  # the last byte of part 1 and the first of part 2
        (b1, len(parts[1])),  # exactly part 2
        (b1 - 5, len(parts[1]) + 10),  # all of part 2 plus both neighbours' edges
        (b2 - 1, None),
        (b2, 17),
        (3, len(data) - 6),
        (b2 + 16, 50),
        (len(data), 10),
    ]
    for meta_ in (meta, head):
        for offset, length in cases:
            end = None if length is None else offset + length
            got = await read_all(store, meta_, offset, length)
            assert got == data[offset:end], (offset, length)
