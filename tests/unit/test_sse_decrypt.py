"""sse.decrypt_range on the GET path: package-aligned batches (no decryptor carry-over), exact
plaintext for whole objects and ranges, only touched packages read, tampering still caught."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sealstore import sse
from sealstore.crypto import dare
from sealstore.storage import FSBackend, ObjectMeta

KEY = bytes(range(32))
PAYLOAD = dare.PAYLOAD_SIZE
PACKAGES_PER_BATCH = sse.DECRYPT_BATCH_SIZE // dare.PACKAGE_SIZE


async def _chunks(data: bytes, step: int = 65536) -> AsyncIterator[bytes]:
    for pos in range(0, len(data), step):
        yield data[pos : pos + step]


def _memory_reader(stored: bytes, chunk_size: int, log: list[tuple[int, int]]) -> sse.RangeReader:
    """A RangeReader over bytes in memory that records every (offset, length) asked for."""

    async def read(offset: int, length: int) -> AsyncIterator[bytes]:
        log.append((offset, length))
        end = offset + length
        for pos in range(offset, end, chunk_size):
            yield stored[pos : min(pos + chunk_size, end)]

    return read


def _collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    async def run() -> list[bytes]:
        return [c async for c in stream]

    return asyncio.run(run())


def test_batch_is_a_whole_number_of_packages_near_one_mib() -> None:
    assert sse.DECRYPT_BATCH_SIZE % dare.PACKAGE_SIZE == 0
    assert abs(sse.DECRYPT_BATCH_SIZE - (1 << 20)) < dare.PACKAGE_SIZE


def test_aligned_reads_yield_whole_package_batches() -> None:
    """With batch-sized reads every yielded chunk (but the last) is exactly the plaintext of
    a full batch: nothing is carried over between batches. 1 MiB reads would not be."""
    data = os.urandom(5 * PACKAGES_PER_BATCH * PAYLOAD + 12345)
    stored = dare.encrypt(KEY, data)
    log: list[tuple[int, int]] = []
    read = _memory_reader(stored, sse.DECRYPT_BATCH_SIZE, log)
    out = _collect(sse.decrypt_range(KEY, [sse.StoredPart(None, len(data))], 0, len(data), read))
    assert b"".join(out) == data
    assert [len(c) for c in out[:-1]] == [PACKAGES_PER_BATCH * PAYLOAD] * 5
    assert len(out[-1]) == 12345
    assert log == [(0, len(stored))]


@pytest.mark.parametrize("chunk_size", [sse.DECRYPT_BATCH_SIZE, 1 << 20, 4096])
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
    stored[2 * sse.DECRYPT_BATCH_SIZE + 100] ^= 1
    read = _memory_reader(bytes(stored), sse.DECRYPT_BATCH_SIZE, [])
    with pytest.raises(dare.DareError, match="authentication failed"):
        _collect(sse.decrypt_range(KEY, [sse.StoredPart(None, len(data))], 0, len(data), read))


def test_real_storage_read_with_batch_chunks_round_trips(tmp_path: Path) -> None:
    """Through the real FS backend, as the GET handler reads it (chunk_size = batch)."""
    data = os.urandom(2 * PACKAGES_PER_BATCH * PAYLOAD + 777)

    async def main() -> tuple[bytes, bytes]:
        async with FSBackend(tmp_path) as b:
            await b.create_bucket("bkt")
            async with await b.new_writer("bkt", "obj") as w:
                await sse.encrypt_stream(KEY, _chunks(data), w)
                meta = await w.commit(ObjectMeta(bucket="bkt", key="obj", size=len(data)))

            def read(off: int, n: int) -> AsyncIterator[bytes]:
                return b.read(meta, off, n, chunk_size=sse.DECRYPT_BATCH_SIZE)

            parts = [sse.StoredPart(None, len(data))]
            whole = [c async for c in sse.decrypt_range(KEY, parts, 0, len(data), read)]
            tail = [c async for c in sse.decrypt_range(KEY, parts, len(data) - 900, 900, read)]
            assert [len(c) for c in whole] == [PACKAGES_PER_BATCH * PAYLOAD] * 2 + [777]
            return b"".join(whole), b"".join(tail)

    whole, tail = asyncio.run(main())
    assert whole == data
    assert tail == data[-900:]
