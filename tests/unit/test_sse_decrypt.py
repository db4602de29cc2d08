"""sse.decrypt_range on the GET path: the decryptor is the read transform (one hop per chunk),
exact plaintext for whole objects and ranges, only touched packages read, tampering caught."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sealstore import sse
from sealstore.crypto import dare
from sealstore.storage import FSBackend, ObjectMeta

KEY = bytes(range(32))
PAYLOAD = dare.PAYLOAD_SIZE
PACKAGES_PER_BATCH = 16


async def _chunks(data: bytes, step: int = 65536) -> AsyncIterator[bytes]:
    for pos in range(0, len(data), step):
        yield data[pos : pos + step]


def _memory_reader(stored: bytes, chunk_size: int, log: list[tuple[int, int]]) -> sse.RangeReader:
    """A RangeReader over bytes in memory that records every (offset, length) asked for and
    runs the transform in a worker thread, as the storage backend does."""

    async def read(
        offset: int, length: int, transform: Callable[[bytes], bytes]
    ) -> AsyncIterator[bytes]:
        log.append((offset, length))
        end = offset + length
        for pos in range(offset, end, chunk_size):
            out = await asyncio.to_thread(transform, stored[pos : min(pos + chunk_size, end)])
            if out:
                yield out

    return read


def _collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    async def run() -> list[bytes]:
        return [c async for c in stream]

    return asyncio.run(run())


def test_one_read_of_the_whole_stored_range_and_one_transform_per_chunk() -> None:
    """The segment is asked for once; every chunk goes through the decryptor exactly once."""
    data = os.urandom(5 * PACKAGES_PER_BATCH * PAYLOAD + 12345)
    stored = dare.encrypt(KEY, data)
    log: list[tuple[int, int]] = []
    read = _memory_reader(stored, sse.DECRYPT_READ_SIZE, log)
    out = _collect(sse.decrypt_range(KEY, [sse.StoredPart(None, len(data))], 0, len(data), read))
    assert b"".join(out) == data
    assert log == [(0, len(stored))]
    assert len(out) == -(-len(stored) // sse.DECRYPT_READ_SIZE)


@pytest.mark.parametrize("chunk_size", [sse.DECRYPT_READ_SIZE, 16 * dare.PACKAGE_SIZE, 4096])
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
    read = _memory_reader(stored, chunk_size, log)
    part = sse.StoredPart(None, len(data))
    out = b"".join(_collect(sse.decrypt_range(KEY, [part], offset, length, read)))
    assert out == data[offset : offset + length]
    [(stored_offset, stored_length)] = log
    first_pkg, last_pkg = offset // PAYLOAD, (offset + length - 1) // PAYLOAD
    assert stored_offset == first_pkg * dare.PACKAGE_SIZE
    assert stored_offset + stored_length == min(len(stored), (last_pkg + 1) * dare.PACKAGE_SIZE)


def test_tampered_package_in_a_later_batch_fails() -> None:
    data = os.urandom(3 * PACKAGES_PER_BATCH * PAYLOAD)
    stored = bytearray(dare.encrypt(KEY, data))
    stored[2 * sse.DECRYPT_READ_SIZE + 100] ^= 1
    read = _memory_reader(bytes(stored), sse.DECRYPT_READ_SIZE, [])
    with pytest.raises(dare.DareError, match="authentication failed"):
        _collect(sse.decrypt_range(KEY, [sse.StoredPart(None, len(data))], 0, len(data), read))


def test_real_storage_read_with_batch_chunks_round_trips(tmp_path: Path) -> None:
    """Through the real FS backend, as the GET handler reads it (chunk_size = read size, the
    decryptor as read transform): decryption runs in storage threads, never on the loop."""
    data = os.urandom(2 * PACKAGES_PER_BATCH * PAYLOAD + 777)

    async def main() -> tuple[bytes, bytes]:
        async with FSBackend(tmp_path) as b:
            await b.create_bucket("bkt")
            async with await b.new_writer("bkt", "obj") as w:
                await sse.encrypt_stream(KEY, _chunks(data), w)
                meta = await w.commit(ObjectMeta(bucket="bkt", key="obj", size=len(data)))

            def read(off: int, n: int, transform: Callable[[bytes], bytes]) -> AsyncIterator[bytes]:
                def in_thread(data: bytes) -> bytes:
                    threads.add(threading.current_thread().name)
                    return transform(data)

                return b.read(meta, off, n, chunk_size=sse.DECRYPT_READ_SIZE, transform=in_thread)

            parts = [sse.StoredPart(None, len(data))]
            whole = [c async for c in sse.decrypt_range(KEY, parts, 0, len(data), read)]
            tail = [c async for c in sse.decrypt_range(KEY, parts, len(data) - 900, 900, read)]
            return b"".join(whole), b"".join(tail)

    threads: set[str] = set()
    whole, tail = asyncio.run(main())
    assert threads and threading.main_thread().name not in threads  # AES never on the loop
    assert whole == data
    assert tail == data[-900:]
