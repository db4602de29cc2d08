"""objects.reading.decrypt_range on the GET path: the decryptor is the storage read transform
(one hop per chunk), exact plaintext for whole objects and ranges, only touched packages read,
the final-package check only where a segment reaches its part's end, tampering caught."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from sealstore.crypto import dare
from sealstore.objects import reading
from sealstore.storage import FSBackend, ObjectMeta
from sealstore.storage.contract import ReadTransform, Store
from sealstore.storage.fs import READ_SIZE

KEY = bytes(range(32))
PAYLOAD = dare.PAYLOAD_SIZE
PACKAGES_PER_BATCH = 16


async def _chunks(data: bytes, step: int = 65536) -> AsyncIterator[bytes]:
    for pos in range(0, len(data), step):
        yield data[pos : pos + step]


class _MemoryRead:
    """The read side of the storage contract over bytes in memory: records every
    (offset, length) asked for and runs the transform in a worker thread, as a backend does."""

    def __init__(self, stored: bytes, chunk_size: int, log: list[tuple[int, int]]) -> None:
        self.stored, self.chunk_size, self.log = stored, chunk_size, log

    async def read(
        self,
        meta: ObjectMeta,
        offset: int = 0,
        length: int | None = None,
        *,
        transform: ReadTransform | None = None,
    ) -> AsyncIterator[bytes]:
        assert transform is not None and length is not None
        self.log.append((offset, length))
        end = offset + length
        for pos in range(offset, end, self.chunk_size):
            out = await asyncio.to_thread(
                transform, self.stored[pos : min(pos + self.chunk_size, end)]
            )
            if out:
                yield bytes(out)


def _decrypt(
    stored: bytes, size: int, offset: int, length: int, chunk: int, log: list
) -> list[bytes]:
    store = cast(Store, _MemoryRead(stored, chunk, log))
    meta = ObjectMeta(bucket="b", key="k", size=size)

    async def run() -> list[bytes]:
        return [c async for c in reading.decrypt_range(store, meta, KEY, offset, length)]

    return asyncio.run(run())


def test_one_read_of_the_whole_stored_range_and_one_transform_per_chunk() -> None:
    """The segment is asked for once; every chunk goes through the decryptor exactly once."""
    data = os.urandom(5 * PACKAGES_PER_BATCH * PAYLOAD + 12345)
    stored = dare.encrypt(KEY, data)
    log: list[tuple[int, int]] = []
    out = _decrypt(stored, len(data), 0, len(data), READ_SIZE, log)
    assert b"".join(out) == data
    assert log == [(0, len(stored))]
    assert len(out) == -(-len(stored) // READ_SIZE)


@pytest.mark.parametrize("chunk_size", [READ_SIZE, 16 * dare.PACKAGE_SIZE, 4096])
@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 1), (PAYLOAD - 1, 2), (3 * PAYLOAD, PAYLOAD), (1_000_003, 2_200_000), (0, 3_300_000)],
)
def test_ranges_are_exact_and_read_only_touched_packages(
    chunk_size: int, offset: int, length: int
) -> None:
    data = os.urandom(3_300_000)
    stored = dare.encrypt(KEY, data)
    log: list[tuple[int, int]] = []
    out = b"".join(_decrypt(stored, len(data), offset, length, chunk_size, log))
    assert out == data[offset : offset + length]
    [(stored_offset, stored_length)] = log
    first_pkg, last_pkg = offset // PAYLOAD, (offset + length - 1) // PAYLOAD
    assert stored_offset == first_pkg * dare.PACKAGE_SIZE
    assert stored_offset + stored_length == min(len(stored), (last_pkg + 1) * dare.PACKAGE_SIZE)


def test_tampered_package_in_a_later_batch_fails() -> None:
    data = os.urandom(3 * PACKAGES_PER_BATCH * PAYLOAD)
    stored = bytearray(dare.encrypt(KEY, data))
    stored[2 * READ_SIZE + 100] ^= 1
    with pytest.raises(dare.DareError, match="authentication failed"):
        _decrypt(bytes(stored), len(data), 0, len(data), READ_SIZE, [])


def test_truncated_stream_fails_only_where_the_range_reaches_the_end() -> None:
    """A range ending mid-part needs no final package; one reaching the part's end does."""
    data = os.urandom(4 * PAYLOAD)
    stored = dare.encrypt(KEY, data)
    cut = stored[: 3 * dare.PACKAGE_SIZE]  # the final package is gone
    assert b"".join(_decrypt(cut, len(data), 0, 2 * PAYLOAD, READ_SIZE, [])) == data[: 2 * PAYLOAD]
    with pytest.raises(dare.DareError):
        _decrypt(cut, len(data), 0, len(data), READ_SIZE, [])


def test_real_storage_read_with_batch_chunks_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real FS backend, as the GET path reads it (the decryptor as read
    transform): decryption runs in storage threads, never on the loop."""
    data = os.urandom(2 * PACKAGES_PER_BATCH * PAYLOAD + 777)
    threads: set[str] = set()
    real_update = dare.DareDecryptor.update

    def update(self: dare.DareDecryptor, chunk: bytes | bytearray | memoryview) -> bytes:
        threads.add(threading.current_thread().name)
        return real_update(self, chunk)

    monkeypatch.setattr(dare.DareDecryptor, "update", update)

    async def main() -> tuple[bytes, bytes]:
        async with FSBackend(tmp_path) as b:
            await b.create_bucket("bkt")
            async with await b.new_writer("bkt", "obj") as w:
                w.set_transform(dare.DareEncryptor(KEY))
                async for c in _chunks(data):
                    await w.write(c)
                meta = await w.commit(ObjectMeta(bucket="bkt", key="obj", size=len(data)))
            whole = [c async for c in reading.plaintext(b, meta, KEY, 0, len(data))]
            tail = [c async for c in reading.plaintext(b, meta, KEY, len(data) - 900, 900)]
            return b"".join(whole), b"".join(tail)

    whole, tail = asyncio.run(main())
    assert threads and threading.main_thread().name not in threads  # AES never on the loop
    assert whole == data
    assert tail == data[-900:]
