"""sse.encrypt_stream / encrypt_part: one DARE stream per object or part, one thread hop per
batch when the sink is a storage writer (write_via), identical output either way."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from sealstore import sse
from sealstore.crypto import dare, keys
from sealstore.storage import FSBackend, ObjectMeta

KEY = bytes(range(32))


async def chunks(data: bytes, step: int = 65536) -> AsyncIterator[bytes]:
    for pos in range(0, len(data), step):
        yield data[pos : pos + step]


def decrypt(key: bytes, stored: bytes) -> bytes:
    dec = dare.DareDecryptor(key)
    out = dec.update(stored)
    dec.finalize()
    return out


class CountingWriter:
    """Collects ciphertext through write_via and records where each produce ran."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.hops: list[str] = []

    async def write_via(self, produce: Callable[[], bytes | bytearray | memoryview]) -> None:
        def work() -> None:
            self.hops.append(threading.current_thread().name)
            self.data += produce()

        await asyncio.to_thread(work)


def test_writer_path_uses_one_hop_per_batch_off_the_loop() -> None:
    data = os.urandom(5 * sse.BATCH_SIZE + 12345)
    writer = CountingWriter()
    plain, stored = asyncio.run(sse.encrypt_stream(KEY, chunks(data), writer))
    assert plain == len(data)
    assert stored == len(writer.data) == dare.encrypted_size(len(data))
    assert len(writer.hops) == 6  # 5 full batches + the final one
    assert threading.main_thread().name not in writer.hops
    assert decrypt(KEY, bytes(writer.data)) == data


def test_sink_and_writer_paths_give_equivalent_streams() -> None:
    data = os.urandom(2 * sse.BATCH_SIZE + 7)
    got: list[bytes] = []

    async def sink(b: bytes) -> None:
        got.append(b)

    plain, stored = asyncio.run(sse.encrypt_stream(KEY, chunks(data, 10000), sink))
    assert (plain, stored) == (len(data), sum(map(len, got)))
    assert decrypt(KEY, b"".join(got)) == data


def test_empty_stream_stores_nothing() -> None:
    writer = CountingWriter()
    assert asyncio.run(sse.encrypt_stream(KEY, chunks(b""), writer)) == (0, 0)
    assert writer.data == bytearray()


def test_encrypt_into_real_object_and_part_writers(tmp_path: Path) -> None:
    data = os.urandom(3 * sse.BATCH_SIZE + 999)
    oek = os.urandom(32)

    async def main() -> tuple[bytes, bytes]:
        async with FSBackend(tmp_path) as b:
            await b.create_bucket("bkt")
            async with await b.new_writer("bkt", "obj") as w:
                _, stored = await sse.encrypt_stream(KEY, chunks(data), w)
                meta = await w.commit(ObjectMeta(bucket="bkt", key="obj", size=len(data)))
            assert meta.stored_size == stored
            whole = b"".join([c async for c in b.read(meta, 0, meta.stored_size)])
            upload = await b.create_upload("bkt", "mp", ObjectMeta(bucket="bkt", key="mp"))
            async with await b.new_part_writer(upload, 3) as pw:
                _, pstored = await sse.encrypt_part(oek, 3, chunks(data), pw)
                part = await pw.commit("e", len(data), {})
            assert part.stored_size == pstored
            done = await b.complete_upload(
                upload, [(3, "e")], ObjectMeta(bucket="bkt", key="mp", etag="x")
            )
            part_bytes = b"".join([c async for c in b.read(done, 0, done.stored_size)])
            return whole, part_bytes

    whole, part_bytes = asyncio.run(main())
    assert decrypt(KEY, whole) == data
    assert decrypt(keys.derive_part_key(oek, 3), part_bytes) == data
