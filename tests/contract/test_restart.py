"""Contract: durability across a restart. Everything committed (buckets, configs, objects
single and multipart with their metadata, pending uploads and their parts) is there, byte
for byte, after the store is closed and a new instance opened on the same data; what was
aborted, deleted or never committed stays gone; a pending upload completes after it."""

from __future__ import annotations

import asyncio

import pytest

from sealstore.storage.base import NoSuchKey, NoSuchUpload, ObjectMeta
from sealstore.storage.contract import Store
from tests.contract.backends import StoreSite
from tests.contract.support import KIB, MIB, content, put, put_multipart, put_part, read_all

BUCKET = "durable"


async def populate(store: Store, floor: int) -> dict[str, object]:
    await store.create_bucket(BUCKET)
    await store.create_bucket("emptied")
    await store.create_bucket("dropped")
    await store.delete_bucket("dropped")
    await store.put_bucket_config(BUCKET, "versioning", "<Status>Enabled</Status>")
    single = await put(
        store,
        BUCKET,
        "single/ü",
        content("single", 2 * MIB + 3),
        content_type="a/b",
        user_meta={"m": "v"},
        headers={"Cache-Control": "max-age=1"},
        internal={"sealed": "key"},
    )
    multi = await put_multipart(
        store, BUCKET, "multi", [content("mp1", floor), content("mp2", 5 * KIB)]
    )
    await put(store, BUCKET, "deleted", b"gone soon")
    await store.delete(BUCKET, "deleted")
    await put(store, BUCKET, "replaced", b"first")
    await put(store, BUCKET, "replaced", b"second")
    async with await store.new_writer(BUCKET, "aborted") as writer:
        await writer.write(content("aborted", MIB))
    pending = await store.create_upload(
        BUCKET, "pending", ObjectMeta(BUCKET, "pending", user_meta={"t": "1"})
    )
    p1 = await put_part(store, pending, 1, content("pend1", floor), internal={"iv": "x"})
    await put_part(store, pending, 2, content("pend2-old", 10))
    p2 = await put_part(store, pending, 2, content("pend2", 10))
    aborted = await store.create_upload(BUCKET, "aborted-mp", ObjectMeta(BUCKET, "aborted-mp"))
    await put_part(store, aborted, 1, b"aborted part")
    await store.abort_upload(aborted)
    return {"single": single, "multi": multi, "pending": pending, "p1": p1, "p2": p2}


async def test_committed_state_survives_reopen(fresh_site: StoreSite) -> None:
    floor = fresh_site.min_part_size
    async with fresh_site.opened() as store:
        made = await populate(store, floor)

    async with fresh_site.opened() as store:
        assert [b.name for b in await store.list_buckets()] == [BUCKET, "emptied"]
        assert await store.get_bucket_config(BUCKET, "versioning") == "<Status>Enabled</Status>"
        listed = await store.list_objects(BUCKET)
        assert [m.key for m in listed.objects] == ["multi", "replaced", "single/ü"]

        single = made["single"]
        assert isinstance(single, ObjectMeta)
        head = await store.head(BUCKET, "single/ü")
        fields = ("size", "stored_size", "etag", "content_type", "user_meta", "headers")
        assert [getattr(head, f) for f in fields] == [getattr(single, f) for f in fields]
        assert head.internal == {"sealed": "key"}
        assert abs(head.last_modified - single.last_modified) <= 1.0  # seconds may be stored
        assert await read_all(store, head) == content("single", 2 * MIB + 3)

        multi = await store.head(BUCKET, "multi")
        assert [(p.number, p.size) for p in multi.parts] == [(1, floor), (2, 5 * KIB)]
        expected = content("mp1", floor) + content("mp2", 5 * KIB)
        assert await read_all(store, multi, floor - 2, 4) == expected[floor - 2 : floor + 2]
        assert await read_all(store, await store.head(BUCKET, "replaced")) == b"second"
        for gone in ("deleted", "aborted"):
            with pytest.raises(NoSuchKey):
                await store.head(BUCKET, gone)

        uploads, _ = await store.list_uploads(BUCKET)
        assert [u.key for u in uploads] == ["pending"]
        pending = await store.get_upload(BUCKET, "pending", uploads[0].upload_id)
        assert pending.meta.user_meta == {"t": "1"}
        parts, _ = await store.list_parts(pending)
        p1, p2 = made["p1"], made["p2"]
        assert [(p.number, p.etag, p.size, p.internal) for p in parts] == [
            (1, p1.etag, floor, {"iv": "x"}),  # type: ignore[attr-defined]
            (2, p2.etag, 10, {}),  # type: ignore[attr-defined]
        ]
        done = await store.complete_upload(
            pending, [(p.number, p.etag) for p in parts], ObjectMeta(BUCKET, "pending")
        )
        assert await read_all(store, done) == content("pend1", floor) + content("pend2", 10)

    async with fresh_site.opened() as store:  # the completion is durable too
        with pytest.raises(NoSuchUpload):
            await store.get_upload(BUCKET, "pending", pending.upload_id)
        meta = await store.head(BUCKET, "pending")
        assert await read_all(store, meta) == content("pend1", floor) + content("pend2", 10)


async def test_two_instances_on_one_site_see_each_others_commits(fresh_site: StoreSite) -> None:
    """A store is shared state, not per-instance state (several server processes share one)."""
    async with fresh_site.opened() as first, fresh_site.opened() as second:
        await first.create_bucket(BUCKET)
        assert await second.bucket_exists(BUCKET)
        await put(second, BUCKET, "from-second", b"2")
        meta = await first.head(BUCKET, "from-second")
        assert await read_all(first, meta) == b"2"
        await asyncio.gather(
            put(first, BUCKET, "both", content("one", 300 * KIB)),
            put(second, BUCKET, "both", content("two", 200 * KIB)),
        )
        final = await first.head(BUCKET, "both")
        assert final.size in (300 * KIB, 200 * KIB)
        data = await read_all(second, await second.head(BUCKET, "both"))
        assert data in (content("one", 300 * KIB), content("two", 200 * KIB))
        assert len(data) == final.size
