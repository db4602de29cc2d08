"""Contract: metadata-only updates (`update_internal`, `update_upload_internal`). The new
internal entries are visible to head, listings and a second instance on the same site, and
survive a reopen; the stored bytes, ETag, size and every other field stay as they were; the
update is a compare-and-swap that refuses (ObjectChanged, nothing written) when the object was
replaced, deleted or updated since it was read; a pending upload's template updates the same
way and a completed object inherits the new entries."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sealstore.storage.base import NoSuchBucket, ObjectChanged, ObjectMeta
from sealstore.storage.contract import Store
from tests.contract.backends import StoreSite
from tests.contract.support import KIB, content, put, put_multipart, put_part, read_all

OLD = {"X-Sealstore-Test-Sealed": "v1", "X-Sealstore-Keep": "same"}
NEW = {"X-Sealstore-Test-Sealed": "v2", "X-Sealstore-Keep": "same"}


async def test_update_changes_only_internal(store: Store, bucket: str) -> None:
    data = content("update", 200 * KIB + 5)
    before = await put(store, bucket, "k", data, internal=dict(OLD), user_meta={"a": "b"})
    after = await store.update_internal(before, dict(NEW))
    assert after.internal == NEW
    head = await store.head(bucket, "k")
    assert head.internal == NEW
    assert replace(head, internal={}) == replace(before, internal={})
    assert await read_all(store, head) == data
    assert await read_all(store, before) == data  # metadata read earlier still reads
    listed = (await store.list_objects(bucket)).objects
    assert [o.internal for o in listed] == [NEW]


async def test_update_multipart_object(store: Store, bucket: str) -> None:
    parts = [content("p1", 70 * KIB), content("p2", 3 * KIB)]
    before = await put_multipart(store, bucket, "mp", parts, internal=dict(OLD))
    await store.update_internal(before, dict(NEW))
    head = await store.head(bucket, "mp")
    assert head.internal == NEW
    assert head.parts == before.parts and head.etag == before.etag
    assert await read_all(store, head) == b"".join(parts)


async def test_update_refuses_a_replaced_object(store: Store, bucket: str) -> None:
    stale = await put(store, bucket, "k", b"first", internal=dict(OLD))
    await put(store, bucket, "k", b"second", internal={"X-Sealstore-Test-Sealed": "fresh"})
    with pytest.raises(ObjectChanged):
        await store.update_internal(stale, dict(NEW))
    head = await store.head(bucket, "k")
    assert head.internal == {"X-Sealstore-Test-Sealed": "fresh"}
    assert await read_all(store, head) == b"second"


async def test_update_refuses_changed_entries_and_deleted_objects(
    store: Store, bucket: str
) -> None:
    meta = await put(store, bucket, "k", b"data", internal=dict(OLD))
    await store.update_internal(meta, dict(NEW))
    with pytest.raises(ObjectChanged):  # a second writer with the same stale view loses
        await store.update_internal(meta, {"X-Sealstore-Test-Sealed": "other"})
    assert (await store.head(bucket, "k")).internal == NEW
    await store.delete(bucket, "k")
    with pytest.raises(ObjectChanged):
        await store.update_internal(meta, dict(NEW))
    with pytest.raises(NoSuchBucket):
        await store.update_internal(ObjectMeta("no-such-bucket-x", "k"), dict(NEW))


async def test_upload_template_update_reaches_the_completed_object(
    store: Store, bucket: str
) -> None:
    upload = await store.create_upload(bucket, "up", ObjectMeta(bucket, "up", internal=dict(OLD)))
    part = await put_part(store, upload, 1, content("u1", 10 * KIB))
    updated = await store.update_upload_internal(upload, dict(NEW))
    assert updated.meta.internal == NEW
    again = await store.get_upload(bucket, "up", upload.upload_id)
    assert again.meta.internal == NEW
    with pytest.raises(ObjectChanged):  # the stale template no longer matches
        await store.update_upload_internal(upload, {"X-Sealstore-Test-Sealed": "other"})
    done = await store.complete_upload(
        again, [(1, part.etag)], replace(again.meta, parts=[], files=[])
    )
    assert done.internal == NEW
    with pytest.raises(ObjectChanged):  # completed: the upload is gone
        await store.update_upload_internal(again, dict(NEW))


async def test_update_is_durable_and_shared(fresh_site: StoreSite) -> None:
    async with fresh_site.opened() as first, fresh_site.opened() as second:
        await first.create_bucket("durable")
        meta = await put(first, "durable", "k", b"bytes", internal=dict(OLD))
        await first.update_internal(meta, dict(NEW))
        assert (await second.head("durable", "k")).internal == NEW
    async with fresh_site.opened() as reopened:
        head = await reopened.head("durable", "k")
        assert head.internal == NEW
        assert await read_all(reopened, head) == b"bytes"
