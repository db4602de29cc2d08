"""Contract: conditional commits (`ObjectWriter.commit` / `Store.complete_upload` with a
`WriteCondition`). The condition is checked against the key's current object inside the
publishing transaction: of two racing ``absent`` commits exactly one publishes and the other
raises ObjectChanged with nothing of it visible; an ``etag`` condition publishes only over an
object with that ETag; a refused multipart completion leaves the upload in place, so it can
still be completed or aborted."""

from __future__ import annotations

import asyncio

import pytest

from sealstore.storage.base import ObjectChanged, ObjectMeta
from sealstore.storage.conditions import WriteCondition
from sealstore.storage.contract import Store
from tests.contract.support import KIB, content, md5hex, put, put_part, read_all

ABSENT = WriteCondition(absent=True)


async def _staged(store: Store, bucket: str, key: str, data: bytes):  # type: ignore[no-untyped-def]
    """A writer holding all of ``data``, not yet committed."""
    writer = await store.new_writer(bucket, key)
    await writer.write(data)
    return writer


async def test_two_racing_absent_commits_one_wins(store: Store, bucket: str) -> None:
    a, b = content("race-a", 90 * KIB), content("race-b", 70 * KIB)
    wa, wb = await _staged(store, bucket, "k", a), await _staged(store, bucket, "k", b)
    results = await asyncio.gather(
        wa.commit(ObjectMeta(bucket, "k", size=len(a), etag=md5hex(a)), condition=ABSENT),
        wb.commit(ObjectMeta(bucket, "k", size=len(b), etag=md5hex(b)), condition=ABSENT),
        return_exceptions=True,
    )
    await wa.abort()
    await wb.abort()
    won = [r for r in results if isinstance(r, ObjectMeta)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], ObjectChanged)
    head = await store.head(bucket, "k")
    assert head.etag == won[0].etag
    assert await read_all(store, head) == (a if won[0].etag == md5hex(a) else b)
    listed = (await store.list_objects(bucket)).objects
    assert [o.etag for o in listed] == [won[0].etag]


async def test_absent_commit_refused_over_an_existing_object(store: Store, bucket: str) -> None:
    await put(store, bucket, "k", b"first")
    data = b"second"
    writer = await _staged(store, bucket, "k", data)
    async with writer:
        with pytest.raises(ObjectChanged):
            await writer.commit(
                ObjectMeta(bucket, "k", size=len(data), etag=md5hex(data)), condition=ABSENT
            )
    head = await store.head(bucket, "k")
    assert await read_all(store, head) == b"first"


async def test_etag_condition(store: Store, bucket: str) -> None:
    data = b"next"
    meta = ObjectMeta(bucket, "k", size=len(data), etag=md5hex(data))
    async with await _staged(store, bucket, "k", data) as writer:  # nothing at the key yet
        with pytest.raises(ObjectChanged):
            await writer.commit(meta, condition=WriteCondition(etag=md5hex(b"first")))
    await put(store, bucket, "k", b"first")
    async with await _staged(store, bucket, "k", data) as writer:
        with pytest.raises(ObjectChanged):
            await writer.commit(meta, condition=WriteCondition(etag=md5hex(b"other")))
    assert await read_all(store, await store.head(bucket, "k")) == b"first"
    async with await _staged(store, bucket, "k", data) as writer:
        quoted = f'"{md5hex(b"first").upper()}"'  # quotes and case do not matter
        done = await writer.commit(meta, condition=WriteCondition(etag=quoted))
    assert done.etag == md5hex(data)
    assert await read_all(store, await store.head(bucket, "k")) == data


async def test_refused_completion_keeps_the_upload(store: Store, bucket: str) -> None:
    await put(store, bucket, "mp", b"there")
    upload = await store.create_upload(bucket, "mp", ObjectMeta(bucket, "mp"))
    part = await put_part(store, upload, 1, content("cond-part", 3 * KIB))
    with pytest.raises(ObjectChanged):
        await store.complete_upload(
            upload, [(1, part.etag)], ObjectMeta(bucket, "mp"), condition=ABSENT
        )
    assert await read_all(store, await store.head(bucket, "mp")) == b"there"
    assert await store.get_upload(bucket, "mp", upload.upload_id) == upload
    done = await store.complete_upload(
        upload,
        [(1, part.etag)],
        ObjectMeta(bucket, "mp"),
        condition=WriteCondition(etag=md5hex(b"there")),
    )
    assert done.parts[0].etag == part.etag
