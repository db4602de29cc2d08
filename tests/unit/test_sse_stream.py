"""Encryption on the PUT path: a storage writer with a DARE encryptor as its transform gives one
DARE stream per object or part, one storage-thread hop per ~1 MiB batch (encrypt + write in the
same call, never on the loop), and byte counters the object service relies on."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sealstore.crypto import dare, keys
from sealstore.storage import FSBackend, ObjectMeta
from sealstore.storage.fs_writers import WRITE_BATCH

KEY = bytes(range(32))
BUCKET = "bkt"


async def chunks(data: bytes, step: int = 65536) -> AsyncIterator[bytes]:
    for pos in range(0, len(data), step):
        yield data[pos : pos + step]


def decrypt(key: bytes, stored: bytes) -> bytes:
    dec = dare.DareDecryptor(key)
    out = dec.update(stored)
    dec.finalize()
    return out


class RecordingEncryptor(dare.DareEncryptor):
    """A real DARE encryptor that records the thread of every call (one call = one hop)."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self.hops: list[str] = []

    def update(self, data: bytes | bytearray | memoryview) -> bytearray:
        self.hops.append(threading.current_thread().name)
        return super().update(data)

    def finalize(self, data: bytes | bytearray | memoryview = b"") -> bytearray:
        self.hops.append(threading.current_thread().name)
        return super().finalize(data)


async def _store(b: FSBackend, key: str, data: bytes, enc: dare.DareEncryptor, step: int):
    async with await b.new_writer(BUCKET, key) as w:
        w.set_transform(enc)
        async for c in chunks(data, step):
            await w.write(c)
        accepted = w.accepted
        meta = await w.commit(ObjectMeta(bucket=BUCKET, key=key, size=len(data)))
    stored = b"".join([c async for c in b.read(meta, 0, meta.stored_size)])
    return accepted, w.written, meta, stored


def _run(tmp_path: Path, fn):
    async def main():
        async with FSBackend(tmp_path) as b:
            await b.create_bucket(BUCKET)
            return await fn(b)

    return asyncio.run(main())


def test_writer_path_uses_one_hop_per_batch_off_the_loop(tmp_path: Path) -> None:
    data = os.urandom(5 * WRITE_BATCH + 12345)
    enc = RecordingEncryptor(KEY)
    accepted, written, meta, stored = _run(tmp_path, lambda b: _store(b, "o", data, enc, 65536))
    assert accepted == len(data)
    assert written == meta.stored_size == len(stored) == dare.encrypted_size(len(data))
    # 5 full batches, then the tail and the final package in the commit hop
    assert len(enc.hops) == 7
    assert threading.main_thread().name not in enc.hops
    assert all(h.startswith("sealstore-storage") for h in enc.hops)
    assert decrypt(KEY, stored) == data


def test_uneven_chunks_give_an_equivalent_stream(tmp_path: Path) -> None:
    data = os.urandom(2 * WRITE_BATCH + 7)
    accepted, written, _, stored = _run(
        tmp_path, lambda b: _store(b, "o", data, dare.DareEncryptor(KEY), 10000)
    )
    assert (accepted, written) == (len(data), len(stored))
    assert decrypt(KEY, stored) == data


def test_empty_stream_stores_nothing(tmp_path: Path) -> None:
    accepted, written, meta, stored = _run(
        tmp_path, lambda b: _store(b, "o", b"", dare.DareEncryptor(KEY), 1)
    )
    assert (accepted, written, meta.stored_size, stored) == (0, 0, 0, b"")


def test_transform_must_be_set_before_the_first_write(tmp_path: Path) -> None:
    async def fn(b: FSBackend) -> None:
        async with await b.new_writer(BUCKET, "o") as w:
            await w.write(b"x")
            with pytest.raises(Exception, match="before the first write"):
                w.set_transform(dare.DareEncryptor(KEY))

    _run(tmp_path, fn)


def test_encrypt_into_real_object_and_part_writers(tmp_path: Path) -> None:
    data = os.urandom(3 * WRITE_BATCH + 999)
    oek = os.urandom(32)

    async def main(b: FSBackend) -> tuple[bytes, bytes]:
        _, stored_n, meta, whole = await _store(b, "obj", data, dare.DareEncryptor(KEY), 65536)
        assert meta.stored_size == stored_n
        upload = await b.create_upload(BUCKET, "mp", ObjectMeta(bucket=BUCKET, key="mp"))
        async with await b.new_part_writer(upload, 3) as pw:
            pw.set_transform(dare.DareEncryptor(keys.derive_part_key(oek, 3)))
            async for c in chunks(data):
                await pw.write(c)
            part = await pw.commit("e", pw.accepted, {})
        assert part.stored_size == pw.written == dare.encrypted_size(len(data))
        done = await b.complete_upload(
            upload, [(3, "e")], ObjectMeta(bucket=BUCKET, key="mp", etag="x")
        )
        part_bytes = b"".join([c async for c in b.read(done, 0, done.stored_size)])
        return whole, part_bytes

    whole, part_bytes = _run(tmp_path, main)
    assert decrypt(KEY, whole) == data
    assert decrypt(keys.derive_part_key(oek, 3), part_bytes) == data
