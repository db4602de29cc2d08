"""Contract: buckets. Creation, existence, listing and deletion with their S3 errors, bucket
configuration documents, and that deleting a bucket takes its pending uploads (and configs)
with it while objects block it."""

from __future__ import annotations

import pytest

from sealstore.storage.base import (
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidBucketName,
    NoSuchBucket,
    NoSuchUpload,
    ObjectMeta,
)
from sealstore.storage.contract import Store
from tests.contract.support import put, put_part


async def test_create_exists_list_delete(empty_store: Store) -> None:
    assert not await empty_store.bucket_exists("zeta")
    assert await empty_store.list_buckets() == []
    for name in ("zeta", "alpha", "mid.dle-1"):
        await empty_store.create_bucket(name)
    assert await empty_store.bucket_exists("zeta")
    listed = await empty_store.list_buckets()
    assert [b.name for b in listed] == ["alpha", "mid.dle-1", "zeta"]  # S3: by name
    assert all(b.created > 0 for b in listed)

    await empty_store.delete_bucket("alpha")
    assert not await empty_store.bucket_exists("alpha")
    assert [b.name for b in await empty_store.list_buckets()] == ["mid.dle-1", "zeta"]


async def test_create_twice_is_already_owned(empty_store: Store) -> None:
    await empty_store.create_bucket("twice")
    with pytest.raises(BucketAlreadyOwnedByYou):
        await empty_store.create_bucket("twice")
    assert [b.name for b in await empty_store.list_buckets()] == ["twice"]


@pytest.mark.parametrize("name", ["ab", "UPPER", "a..b", "-lead", "192.168.1.1"])
async def test_invalid_bucket_name_is_refused(empty_store: Store, name: str) -> None:
    with pytest.raises(InvalidBucketName):
        await empty_store.create_bucket(name)
    assert await empty_store.list_buckets() == []


async def test_missing_bucket_is_no_such_bucket_everywhere(store: Store) -> None:
    with pytest.raises(NoSuchBucket):
        await store.delete_bucket("missing")
    with pytest.raises(NoSuchBucket):
        await store.new_writer("missing", "k")
    with pytest.raises(NoSuchBucket):
        await store.head("missing", "k")
    with pytest.raises(NoSuchBucket):
        await store.delete("missing", "k")
    with pytest.raises(NoSuchBucket):
        await store.list_objects("missing")
    with pytest.raises(NoSuchBucket):
        await store.create_upload("missing", "k", ObjectMeta("missing", "k"))
    with pytest.raises(NoSuchBucket):
        await store.list_uploads("missing")
    with pytest.raises(NoSuchBucket):
        await store.get_bucket_config("missing", "policy")
    with pytest.raises(NoSuchBucket):
        await store.put_bucket_config("missing", "policy", "{}")


async def test_bucket_with_objects_is_not_empty(store: Store, bucket: str) -> None:
    await put(store, bucket, "keep", b"data")
    with pytest.raises(BucketNotEmpty):
        await store.delete_bucket(bucket)
    assert await store.bucket_exists(bucket)
    assert (await store.head(bucket, "keep")).size == 4
    await store.delete(bucket, "keep")
    await store.delete_bucket(bucket)
    assert not await store.bucket_exists(bucket)


async def test_bucket_configs_put_get_remove(store: Store, bucket: str) -> None:
    assert await store.get_bucket_config(bucket, "versioning") is None
    await store.put_bucket_config(bucket, "versioning", "<Status>Enabled</Status>")
    await store.put_bucket_config(bucket, "policy", '{"Version": "2012-10-17"}')
    assert await store.get_bucket_config(bucket, "versioning") == "<Status>Enabled</Status>"
    await store.put_bucket_config(bucket, "versioning", "<Status>Suspended</Status>")
    assert await store.get_bucket_config(bucket, "versioning") == "<Status>Suspended</Status>"
    await store.put_bucket_config(bucket, "versioning", None)
    assert await store.get_bucket_config(bucket, "versioning") is None
    assert await store.get_bucket_config(bucket, "policy") == '{"Version": "2012-10-17"}'
    await store.put_bucket_config(bucket, "versioning", None)  # removing nothing is fine

    await store.create_bucket(f"{bucket}-other")
    assert await store.get_bucket_config(f"{bucket}-other", "policy") is None  # per bucket


async def test_delete_bucket_drops_its_configs(store: Store, bucket: str) -> None:
    await store.put_bucket_config(bucket, "policy", "{}")
    await store.delete_bucket(bucket)
    await store.create_bucket(bucket)
    assert await store.get_bucket_config(bucket, "policy") is None


async def test_delete_bucket_aborts_pending_uploads(store: Store, bucket: str) -> None:
    upload = await store.create_upload(bucket, "pending", ObjectMeta(bucket, "pending"))
    await put_part(store, upload, 1, b"part one")
    late = await store.new_part_writer(upload, 2)
    await late.write(b"part two")

    await store.delete_bucket(bucket)  # uploads do not make a bucket "not empty"
    assert not await store.bucket_exists(bucket)
    with pytest.raises(NoSuchUpload):
        await late.commit("e", 8, {})

    await store.create_bucket(bucket)
    assert await store.list_uploads(bucket) == ([], False)
    with pytest.raises(NoSuchUpload):
        await store.get_upload(bucket, "pending", upload.upload_id)
    with pytest.raises(NoSuchUpload):
        await store.complete_upload(upload, [(1, "x")], ObjectMeta(bucket, "pending"))
    assert (await store.list_objects(bucket)).objects == []


async def test_commit_into_a_bucket_deleted_meanwhile(store: Store, bucket: str) -> None:
    writer = await store.new_writer(bucket, "orphan")
    await writer.write(b"x" * 1000)
    await store.delete_bucket(bucket)  # the uncommitted object does not hold the bucket
    with pytest.raises(NoSuchBucket):
        await writer.commit(ObjectMeta(bucket, "orphan", size=1000))
    await writer.abort()
    await store.create_bucket(bucket)
    assert (await store.list_objects(bucket)).objects == []
