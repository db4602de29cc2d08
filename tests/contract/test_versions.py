"""Contract: S3 bucket versioning, for every backend. Unversioned buckets show each object as
its null version; Enabled adds versions and delete markers (newest first, one latest, the
previous version current again when the newest is removed); Suspended writes replace the null
version and keep the others; version-aware head/read/delete/update_internal/complete; paging
through versions with markers, prefixes and delimiters; DeleteBucket refuses while any
version or marker remains."""

from __future__ import annotations

import pytest

from sealstore.storage.base import (
    BucketNotEmpty,
    DeleteMarkerCurrent,
    InvalidArgument,
    NoSuchKey,
    NoSuchVersion,
    ObjectChanged,
    ObjectMeta,
    Versioning,
    new_version_id,
)
from sealstore.storage.contract import Store
from tests.contract.support import md5hex, put, put_multipart, read_all


async def put_version(store: Store, bucket: str, key: str, data: bytes) -> ObjectMeta:
    """Write ``data`` as the caller of the contract does: an id when the writer says so."""
    writer = await store.new_writer(bucket, key)
    version = new_version_id() if writer.versioning is Versioning.ENABLED else None
    async with writer:
        await writer.write(data)
        meta = ObjectMeta(bucket, key, size=len(data), etag=md5hex(data), version_id=version)
        return await writer.commit(meta)


async def all_versions(
    store: Store, bucket: str, **query: object
) -> list[tuple[str, str, bool, bool]]:
    listed = await store.list_versions(bucket, **query)  # type: ignore[arg-type]
    assert not listed.is_truncated
    return [(m.key, m.version_label, m.is_latest, m.is_delete_marker) for m in listed.versions]


async def test_unversioned_objects_are_null_versions(store: Store, bucket: str) -> None:
    assert await store.get_versioning(bucket) is Versioning.UNVERSIONED
    await put(store, bucket, "a", b"one")
    await put(store, bucket, "a", b"two")
    await put(store, bucket, "b", b"bee")
    assert await all_versions(store, bucket) == [
        ("a", "null", True, False),
        ("b", "null", True, False),
    ]
    meta = await store.head(bucket, "a", "null")
    assert meta.version_id is None and meta.is_latest
    assert await read_all(store, meta) == b"two"
    with pytest.raises(NoSuchVersion):
        await store.head(bucket, "a", new_version_id())
    with pytest.raises(NoSuchVersion):
        await store.head(bucket, "missing", "null")
    result = await store.delete(bucket, "a", "null")
    assert result.versioned and result.version_id is None and not result.delete_marker
    with pytest.raises(NoSuchKey):
        await store.head(bucket, "a")
    plain = await store.delete(bucket, "b")
    assert not plain.versioned and not plain.delete_marker
    assert await all_versions(store, bucket) == []
    with pytest.raises(InvalidArgument):
        await store.put_versioning(bucket, Versioning.UNVERSIONED)


async def test_enabled_keeps_every_version_and_writes_markers(store: Store, bucket: str) -> None:
    await put(store, bucket, "k", b"null-before")  # stays as the null version
    await store.put_versioning(bucket, Versioning.ENABLED)
    assert await store.get_versioning(bucket) is Versioning.ENABLED
    v1 = await put_version(store, bucket, "k", b"first")
    v2 = await put_version(store, bucket, "k", b"second")
    assert v1.version_id and v2.version_id and v1.version_id != v2.version_id
    current = await store.head(bucket, "k")
    assert current.version_id == v2.version_id and current.is_latest
    old = await store.head(bucket, "k", v1.version_id)
    assert not old.is_latest and await read_all(store, old) == b"first"
    assert await read_all(store, await store.head(bucket, "k", "null")) == b"null-before"
    assert [m.key for m in (await store.list_objects(bucket)).objects] == ["k"]
    assert await all_versions(store, bucket) == [
        ("k", v2.version_id, True, False),
        ("k", v1.version_id, False, False),
        ("k", "null", False, False),
    ]

    marker = await store.delete(bucket, "k")
    assert marker.delete_marker and marker.version_id and marker.versioned
    with pytest.raises(DeleteMarkerCurrent) as caught:
        await store.head(bucket, "k")
    assert caught.value.marker.version_id == marker.version_id
    assert (await store.list_objects(bucket)).objects == []
    seen = await store.head(bucket, "k", marker.version_id)
    assert seen.is_delete_marker and seen.is_latest
    listed = await all_versions(store, bucket)
    assert listed[0] == ("k", marker.version_id, True, True)
    assert [v for _, v, latest, _ in listed[1:] if latest] == []

    with pytest.raises(BucketNotEmpty):
        await store.delete_bucket(bucket)
    removed = await store.delete(bucket, "k", marker.version_id)
    assert removed.delete_marker and removed.version_id == marker.version_id
    assert (await store.head(bucket, "k")).version_id == v2.version_id
    await store.delete(bucket, "k", v2.version_id)  # the current one: v1 becomes current
    now = await store.head(bucket, "k")
    assert now.version_id == v1.version_id and await read_all(store, now) == b"first"
    assert [m.version_id for m in (await store.list_objects(bucket)).objects] == [v1.version_id]
    await store.delete(bucket, "k", new_version_id())  # absent: no error
    for version in (v1.version_id, "null"):
        await store.delete(bucket, "k", version)
    assert await all_versions(store, bucket) == []
    await store.delete_bucket(bucket)


async def test_suspended_replaces_the_null_version_only(store: Store, bucket: str) -> None:
    await store.put_versioning(bucket, Versioning.ENABLED)
    kept = await put_version(store, bucket, "k", b"kept")
    await store.put_versioning(bucket, Versioning.SUSPENDED)
    writer = await store.new_writer(bucket, "other")
    assert writer.versioning is Versioning.SUSPENDED
    await writer.abort()
    first = await put_version(store, bucket, "k", b"null one")
    second = await put_version(store, bucket, "k", b"null two")
    assert first.version_id is None and second.version_id is None
    assert await all_versions(store, bucket) == [
        ("k", "null", True, False),
        ("k", kept.version_id, False, False),
    ]
    assert await read_all(store, await store.head(bucket, "k")) == b"null two"
    marker = await store.delete(bucket, "k")
    assert marker.delete_marker and marker.version_id is None
    assert await all_versions(store, bucket) == [
        ("k", "null", True, True),
        ("k", kept.version_id, False, False),
    ]
    await put_version(store, bucket, "k", b"null three")  # replaces the null marker
    assert await all_versions(store, bucket) == [
        ("k", "null", True, False),
        ("k", kept.version_id, False, False),
    ]
    await store.delete(bucket, "k", "null")
    assert (await store.head(bucket, "k")).version_id == kept.version_id


async def test_versions_are_separate_objects(store: Store, bucket: str) -> None:
    await store.put_versioning(bucket, Versioning.ENABLED)
    v1 = await put_version(store, bucket, "k", b"a" * 5000)
    v2 = await put_version(store, bucket, "k", b"b" * 3000)
    assert v1.files != v2.files
    noncurrent = await store.head(bucket, "k", v1.version_id)
    updated = await store.update_internal(noncurrent, {"sealed": "v1"})
    assert updated.internal == {"sealed": "v1"}
    assert (await store.head(bucket, "k", v1.version_id)).internal == {"sealed": "v1"}
    assert (await store.head(bucket, "k")).internal == {}
    with pytest.raises(ObjectChanged):
        await store.update_internal(noncurrent, {"sealed": "again"})
    version = new_version_id()
    done = await put_multipart(store, bucket, "k", [b"x" * 70000, b"y"], version_id=version)
    assert done.version_id == version
    assert (await store.head(bucket, "k")).version_id == version
    assert await read_all(store, await store.head(bucket, "k", v2.version_id)) == b"b" * 3000
    assert len(await all_versions(store, bucket)) == 3


async def test_paging_through_versions(store: Store, bucket: str) -> None:
    await put(store, bucket, "a/1", b"")
    await store.put_versioning(bucket, Versioning.ENABLED)
    for key, count in (("a/1", 3), ("a/2", 1), ("b", 12), ("c/x", 2), ("d", 1)):
        for i in range(count):
            await put_version(store, bucket, key, b"%d" % i)
    await store.delete(bucket, "b")
    full = await all_versions(store, bucket)
    assert len(full) == 4 + 1 + 13 + 2 + 1
    assert [k for k, *_ in full] == sorted(k for k, *_ in full)
    for size in (1, 2, 5):
        walked: list[tuple[str, str, bool, bool]] = []
        key_marker = version_marker = ""
        while True:
            page = await store.list_versions(
                bucket, key_marker=key_marker, version_id_marker=version_marker, max_keys=size
            )
            walked += [
                (m.key, m.version_label, m.is_latest, m.is_delete_marker) for m in page.versions
            ]
            assert len(page.versions) <= size
            if not page.is_truncated:
                break
            key_marker = page.next_key_marker or ""
            version_marker = page.next_version_id_marker or ""
        assert walked == full, size
    only_b = await all_versions(store, bucket, prefix="b")
    assert len(only_b) == 13 and only_b[0][3]  # newest first: the marker
    rolled = await store.list_versions(bucket, delimiter="/")
    assert rolled.common_prefixes == ["a/", "c/"]
    assert {m.key for m in rolled.versions} == {"b", "d"}
    paged = await store.list_versions(bucket, delimiter="/", max_keys=1)
    assert paged.common_prefixes == ["a/"] and paged.next_key_marker == "a/"
    after = await store.list_versions(bucket, delimiter="/", key_marker="a/", max_keys=1)
    assert [m.key for m in after.versions] == ["b"] and after.common_prefixes == []
    past_key = await store.list_versions(bucket, key_marker="b")
    assert past_key.versions[0].key == "c/x"
