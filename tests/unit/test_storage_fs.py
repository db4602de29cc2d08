"""FSBackend against a real directory and a real SQLite index: the whole storage contract.

Listing is checked against a brute-force model of S3 semantics over random keys (unicode,
'/'-heavy), including pagination with the returned marker.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from sealstore.storage import (
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooSmall,
    FSBackend,
    InvalidArgument,
    InvalidBucketName,
    InvalidObjectName,
    InvalidPart,
    InvalidPartOrder,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    ObjectMeta,
    StorageError,
    StorageFull,
)
from sealstore.storage.index import Index
from sealstore.storage.listing import list_page

BUCKET = "bkt"


def run(tmp_path: Path, body: Callable[[FSBackend], Awaitable[None]], **kwargs: object) -> None:
    """Open a backend on tmp_path, create BUCKET, run `body`, close."""

    async def main() -> None:
        async with FSBackend(tmp_path, **kwargs) as backend:  # type: ignore[arg-type]
            await backend.create_bucket(BUCKET)
            await body(backend)

    asyncio.run(main())


async def put(backend: FSBackend, key: str, data: bytes, bucket: str = BUCKET, **meta: object):
    async with await backend.new_writer(bucket, key) as writer:
        # write in uneven pieces to exercise buffering
        pos = 0
        step = 7001
        while pos < len(data):
            await writer.write(data[pos : pos + step])
            pos += step
            step = step * 3 if step < (1 << 21) else 4096
        template = ObjectMeta(
            bucket=bucket,
            key=key,
            size=len(data),
            stored_size=0,
            etag=hashlib.md5(data).hexdigest(),
            last_modified=0.0,
            **meta,  # type: ignore[arg-type]
        )
        return await writer.commit(template)


async def read_all(
    backend: FSBackend, meta: ObjectMeta, *args: int | None, chunk_size: int | None = None
) -> bytes:
    if chunk_size is not None:
        backend.read_size = chunk_size  # the backend's own read size (not in the contract)
    return b"".join([chunk async for chunk in backend.read(meta, *args)])


def blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").rglob("*") if p.is_file()}


def tmp_files(root: Path) -> list[str]:
    return [p.name for p in (root / "tmp").iterdir()]


# ------------------------------------------------------------------ buckets


def test_bucket_lifecycle(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        await b.create_bucket("zeta.bucket")
        await b.create_bucket("alpha-1")
        assert [x.name for x in await b.list_buckets()] == ["alpha-1", BUCKET, "zeta.bucket"]
        assert await b.bucket_exists("alpha-1")
        assert not await b.bucket_exists("nope-bucket")
        with pytest.raises(BucketAlreadyOwnedByYou):
            await b.create_bucket("alpha-1")
        await put(b, "k", b"x", bucket="alpha-1")
        with pytest.raises(BucketNotEmpty):
            await b.delete_bucket("alpha-1")
        await b.delete("alpha-1", "k")
        await b.delete_bucket("alpha-1")
        assert not await b.bucket_exists("alpha-1")
        with pytest.raises(NoSuchBucket):
            await b.delete_bucket("alpha-1")
        with pytest.raises(NoSuchBucket):
            await b.new_writer("alpha-1", "k")
        with pytest.raises(NoSuchBucket):
            await b.head("alpha-1", "k")
        with pytest.raises(NoSuchBucket):
            await b.list_objects("alpha-1")
        with pytest.raises(NoSuchBucket):
            await b.delete("alpha-1", "k")

    run(tmp_path, body)


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "Upper",
        "under_score",
        "-lead",
        "trail-",
        ".lead",
        "a..b",
        "a.-b",
        "a-.b",
        "192.168.1.1",
        "sp ace",
        "ümlaut",
        "",
    ],
)
def test_invalid_bucket_names(tmp_path: Path, name: str) -> None:
    async def body(b: FSBackend) -> None:
        with pytest.raises(InvalidBucketName) as err:
            await b.create_bucket(name)
        assert err.value.reason
        assert err.value.code == "InvalidBucketName"

    run(tmp_path, body)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my.bucket-1", "1.2.3", "192.168.1.1a"])
def test_valid_bucket_names(tmp_path: Path, name: str) -> None:
    async def body(b: FSBackend) -> None:
        await b.create_bucket(name)
        assert await b.bucket_exists(name)

    run(tmp_path, body)


def test_bucket_config(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        assert await b.get_bucket_config(BUCKET, "encryption") is None
        await b.put_bucket_config(BUCKET, "encryption", "<xml>1</xml>")
        await b.put_bucket_config(BUCKET, "encryption", "<xml>2</xml>")
        await b.put_bucket_config(BUCKET, "other", "v")
        assert await b.get_bucket_config(BUCKET, "encryption") == "<xml>2</xml>"
        await b.put_bucket_config(BUCKET, "encryption", None)
        assert await b.get_bucket_config(BUCKET, "encryption") is None
        assert await b.get_bucket_config(BUCKET, "other") == "v"
        with pytest.raises(NoSuchBucket):
            await b.get_bucket_config("missing-bucket", "encryption")
        with pytest.raises(NoSuchBucket):
            await b.put_bucket_config("missing-bucket", "encryption", "x")
        # configuration dies with its bucket
        await b.delete_bucket(BUCKET)
        await b.create_bucket(BUCKET)
        assert await b.get_bucket_config(BUCKET, "other") is None

    run(tmp_path, body)


# ------------------------------------------------------------------ objects


def test_put_head_read_roundtrip(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 12345)

    async def body(b: FSBackend) -> None:
        meta = await put(
            b,
            "dir/ünïcode key.bin",
            data,
            content_type="application/x-test",
            user_meta={"color": "blue"},
            headers={"cache-control": "no-cache"},
            internal={"X-Minio-Internal-Server-Side-Encryption-Iv": "abc"},
        )
        assert meta.stored_size == len(data)
        assert meta.last_modified > 0
        head = await b.head(BUCKET, "dir/ünïcode key.bin")
        assert head.size == len(data)
        assert head.stored_size == len(data)
        assert head.etag == hashlib.md5(data).hexdigest()
        assert head.content_type == "application/x-test"
        assert head.user_meta == {"color": "blue"}
        assert head.headers == {"cache-control": "no-cache"}
        assert head.internal == {"X-Minio-Internal-Server-Side-Encryption-Iv": "abc"}
        assert head.parts == []
        assert head.last_modified == meta.last_modified
        assert await read_all(b, head) == data
        # chunks honour the backend's read size
        b.read_size = 65536
        sizes = [len(c) async for c in b.read(head, 0, None)]
        assert max(sizes) <= 65536
        assert sum(sizes) == len(data)

    run(tmp_path, body)


def test_range_reads(tmp_path: Path) -> None:
    data = os.urandom(200_000)

    async def body(b: FSBackend) -> None:
        meta = await put(b, "r", data)
        rng = random.Random(7)
        for _ in range(50):
            off = rng.randrange(0, len(data) + 10)
            length = rng.choice([None, 0, 1, rng.randrange(0, 300_000)])
            want = data[off:] if length is None else data[off : off + length]
            got = await read_all(b, meta, off, length, chunk_size=rng.choice([1000, 1 << 20]))
            assert got == want, (off, length)
        with pytest.raises(ValueError):
            b.read(meta, -1)

    run(tmp_path, body)


def test_empty_object(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        meta = await put(b, "empty", b"")
        assert meta.stored_size == 0
        assert await read_all(b, await b.head(BUCKET, "empty")) == b""

    run(tmp_path, body)


def test_replace_and_delete(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        await put(b, "k", b"one")
        await put(b, "k", b"two-two")
        head = await b.head(BUCKET, "k")
        assert head.size == 7
        assert await read_all(b, head) == b"two-two"
        await b.delete(BUCKET, "k")
        with pytest.raises(NoSuchKey):
            await b.head(BUCKET, "k")
        await b.delete(BUCKET, "k")  # idempotent
        await b.delete(BUCKET, "never-existed")
        # with no grace period the replaced and deleted data files are gone
        assert blob_files(tmp_path) == set()
        assert tmp_files(tmp_path) == []

    run(tmp_path, body, gc_grace=0)


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("", "empty"),
        ("k" * 1025, "1024"),
        ("é" * 513, "1024"),
        ("a\x00b", "NUL"),
        ("bad\udcff", "UTF-8"),
        ("../etc/passwd", ".."),
        ("a/../../b", ".."),
        ("a/./b", "'.'"),
        ("..", ".."),
        ("/etc/passwd", "start"),
    ],
)
def test_invalid_keys(tmp_path: Path, key: str, fragment: str) -> None:
    async def body(b: FSBackend) -> None:
        for call in (
            lambda: b.new_writer(BUCKET, key),
            lambda: b.head(BUCKET, key),
            lambda: b.delete(BUCKET, key),
            lambda: b.create_upload(BUCKET, key, ObjectMeta(BUCKET, key)),
        ):
            with pytest.raises(InvalidObjectName) as err:
                await call()
            assert fragment in err.value.reason
        assert tmp_files(tmp_path) == []

    run(tmp_path, body)


def test_edge_keys_accepted(tmp_path: Path) -> None:
    keys = ["k" * 1024, "é" * 512, "a//b", "dir/", "..a", "a..", "a/.../b", " ", "\U0001f600/x"]

    async def body(b: FSBackend) -> None:
        for i, key in enumerate(keys):
            await put(b, key, str(i).encode())
        for i, key in enumerate(keys):
            assert await read_all(b, await b.head(BUCKET, key)) == str(i).encode()

    run(tmp_path, body)


def test_abort_and_failed_writer_leave_nothing(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        w = await b.new_writer(BUCKET, "k")
        await w.write(b"x" * 3_000_000)
        await w.abort()
        await w.abort()
        with pytest.raises(StorageError):
            await w.write(b"more")
        with pytest.raises(RuntimeError, match="boom"):
            async with await b.new_writer(BUCKET, "k") as w2:
                await w2.write(b"y" * 100)
                raise RuntimeError("boom")
        with pytest.raises(NoSuchKey):
            await b.head(BUCKET, "k")
        assert tmp_files(tmp_path) == []
        assert blob_files(tmp_path) == set()
        # bucket deleted between new_writer and commit: the data is dropped, not published
        await b.create_bucket("gone-soon")
        w3 = await b.new_writer("gone-soon", "k")
        await w3.write(b"z")
        await b.delete_bucket("gone-soon")
        with pytest.raises(NoSuchBucket):
            await w3.commit(ObjectMeta("gone-soon", "k", 1))
        assert tmp_files(tmp_path) == []
        assert blob_files(tmp_path) == set()

    run(tmp_path, body)


def test_replace_while_reading(tmp_path: Path) -> None:
    old = os.urandom(5 << 20)
    new = os.urandom(1 << 20)

    async def body(b: FSBackend) -> None:
        meta = await put(b, "k", old)
        b.read_size = 1 << 16
        stream = b.read(meta)
        first = await anext(stream)
        await put(b, "k", new)  # replace: old file unlinked at once (gc_grace=0)
        rest = b"".join([c async for c in stream])
        assert first + rest == old
        assert await read_all(b, await b.head(BUCKET, "k")) == new

    run(tmp_path, body, gc_grace=0)


def test_delete_while_reading(tmp_path: Path) -> None:
    old = os.urandom(3 << 20)

    async def body(b: FSBackend) -> None:
        meta = await put(b, "k", old)
        b.read_size = 1 << 16
        stream = b.read(meta)
        first = await anext(stream)
        await b.delete(BUCKET, "k")
        assert blob_files(tmp_path) == set()  # unlinked, yet still readable through the fd
        rest = b"".join([c async for c in stream])
        assert first + rest == old

    run(tmp_path, body, gc_grace=0)


def test_head_then_replace_then_read_uses_grace(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        await put(b, "k", b"old data")
        meta = await b.head(BUCKET, "k")
        await put(b, "k", b"new data")
        await b.delete(BUCKET, "k")
        # metadata from before the replace still reads the old bytes within the grace period
        assert await read_all(b, meta) == b"old data"

    run(tmp_path, body, gc_grace=300)


def test_head_then_replace_without_grace_is_nosuchkey(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        await put(b, "k", b"old data")
        meta = await b.head(BUCKET, "k")
        await put(b, "k", b"new data")
        with pytest.raises(NoSuchKey):
            await read_all(b, meta)

    run(tmp_path, body, gc_grace=0)


def test_concurrent_writers_same_key(tmp_path: Path) -> None:
    payloads = [bytes([i]) * (100_000 + i) for i in range(12)]

    async def body(b: FSBackend) -> None:
        await asyncio.gather(*(put(b, "k", p) for p in payloads))
        head = await b.head(BUCKET, "k")
        data = await read_all(b, head)
        assert data in payloads
        assert head.size == len(data) == head.stored_size
        assert head.etag == hashlib.md5(data).hexdigest()
        assert blob_files(tmp_path) == set(head.files)
        assert tmp_files(tmp_path) == []

    run(tmp_path, body, gc_grace=0)


def test_persistence_and_permissions(tmp_path: Path) -> None:
    async def first(b: FSBackend) -> None:
        await put(b, "a/b", b"persist me")

    run(tmp_path, first)

    async def main() -> None:
        async with FSBackend(tmp_path) as b:
            assert await read_all(b, await b.head(BUCKET, "a/b")) == b"persist me"
            assert [x.name for x in await b.list_buckets()] == [BUCKET]

    asyncio.run(main())
    for path in [tmp_path / "blobs", tmp_path / "tmp", *(tmp_path / "blobs").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    files += list(tmp_path.glob("sealstore.sqlite3*"))
    assert len(files) >= 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_two_backends_share_a_directory(tmp_path: Path) -> None:
    async def main() -> None:
        async with FSBackend(tmp_path) as one, FSBackend(tmp_path) as two:
            await one.create_bucket(BUCKET)
            await asyncio.gather(
                *(put(one, f"one/{i}", b"1" * i) for i in range(20)),
                *(put(two, f"two/{i}", b"2" * i) for i in range(20)),
            )
            listed = await two.list_objects(BUCKET)
            assert len(listed.objects) == 40
            assert await read_all(one, await one.head(BUCKET, "two/7")) == b"2" * 7
            # a writer alive in one backend survives a sweep by a third opening the directory
            pending = await one.new_writer(BUCKET, "late")
            await pending.write(b"still here")
            async with FSBackend(tmp_path) as three:
                assert three.sweep_report.temp_removed == 0
            await pending.commit(ObjectMeta(BUCKET, "late", 10))
            assert await read_all(two, await two.head(BUCKET, "late")) == b"still here"

    asyncio.run(main())


def test_open_sweeps_leftovers(tmp_path: Path) -> None:
    async def first(b: FSBackend) -> None:
        await put(b, "keep", b"kept")

    run(tmp_path, first)
    (tmp_path / "tmp" / "deadbeef").write_bytes(b"half written")
    orphan = tmp_path / "blobs" / "ab" / ("ab" + "0" * 30)
    orphan.write_bytes(b"never published")
    kept = blob_files(tmp_path) - {orphan.name}

    async def main() -> None:
        async with FSBackend(tmp_path) as b:
            assert b.sweep_report.temp_removed == 1
            assert b.sweep_report.orphans_removed == 1
            assert b.sweep_report.missing == []
            assert await read_all(b, await b.head(BUCKET, "keep")) == b"kept"

    asyncio.run(main())
    assert tmp_files(tmp_path) == []
    assert blob_files(tmp_path) == kept

    # fsck-light: an indexed file that vanished is reported
    next(iter((tmp_path / "blobs").rglob(next(iter(kept))))).unlink()

    async def again() -> None:
        async with FSBackend(tmp_path) as b:
            assert b.sweep_report.missing == sorted(kept)

    asyncio.run(again())


def test_closed_backend_refuses_work(tmp_path: Path) -> None:
    async def main() -> None:
        b = FSBackend(tmp_path)
        with pytest.raises(StorageError):
            await b.list_buckets()
        await b.open()
        await b.close()
        await b.close()
        with pytest.raises(StorageError):
            await b.bucket_exists(BUCKET)

    asyncio.run(main())


# ------------------------------------------------------------------ listing


def model_list(
    keys: list[str], prefix: str, start_after: str, delimiter: str, max_keys: int
) -> tuple[list[str], list[str], bool, str | None]:
    """S3 ListObjects semantics by brute force over every key."""
    after = start_after.encode()
    entries: list[tuple[str, bool]] = []
    for key in sorted(keys, key=lambda k: k.encode()):
        if not key.startswith(prefix) or key.encode() <= after:
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common.encode() <= after or (entries and entries[-1] == (common, True)):
                continue
            entries.append((common, True))
        else:
            entries.append((key, False))
    if max_keys <= 0:
        return [], [], False, None
    page = entries[:max_keys]
    truncated = len(entries) > max_keys
    return (
        [k for k, cp in page if not cp],
        [k for k, cp in page if cp],
        truncated,
        page[-1][0] if truncated else None,
    )


def random_keys(rng: random.Random, n: int) -> list[str]:
    alphabet = ["a", "b", "/", "/", "-", "é", "z", "\U0001f600", "Ω", ".", "0", "~", "/"]
    keys: set[str] = set()
    while len(keys) < n:
        key = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 9)))
        if key.startswith("/") or any(s in (".", "..") for s in key.split("/")):
            continue
        keys.add(key)
    return sorted(keys)


def test_listing_matches_model(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    keys = random_keys(rng, 600)

    async def body(b: FSBackend) -> None:
        for key in keys:
            await put(b, key, b"")
        prefixes = ["", "a", "a/", "é", "\U0001f600", "/", "b/a", "zz", "Ω/"]
        for _ in range(400):
            prefix = rng.choice([*prefixes, rng.choice(keys)[: rng.randrange(0, 4)]])
            start_after = rng.choice(["", "", rng.choice(keys), rng.choice(keys)[:2], "a/"])
            delimiter = rng.choice(["", "/", "/", "a", "é/", "-"])
            max_keys = rng.choice([0, 1, 2, 3, 7, 50, 1000])
            res = await b.list_objects(
                BUCKET,
                prefix=prefix,
                start_after=start_after,
                delimiter=delimiter,
                max_keys=max_keys,
            )
            want = model_list(keys, prefix, start_after, delimiter, max_keys)
            got = (
                [o.key for o in res.objects],
                res.common_prefixes,
                res.is_truncated,
                res.next_marker,
            )
            assert got == want, (prefix, start_after, delimiter, max_keys)

    run(tmp_path, body)


def test_listing_pagination_covers_everything(tmp_path: Path) -> None:
    rng = random.Random(99)
    keys = random_keys(rng, 400)

    async def body(b: FSBackend) -> None:
        for key in keys:
            await put(b, key, b"x")
        for delimiter in ["", "/", "é"]:
            for page_size in [1, 3, 17, 1000]:
                marker = ""
                seen_keys: list[str] = []
                seen_prefixes: list[str] = []
                while True:
                    res = await b.list_objects(
                        BUCKET, delimiter=delimiter, start_after=marker, max_keys=page_size
                    )
                    assert len(res.objects) + len(res.common_prefixes) <= page_size
                    seen_keys += [o.key for o in res.objects]
                    seen_prefixes += res.common_prefixes
                    if not res.is_truncated:
                        assert res.next_marker is None
                        break
                    assert (
                        res.next_marker is not None and res.next_marker.encode() > marker.encode()
                    )
                    marker = res.next_marker
                all_keys, all_prefixes, _, _ = model_list(keys, "", "", delimiter, 10**9)
                assert seen_keys == all_keys
                assert seen_prefixes == all_prefixes
                # objects carry full metadata in listings
                if seen_keys:
                    head = await b.head(BUCKET, seen_keys[0])
                    listed = await b.list_objects(BUCKET, prefix=seen_keys[0], max_keys=1)
                    assert listed.objects[0].etag == head.etag

    run(tmp_path, body)


def test_listing_byte_order_not_codepoint_order(tmp_path: Path) -> None:
    # U+FF5E (3 bytes EF BD 9E) sorts before U+1F600 (4 bytes F0 ...) in UTF-8 byte order and
    # in code point order, but U+E000 vs U+10000 in UTF-16 order would differ; check bytes.
    keys = ["\ue000", "\U00010000", "a", "~", "\x7f", "é"]

    async def body(b: FSBackend) -> None:
        for key in keys:
            await put(b, key, b"")
        res = await b.list_objects(BUCKET)
        assert [o.key for o in res.objects] == sorted(keys, key=lambda k: k.encode("utf-8"))

    run(tmp_path, body)


def test_listing_skips_common_prefix_with_one_seek(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        for i in range(3000):
            await put(b, f"big/{i:05d}", b"")
        for name in ["a", "big", "c/1", "c/2", "d"]:
            await put(b, name, b"")

    run(tmp_path, body)
    index = Index(tmp_path / "sealstore.sqlite3")
    rows_seen = 0

    def counting_scan(lower: bytes, inclusive: bool, upper: bytes | None, limit: int):
        nonlocal rows_seen
        rows = index.scan_objects(BUCKET, lower, inclusive, upper, limit)
        rows_seen += len(rows)
        return rows

    try:
        res = list_page(counting_scan, prefix="", start_after="", delimiter="/", max_keys=1000)
        assert [o.key for o in res.objects] == ["a", "big", "d"]
        assert res.common_prefixes == ["big/", "c/"]
        # far fewer rows than the 3000 keys under big/ (one batch before the first seek)
        assert rows_seen < 100, rows_seen
        rows_seen = 0
        res = list_page(counting_scan, prefix="big/", start_after="", delimiter="/", max_keys=2)
        assert [o.key for o in res.objects] == ["big/00000", "big/00001"]
        assert res.is_truncated and res.next_marker == "big/00001"
        assert rows_seen <= 3
    finally:
        index.close()


# ------------------------------------------------------------------ multipart


async def upload_part(b: FSBackend, upload, number: int, data: bytes):
    async with await b.new_part_writer(upload, number) as w:
        await w.write(data)
        return await w.commit(hashlib.md5(data).hexdigest(), len(data), {"n": str(number)})


def test_multipart_complete_reads_across_parts(tmp_path: Path) -> None:
    p1, p2, p3 = os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(123_457)

    async def body(b: FSBackend) -> None:
        template = ObjectMeta(
            BUCKET, "mp", user_meta={"a": "1"}, internal={"X-Minio-Internal-x": "sealed"}
        )
        upload = await b.create_upload(BUCKET, "mp", template)
        again = await b.get_upload(BUCKET, "mp", upload.upload_id)
        assert again.meta.user_meta == {"a": "1"}
        assert again.meta.internal == {"X-Minio-Internal-x": "sealed"}
        await upload_part(b, upload, 3, p3)
        await upload_part(b, upload, 1, b"to be replaced")
        await upload_part(b, upload, 1, p1)
        await upload_part(b, upload, 2, p2)
        await upload_part(b, upload, 7, b"never used")
        parts, truncated = await b.list_parts(upload)
        assert [p.number for p in parts] == [1, 2, 3, 7] and not truncated
        assert parts[0].size == len(p1) and parts[0].internal == {"n": "1"}
        parts, truncated = await b.list_parts(upload, marker=1, max_parts=2)
        assert [p.number for p in parts] == [2, 3] and truncated
        assert len(blob_files(tmp_path)) == 4  # replaced part 1 is gone (gc_grace=0)

        final = ObjectMeta(BUCKET, "mp", user_meta={"a": "1"}, internal=again.meta.internal)
        meta = await b.complete_upload(
            upload,
            [
                (1, f'"{hashlib.md5(p1).hexdigest()}"'),
                (2, hashlib.md5(p2).hexdigest()),
                (3, hashlib.md5(p3).hexdigest().upper()),
            ],
            final,
        )
        whole = p1 + p2 + p3
        assert meta.size == meta.stored_size == len(whole)
        assert [p.number for p in meta.parts] == [1, 2, 3]
        expected_etag = hashlib.md5(
            b"".join(hashlib.md5(p).digest() for p in (p1, p2, p3))
        ).hexdigest()
        assert meta.etag == f"{expected_etag}-3"
        head = await b.head(BUCKET, "mp")
        assert head.parts == meta.parts and head.etag == meta.etag
        assert head.internal == {"X-Minio-Internal-x": "sealed"}
        assert await read_all(b, head) == whole
        # ranges spanning part boundaries
        for off, n in [
            (len(p1) - 10, 20),
            (len(p1) - 1, len(p2) + 2),
            (0, len(whole)),
            (len(p1) + len(p2), 5),
            (len(whole) - 3, 100),
        ]:
            assert await read_all(b, head, off, n, chunk_size=4096) == whole[off : off + n]
        # upload is gone; unused part 7 is deleted; parts became the object's files (no copy)
        with pytest.raises(NoSuchUpload):
            await b.get_upload(BUCKET, "mp", upload.upload_id)
        assert blob_files(tmp_path) == set(head.files) and len(head.files) == 3
        uploads, _ = await b.list_uploads(BUCKET)
        assert uploads == []
        # replacing the object frees all its part files
        await put(b, "mp", b"small")
        assert len(blob_files(tmp_path)) == 1

    run(tmp_path, body, gc_grace=0)


def test_multipart_errors(tmp_path: Path) -> None:
    big, small = b"B" * 2048, b"s" * 10

    async def body(b: FSBackend) -> None:
        upload = await b.create_upload(BUCKET, "k", ObjectMeta(BUCKET, "k"))
        e1 = (await upload_part(b, upload, 1, big)).etag
        e2 = (await upload_part(b, upload, 2, small)).etag
        e3 = (await upload_part(b, upload, 3, big)).etag
        with pytest.raises(InvalidPartOrder):
            await b.complete_upload(upload, [(2, e2), (1, e1)], ObjectMeta(BUCKET, "k"))
        with pytest.raises(InvalidPartOrder):
            await b.complete_upload(upload, [(1, e1), (1, e1)], ObjectMeta(BUCKET, "k"))
        with pytest.raises(InvalidPart):
            await b.complete_upload(upload, [(1, e1), (4, e3)], ObjectMeta(BUCKET, "k"))
        with pytest.raises(InvalidPart):
            await b.complete_upload(upload, [(1, e2)], ObjectMeta(BUCKET, "k"))
        with pytest.raises(InvalidPart):
            await b.complete_upload(upload, [], ObjectMeta(BUCKET, "k"))
        with pytest.raises(EntityTooSmall):
            await b.complete_upload(upload, [(1, e1), (2, e2), (3, e3)], ObjectMeta(BUCKET, "k"))
        for bad in (0, 10001):
            with pytest.raises(InvalidArgument):
                await b.new_part_writer(upload, bad)
        # nothing became visible, the upload is intact after every failure
        with pytest.raises(NoSuchKey):
            await b.head(BUCKET, "k")
        parts, _ = await b.list_parts(upload)
        assert [p.number for p in parts] == [1, 2, 3]
        # a small last part is fine; skipping part 2 is fine
        meta = await b.complete_upload(upload, [(1, e1), (3, e3)], ObjectMeta(BUCKET, "k"))
        assert await read_all(b, meta) == big + big
        with pytest.raises(NoSuchUpload):
            await b.complete_upload(upload, [(1, e1)], ObjectMeta(BUCKET, "k"))
        with pytest.raises(NoSuchUpload):
            await b.new_part_writer(upload, 1)
        with pytest.raises(NoSuchUpload):
            await b.list_parts(upload)
        with pytest.raises(NoSuchUpload):
            await b.abort_upload(upload)
        # wrong key for an existing upload id
        other = await b.create_upload(BUCKET, "x", ObjectMeta(BUCKET, "x"))
        with pytest.raises(NoSuchUpload):
            await b.get_upload(BUCKET, "y", other.upload_id)
        with pytest.raises(NoSuchUpload):
            await b.get_upload(BUCKET, "x", "no-such-id")
        with pytest.raises(NoSuchBucket):
            await b.get_upload("missing-bucket", "x", other.upload_id)
        with pytest.raises(NoSuchBucket):
            await b.create_upload("missing-bucket", "x", ObjectMeta("missing-bucket", "x"))

    run(tmp_path, body, gc_grace=0, min_part_size=1024)


def test_default_min_part_size_is_5mib(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        upload = await b.create_upload(BUCKET, "k", ObjectMeta(BUCKET, "k"))
        e1 = (await upload_part(b, upload, 1, b"a" * ((5 << 20) - 1))).etag
        e2 = (await upload_part(b, upload, 2, b"b")).etag
        with pytest.raises(EntityTooSmall):
            await b.complete_upload(upload, [(1, e1), (2, e2)], ObjectMeta(BUCKET, "k"))

    run(tmp_path, body)


def test_part_commit_after_abort_is_refused(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        upload = await b.create_upload(BUCKET, "k", ObjectMeta(BUCKET, "k"))
        await upload_part(b, upload, 1, b"data")
        writer = await b.new_part_writer(upload, 2)
        await writer.write(b"late part")
        await b.abort_upload(upload)
        with pytest.raises(NoSuchUpload):
            await writer.commit("etag", 9, {})
        assert blob_files(tmp_path) == set()
        assert tmp_files(tmp_path) == []

    run(tmp_path, body, gc_grace=0)


def test_list_uploads_and_bucket_delete(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        made = []
        for key in ["b/2", "a", "b/1", "a", "c", "b/1"]:
            made.append(await b.create_upload(BUCKET, key, ObjectMeta(BUCKET, key)))
        uploads, truncated = await b.list_uploads(BUCKET)
        order = [(u.key, u.upload_id) for u in uploads]
        assert order == sorted(
            ((u.key, u.upload_id) for u in made), key=lambda t: (t[0].encode(), t[1])
        )
        assert not truncated
        # upload ids of one key come in initiation order
        a_ids = [u.upload_id for u in uploads if u.key == "a"]
        assert a_ids == [u.upload_id for u in made if u.key == "a"]
        page, truncated = await b.list_uploads(BUCKET, max_uploads=2)
        assert [(u.key, u.upload_id) for u in page] == order[:2] and truncated
        page, _ = await b.list_uploads(BUCKET, key_marker="a", upload_id_marker=a_ids[0])
        assert [(u.key, u.upload_id) for u in page] == order[1:]
        page, _ = await b.list_uploads(BUCKET, key_marker="a")
        assert [u.key for u in page] == ["b/1", "b/1", "b/2", "c"]
        page, _ = await b.list_uploads(BUCKET, prefix="b/")
        assert [u.key for u in page] == ["b/1", "b/1", "b/2"]
        with pytest.raises(NoSuchBucket):
            await b.list_uploads("missing-bucket")
        await upload_part(b, made[0], 1, b"part data")
        # pending uploads do not keep a bucket alive; their parts go with it
        await b.delete_bucket(BUCKET)
        assert blob_files(tmp_path) == set()
        await b.create_bucket(BUCKET)
        assert (await b.list_uploads(BUCKET))[0] == []

    run(tmp_path, body, gc_grace=0)


# ------------------------------------------------------------------ disk full


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 4 MiB tmpfs (needs root and mount rights; skipped where the kernel refuses)."""
    import subprocess

    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full_is_storage_full_and_publishes_nothing(tiny_fs: Path) -> None:
    async def body(b: FSBackend) -> None:
        await put(b, "small", b"fits")
        with pytest.raises(StorageFull) as err:
            await put(b, "big", os.urandom(8 << 20))
        assert err.value.code == "XMinioStorageFull"
        with pytest.raises(NoSuchKey):
            await b.head(BUCKET, "big")
        assert tmp_files(tiny_fs) == []
        # space came back: the store keeps working
        await put(b, "small", b"still fits")
        assert await read_all(b, await b.head(BUCKET, "small")) == b"still fits"

    run(tiny_fs, body, gc_grace=0)


# ------------------------------------------------------------------ group commit


def test_group_commit_batches_and_isolates_failures(tmp_path: Path) -> None:
    import threading

    index = Index(tmp_path / "index.sqlite3")
    index.initialize()
    gate = threading.Event()
    results: dict[int, object] = {}

    def blocker(c) -> str:
        c.execute("INSERT INTO buckets(name, created) VALUES('first', 0)")
        gate.wait(10)
        return "first"

    def insert(n: int):
        def tx(c) -> int:
            c.execute("INSERT INTO buckets(name, created) VALUES(?, 0)", (f"b{n}",))
            if n == 3:
                raise NoSuchBucket("fails alone")
            return n

        return tx

    def call(n: int, fn) -> None:
        try:
            results[n] = index.write(fn)
        except Exception as exc:
            results[n] = exc

    try:
        first = threading.Thread(target=call, args=(-1, blocker))
        first.start()
        while index._committer.requests < 1:  # the blocker is inside its transaction
            threading.Event().wait(0.01)
        threads = [threading.Thread(target=call, args=(n, insert(n))) for n in range(6)]
        for t in threads:
            t.start()
        while index._committer._queue.qsize() < 6:
            threading.Event().wait(0.01)
        gate.set()
        for t in [first, *threads]:
            t.join(10)
        assert index._committer.batches == 2 and index._committer.requests == 7
        assert results[-1] == "first"
        assert isinstance(results[3], NoSuchBucket)
        assert [results[n] for n in (0, 1, 2, 4, 5)] == [0, 1, 2, 4, 5]
        names = [b.name for b in index.list_buckets()]
        assert names == ["b0", "b1", "b2", "b4", "b5", "first"]
    finally:
        gate.set()
        index.close()


def test_garbage_is_reaped_after_grace_without_further_changes(tmp_path: Path) -> None:
    async def body(b: FSBackend) -> None:
        await put(b, "k", b"old")
        await put(b, "k", b"new")
        live = set((await b.head(BUCKET, "k")).files)
        assert len(blob_files(tmp_path)) == 2  # old data kept for the grace period
        for _ in range(50):
            await asyncio.sleep(0.1)
            if blob_files(tmp_path) == live:
                break
        assert blob_files(tmp_path) == live

    run(tmp_path, body, gc_grace=1.0)


def test_unusable_data_directory_gives_one_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")

    async def main() -> None:
        with pytest.raises(StorageError, match="cannot use data directory"):
            await FSBackend(not_a_dir).open()
        newer = tmp_path / "newer"
        async with FSBackend(newer):
            pass
        import sqlite3

        with sqlite3.connect(newer / "sealstore.sqlite3") as conn:
            conn.execute("PRAGMA user_version=99")
        with pytest.raises(StorageError, match="newer sealstore"):
            await FSBackend(newer).open()

    asyncio.run(main())


def test_cancelled_commits_publish_all_or_nothing(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)

    async def body(b: FSBackend) -> None:
        outcomes = set()
        for i in range(30):
            key = f"k{i}"
            writer = await b.new_writer(BUCKET, key)
            await writer.write(data[: 1000 + i])

            async def commit(w=writer, k=key, n=1000 + i):
                async with w:
                    await w.commit(ObjectMeta(BUCKET, k, n))

            task = asyncio.create_task(commit())
            for _ in range(i % 4):
                await asyncio.sleep(0)
            if i % 5:
                await asyncio.sleep(0.0005 * (i % 7))
            task.cancel()
            try:
                await task
                outcomes.add("committed")
            except asyncio.CancelledError:
                outcomes.add("cancelled")
            try:
                meta = await b.head(BUCKET, key)
            except NoSuchKey:
                continue
            assert await read_all(b, meta) == data[: 1000 + i]
        await asyncio.sleep(0.2)  # threads of cancelled commits have finished
        referenced = set()
        for obj in (await b.list_objects(BUCKET)).objects:
            referenced |= set(obj.files)
        assert blob_files(tmp_path) == referenced
        assert tmp_files(tmp_path) == []
        assert "cancelled" in outcomes

    run(tmp_path, body, gc_grace=0)


# ------------------------------------------------------------------ preflight and transforms


def test_preflight_reports_unusable_directory_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    import threading

    before = threading.active_count()
    FSBackend.preflight(tmp_path / "fresh")  # creates a usable store
    assert (tmp_path / "fresh" / "sealstore.sqlite3").is_file()
    assert threading.active_count() == before  # committer stopped: safe to fork after this
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(StorageError, match="cannot use data directory"):
        FSBackend.preflight(not_a_dir)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "sealstore.sqlite3").write_bytes(b"not a database" * 200)
    with pytest.raises(StorageError, match="not a database"):
        FSBackend.preflight(garbage)
    assert threading.active_count() == before


class _XorTransform:
    """A write transform that records its thread and changes every byte (so a test can see it
    ran), like an encryptor: update may hold nothing back here, finalize adds a trailer."""

    def __init__(self, threads: list[str]) -> None:
        self.threads = threads

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        import threading

        self.threads.append(threading.current_thread().name)
        return bytes(b ^ 0x5A for b in bytes(data)[:4096]) + bytes(data)[4096:]

    def finalize(self) -> bytes:
        return b"END"


def test_transform_runs_with_the_write_in_one_storage_thread_hop(tmp_path: Path) -> None:
    import threading

    first, second, third = os.urandom(1000), os.urandom(3 << 20), os.urandom(5000)
    threads: list[str] = []

    async def body(b: FSBackend) -> None:
        async with await b.new_writer(BUCKET, "via") as writer:
            writer.set_transform(_XorTransform(threads))
            await writer.write(first)  # buffered: must still come first
            assert writer.written == 0 and writer.accepted == len(first)
            await writer.write(second)
            # the transform's output is on disk when write returns (no second hop)
            assert writer._buffer == bytearray()
            assert writer._blob.size == len(first) + len(second) == writer.written
            await writer.write(third)
            meta = await writer.commit(ObjectMeta(bucket=BUCKET, key="via", size=0))
        joined = first + second
        expected = (
            bytes(x ^ 0x5A for x in joined[:4096])
            + joined[4096:]
            + bytes(x ^ 0x5A for x in third[:4096])
            + third[4096:]
            + b"END"
        )
        assert await read_all(b, meta) == expected
        assert writer.accepted == len(first) + len(second) + len(third)
        assert len(threads) == 2  # one hop for the first ~1 MiB batch, one in the commit
        assert threads[0].startswith("sealstore-storage")
        assert threading.main_thread().name not in threads
        with pytest.raises(StorageError, match="already committed"):
            await writer.write(b"more")

    run(tmp_path, body)


class _Boom:
    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        raise ValueError("transform failed")

    def finalize(self) -> bytes:
        return b""


class _Identity:
    def update(self, data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
        return data

    def finalize(self) -> bytes:
        return b""


def test_part_writer_transform_and_failure_leaves_nothing(tmp_path: Path) -> None:
    data = os.urandom(100_000)

    async def body(b: FSBackend) -> None:
        upload = await b.create_upload(BUCKET, "mp", ObjectMeta(bucket=BUCKET, key="mp"))
        async with await b.new_part_writer(upload, 1) as pw:
            pw.set_transform(_Identity())
            await pw.write(data)
            part = await pw.commit("etag1", len(data), {})
        assert part.stored_size == len(data)
        with pytest.raises(ValueError, match="transform failed"):
            async with await b.new_part_writer(upload, 2) as pw2:
                pw2.set_transform(_Boom())
                await pw2.write(data)
                await pw2.commit("etag2", len(data), {})
        parts, _ = await b.list_parts(upload)
        assert [p.number for p in parts] == [1]
        assert tmp_files(tmp_path) == []

    run(tmp_path, body)
