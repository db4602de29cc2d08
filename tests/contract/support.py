"""Helpers shared by the contract tests: deterministic content, put/read through the Protocol
API only, and a recording wrapper around a real write transform."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import AsyncIterator

from sealstore.storage.base import ObjectMeta, PartMeta, UploadMeta
from sealstore.storage.contract import Buffer, ReadTransform, Store, WriteTransform

KIB = 1024
MIB = 1024 * KIB


def content(seed: object, size: int) -> bytes:
    """Deterministic pseudo-random bytes: a parent process can recompute a child's data."""
    return random.Random(str(seed)).randbytes(size)


def md5hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def drain(chunks: AsyncIterator[Buffer]) -> bytes:
    """Join an async byte stream."""
    return b"".join([bytes(c) async for c in chunks])


async def read_all(
    store: Store,
    meta: ObjectMeta,
    offset: int = 0,
    length: int | None = None,
    transform: ReadTransform | None = None,
) -> bytes:
    return await drain(store.read(meta, offset, length, transform=transform))


async def put(
    store: Store,
    bucket: str,
    key: str,
    data: bytes,
    *,
    step: int = 7001,
    transform: WriteTransform | None = None,
    **fields: object,
) -> ObjectMeta:
    """Write ``data`` in uneven ``step``-byte pieces and commit it with ``fields``."""
    meta = ObjectMeta(bucket, key, size=len(data), etag=md5hex(data), **fields)  # type: ignore[arg-type]
    async with await store.new_writer(bucket, key) as writer:
        if transform is not None:
            writer.set_transform(transform)
        for pos in range(0, len(data), step):
            await writer.write(data[pos : pos + step])
        return await writer.commit(meta)


async def put_part(
    store: Store,
    upload: UploadMeta,
    number: int,
    data: bytes,
    *,
    step: int = 9973,
    transform: WriteTransform | None = None,
    internal: dict[str, str] | None = None,
) -> PartMeta:
    async with await store.new_part_writer(upload, number) as writer:
        if transform is not None:
            writer.set_transform(transform)
        for pos in range(0, len(data), step):
            await writer.write(data[pos : pos + step])
        return await writer.commit(md5hex(data), len(data), dict(internal or {}))


async def put_multipart(
    store: Store, bucket: str, key: str, parts: list[bytes], **fields: object
) -> ObjectMeta:
    """Upload ``parts`` as parts 1..n and complete them into one object."""
    upload = await store.create_upload(bucket, key, ObjectMeta(bucket, key))
    chosen = []
    for number, data in enumerate(parts, 1):
        part = await put_part(store, upload, number, data)
        chosen.append((number, part.etag))
    return await store.complete_upload(upload, chosen, ObjectMeta(bucket, key, **fields))  # type: ignore[arg-type]


class RecordingTransform:
    """A real `WriteTransform` (delegating to e.g. a DARE encryptor) that records how the
    backend drives it: call order, finalize count, overlap and which thread ran each call."""

    def __init__(self, inner: WriteTransform, loop_thread: int) -> None:
        self.inner = inner
        self.loop_thread = loop_thread
        self.fed = bytearray()  # every byte given to update, in call order
        self.produced = bytearray()  # every byte update/finalize returned, in order
        self.finalized = 0
        self.updates_after_finalize = 0
        self.overlaps = 0
        self.bytes_on_loop = 0
        self._busy = threading.Lock()

    def _enter(self) -> None:
        if not self._busy.acquire(blocking=False):
            self.overlaps += 1
            self._busy.acquire()

    def update(self, data: Buffer) -> Buffer:
        self._enter()
        try:
            if self.finalized:
                self.updates_after_finalize += 1
            if threading.get_ident() == self.loop_thread:
                self.bytes_on_loop += len(data)
            self.fed += data
            out = self.inner.update(data)
            self.produced += out
            return out
        finally:
            self._busy.release()

    def finalize(self) -> Buffer:
        self._enter()
        try:
            self.finalized += 1
            out = self.inner.finalize()
            self.produced += out
            return out
        finally:
            self._busy.release()
