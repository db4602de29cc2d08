"""Contract: multipart uploads. Create/get/list (key bytes, then initiation order; paging with
key and upload-id markers), part replace, list_parts paging, and CompleteMultipartUpload's
rules: strictly ascending numbers (InvalidPartOrder), listed parts present with that ETag
(InvalidPart, also for an empty list), all but the last part at least the backend's minimum
part size (EntityTooSmall); a failed complete leaves the upload usable; after complete or
abort the upload is gone (NoSuchUpload), also for a part writer still streaming."""

from __future__ import annotations

import hashlib

import pytest

from sealstore.storage.base import (
    MAX_PART_NUMBER,
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    NoSuchKey,
    NoSuchUpload,
    ObjectMeta,
    UploadMeta,
)
from sealstore.storage.contract import Store
from tests.contract.backends import StoreSite
from tests.contract.support import content, md5hex, put, put_part, read_all


async def new_upload(store: Store, bucket: str, key: str = "mp", **fields: object) -> UploadMeta:
    return await store.create_upload(bucket, key, ObjectMeta(bucket, key, **fields))  # type: ignore[arg-type]


async def test_create_and_get_upload(store: Store, bucket: str) -> None:
    upload = await new_upload(
        store,
        bucket,
        "dir/ünï.bin",
        content_type="video/x-contract",
        user_meta={"a": "b"},
        headers={"Content-Language": "de"},
        internal={"X-Sealed-Key": "opaque"},
    )
    assert upload.upload_id and (upload.bucket, upload.key) == (bucket, "dir/ünï.bin")
    assert upload.initiated > 0
    got = await store.get_upload(bucket, "dir/ünï.bin", upload.upload_id)
    for u in (upload, got):
        assert (u.upload_id, u.bucket, u.key) == (upload.upload_id, bucket, "dir/ünï.bin")
        assert u.meta.content_type == "video/x-contract"
        assert u.meta.user_meta == {"a": "b"}
        assert u.meta.headers == {"Content-Language": "de"}
        assert u.meta.internal == {"X-Sealed-Key": "opaque"}
    assert abs(got.initiated - upload.initiated) <= 1.0  # a backend may store seconds
    other = await new_upload(store, bucket, "dir/ünï.bin")
    assert other.upload_id != upload.upload_id
    with pytest.raises(NoSuchUpload):
        await store.get_upload(bucket, "other-key", upload.upload_id)
    with pytest.raises(NoSuchUpload):
        await store.get_upload(bucket, "dir/ünï.bin", "not-an-upload")
    # an upload in progress is not an object
    with pytest.raises(NoSuchKey):
        await store.head(bucket, "dir/ünï.bin")
    assert (await store.list_objects(bucket)).objects == []


async def test_list_uploads_order_prefix_and_paging(store: Store, bucket: str) -> None:
    created = []
    for key in ["b", "é", "a", "B", "a", "a/x", "b", "\uff61", "😀"]:
        created.append(await new_upload(store, bucket, key))
    # key bytes first, then initiation order within one key
    order = sorted(range(len(created)), key=lambda i: (created[i].key.encode(), i))
    expected = [created[i].upload_id for i in order]
    listed, truncated = await store.list_uploads(bucket)
    assert [u.upload_id for u in listed] == expected and not truncated
    assert [u.key for u in listed] == ["B", "a", "a", "a/x", "b", "b", "é", "\uff61", "😀"]

    by_prefix, _ = await store.list_uploads(bucket, prefix="a")
    assert [u.upload_id for u in by_prefix] == [created[2].upload_id, created[4].upload_id,
                                                created[5].upload_id]  # fmt: skip
    assert (await store.list_uploads(bucket, prefix="zz")) == ([], False)
    assert (await store.list_uploads(bucket, max_uploads=0)) == ([], False)

    after_a, _ = await store.list_uploads(bucket, key_marker="a")  # keys after "a" only
    assert [u.upload_id for u in after_a] == expected[3:]
    within_a, _ = await store.list_uploads(
        bucket, key_marker="a", upload_id_marker=created[2].upload_id
    )
    assert [u.upload_id for u in within_a] == expected[2:]

    for size in (1, 2, 4, len(expected)):
        seen: list[str] = []
        key_marker = id_marker = ""
        while True:
            page, truncated = await store.list_uploads(
                bucket, key_marker=key_marker, upload_id_marker=id_marker, max_uploads=size
            )
            assert 0 < len(page) <= size
            seen += [u.upload_id for u in page]
            if not truncated:
                break
            key_marker, id_marker = page[-1].key, page[-1].upload_id
        assert seen == expected, size


async def test_list_parts_order_and_paging(store: Store, bucket: str) -> None:
    upload = await new_upload(store, bucket)
    written = {}
    for number in (3, 1, 5, 2, 4):  # order of upload does not matter
        data = content(("lp", number), 100 + number)
        written[number] = await put_part(store, upload, number, data, internal={"n": str(number)})
    parts, truncated = await store.list_parts(upload)
    assert [p.number for p in parts] == [1, 2, 3, 4, 5] and not truncated
    for p in parts:
        assert p.etag == md5hex(content(("lp", p.number), 100 + p.number))
        assert p.size == p.stored_size == 100 + p.number
        assert p.internal == {"n": str(p.number)}
        assert p.last_modified > 0
        assert (p.etag, p.size) == (written[p.number].etag, written[p.number].size)

    pages = []
    marker = 0
    while True:
        page, truncated = await store.list_parts(upload, marker=marker, max_parts=2)
        pages.append(([p.number for p in page], truncated))
        if not truncated:
            break
        marker = page[-1].number
    assert pages == [([1, 2], True), ([3, 4], True), ([5], False)]
    exact, truncated = await store.list_parts(upload, max_parts=5)
    assert len(exact) == 5 and not truncated
    assert (await store.list_parts(upload, marker=5)) == ([], False)
    assert [p.number for p in (await store.list_parts(upload, marker=3))[0]] == [4, 5]


async def test_part_replace(store: Store, bucket: str) -> None:
    upload = await new_upload(store, bucket)
    first = await put_part(store, upload, 1, content("first", 5000))
    second = await put_part(store, upload, 1, content("second", 3000))
    parts, _ = await store.list_parts(upload)
    assert [(p.number, p.etag, p.size) for p in parts] == [(1, second.etag, 3000)]
    with pytest.raises(InvalidPart):  # the replaced part is gone
        await store.complete_upload(upload, [(1, first.etag)], ObjectMeta(bucket, "mp"))
    meta = await store.complete_upload(upload, [(1, second.etag)], ObjectMeta(bucket, "mp"))
    assert await read_all(store, meta) == content("second", 3000)


@pytest.mark.parametrize("number", [0, -1, MAX_PART_NUMBER + 1])
async def test_part_number_out_of_range(store: Store, bucket: str, number: int) -> None:
    upload = await new_upload(store, bucket)
    with pytest.raises(InvalidArgument):
        await store.new_part_writer(upload, number)


async def test_highest_part_number(store: Store, bucket: str) -> None:
    upload = await new_upload(store, bucket)
    part = await put_part(store, upload, MAX_PART_NUMBER, b"last")
    meta = await store.complete_upload(
        upload, [(MAX_PART_NUMBER, part.etag)], ObjectMeta(bucket, "mp")
    )
    assert [p.number for p in meta.parts] == [MAX_PART_NUMBER]


async def test_complete_with_ascending_numbers(store: Store, bucket: str, site: StoreSite) -> None:
    floor = site.min_part_size
    await put(store, bucket, "mp", b"the old object")
    upload = await new_upload(store, bucket, user_meta={"from": "template"})
    datas = {1: content("c1", floor), 2: content("c2", floor + 1), 4: content("c4", 10)}
    parts = {n: await put_part(store, upload, n, d) for n, d in datas.items()}
    await put_part(store, upload, 3, content("c3", floor))  # uploaded but not listed
    chosen = [(1, parts[1].etag), (2, f'"{parts[2].etag.upper()}"'), (4, parts[4].etag)]
    meta = await store.complete_upload(
        upload, chosen, ObjectMeta(bucket, "mp", content_type="x/y", user_meta={"k": "v"})
    )
    data = datas[1] + datas[2] + datas[4]
    assert (meta.bucket, meta.key) == (bucket, "mp")
    assert meta.size == meta.stored_size == len(data)
    assert [(p.number, p.etag, p.size) for p in meta.parts] == [
        (n, parts[n].etag, len(datas[n])) for n in (1, 2, 4)
    ]
    # S3's multipart ETag, filled in because the given meta had none
    digest = hashlib.md5(b"".join(bytes.fromhex(parts[n].etag) for n in (1, 2, 4)))
    assert meta.etag == f"{digest.hexdigest()}-3"
    head = await store.head(bucket, "mp")
    assert (head.size, head.etag, head.content_type) == (len(data), meta.etag, "x/y")
    assert head.user_meta == {"k": "v"}
    assert [p.number for p in head.parts] == [1, 2, 4]
    assert await read_all(store, head) == data
    with pytest.raises(NoSuchUpload):
        await store.get_upload(bucket, "mp", upload.upload_id)
    assert await store.list_uploads(bucket) == ([], False)


async def test_complete_keeps_a_given_etag(store: Store, bucket: str) -> None:
    upload = await new_upload(store, bucket)
    part = await put_part(store, upload, 1, b"only part")
    meta = await store.complete_upload(
        upload, [(1, part.etag)], ObjectMeta(bucket, "mp", etag="chosen-by-caller-1")
    )
    assert meta.etag == (await store.head(bucket, "mp")).etag == "chosen-by-caller-1"


@pytest.mark.parametrize(
    ("chosen", "error"),
    [
        ([(1, "0" * 32)], InvalidPart),  # wrong ETag
        ([(1, None), (4, "0" * 32)], InvalidPart),  # a part never uploaded
        ([], InvalidPart),  # empty list
        ([(2, None), (1, None)], InvalidPartOrder),
        ([(1, None), (1, None)], InvalidPartOrder),  # strictly ascending
        ([(1, None), (2, None)], EntityTooSmall),  # part 1 is one byte short
    ],
)
async def test_complete_refusals_leave_the_upload_usable(
    store: Store,
    bucket: str,
    site: StoreSite,
    chosen: list[tuple[int, str | None]],
    error: type[Exception],
) -> None:
    floor = site.min_part_size
    await put(store, bucket, "mp", b"old")
    upload = await new_upload(store, bucket)
    datas = {1: content("r1", floor - 1), 2: content("r2", floor), 3: content("r3", 5)}
    etags = {n: (await put_part(store, upload, n, d)).etag for n, d in datas.items()}
    with pytest.raises(error):
        await store.complete_upload(
            upload, [(n, e or etags[n]) for n, e in chosen], ObjectMeta(bucket, "mp")
        )
    assert await read_all(store, await store.head(bucket, "mp")) == b"old"
    assert [p.number for p in (await store.list_parts(upload))[0]] == [1, 2, 3]
    # the same upload completes once the request is right
    meta = await store.complete_upload(
        upload, [(2, etags[2]), (3, etags[3])], ObjectMeta(bucket, "mp")
    )
    assert await read_all(store, meta) == datas[2] + datas[3]


async def test_min_part_size_boundary(store: Store, bucket: str, site: StoreSite) -> None:
    floor = site.min_part_size
    upload = await new_upload(store, bucket)
    datas = [content("b1", floor), content("b2", floor), content("b3", 1)]
    etags = [(await put_part(store, upload, n, d)).etag for n, d in enumerate(datas, 1)]
    meta = await store.complete_upload(upload, list(enumerate(etags, 1)), ObjectMeta(bucket, "mp"))
    assert meta.size == 2 * floor + 1
    assert await read_all(store, meta) == b"".join(datas)


async def test_a_small_single_part_completes(store: Store, bucket: str) -> None:
    upload = await new_upload(store, bucket)
    part = await put_part(store, upload, 7, b"tiny")
    meta = await store.complete_upload(upload, [(7, part.etag)], ObjectMeta(bucket, "mp"))
    assert await read_all(store, meta) == b"tiny"


async def test_after_abort_everything_is_no_such_upload(store: Store, bucket: str) -> None:
    upload = await new_upload(store, bucket)
    part = await put_part(store, upload, 1, b"aborted part")
    streaming = await store.new_part_writer(upload, 2)
    await streaming.write(b"still streaming")
    await store.abort_upload(upload)
    with pytest.raises(NoSuchUpload):
        await store.complete_upload(upload, [(1, part.etag)], ObjectMeta(bucket, "mp"))
    with pytest.raises(NoSuchUpload):
        await store.get_upload(bucket, "mp", upload.upload_id)
    with pytest.raises(NoSuchUpload):
        await store.list_parts(upload)
    with pytest.raises(NoSuchUpload):
        await store.new_part_writer(upload, 3)
    with pytest.raises(NoSuchUpload):
        await streaming.commit(md5hex(b"still streaming"), 15, {})
    with pytest.raises(NoSuchUpload):
        await store.abort_upload(upload)
    assert await store.list_uploads(bucket) == ([], False)
    with pytest.raises(NoSuchKey):
        await store.head(bucket, "mp")


async def test_part_commit_after_complete_is_no_such_upload(store: Store, bucket: str) -> None:
    upload = await new_upload(store, bucket)
    part = await put_part(store, upload, 1, b"the part")
    late = await store.new_part_writer(upload, 2)
    await late.write(b"too late")
    replacing = await store.new_part_writer(upload, 1)
    await replacing.write(b"would replace part 1")
    meta = await store.complete_upload(upload, [(1, part.etag)], ObjectMeta(bucket, "mp"))
    for writer in (late, replacing):
        with pytest.raises(NoSuchUpload):
            await writer.commit(md5hex(b"x"), 8, {})
    with pytest.raises(NoSuchUpload):
        await store.complete_upload(upload, [(1, part.etag)], ObjectMeta(bucket, "mp"))
    with pytest.raises(NoSuchUpload):
        await store.new_part_writer(upload, 3)
    head = await store.head(bucket, "mp")
    assert head.size == meta.size == 8
    assert await read_all(store, head) == b"the part"


async def test_uploads_of_one_key_are_independent(store: Store, bucket: str) -> None:
    first = await new_upload(store, bucket)
    second = await new_upload(store, bucket)
    p1 = await put_part(store, first, 1, b"first upload")
    p2 = await put_part(store, second, 1, b"second upload")
    assert [p.etag for p in (await store.list_parts(first))[0]] == [p1.etag]
    with pytest.raises(InvalidPart):  # parts belong to their own upload
        await store.complete_upload(first, [(1, p2.etag)], ObjectMeta(bucket, "mp"))
    await store.abort_upload(first)
    meta = await store.complete_upload(second, [(1, p2.etag)], ObjectMeta(bucket, "mp"))
    assert await read_all(store, meta) == b"second upload"


async def test_replacing_a_multipart_object_with_a_single_one_and_back(
    store: Store, bucket: str, site: StoreSite
) -> None:
    floor = site.min_part_size
    upload = await new_upload(store, bucket)
    parts = [content("m1", floor), content("m2", 3)]
    etags = [(await put_part(store, upload, n, d)).etag for n, d in enumerate(parts, 1)]
    await store.complete_upload(upload, list(enumerate(etags, 1)), ObjectMeta(bucket, "mp"))
    single = await put(store, bucket, "mp", b"single now")
    assert single.parts == [] and (await store.head(bucket, "mp")).parts == []
    assert await read_all(store, await store.head(bucket, "mp")) == b"single now"
    again = await new_upload(store, bucket)
    etag = (await put_part(store, again, 1, b"multi again")).etag
    await store.complete_upload(again, [(1, etag)], ObjectMeta(bucket, "mp"))
    assert await read_all(store, await store.head(bucket, "mp")) == b"multi again"
    await store.delete(bucket, "mp")
    with pytest.raises(NoSuchKey):
        await store.head(bucket, "mp")
