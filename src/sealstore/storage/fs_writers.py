"""FSBackend's object and part writers: batching, the write transform, commit and abort.

Bytes given to ``write`` are gathered into ~1 MiB batches on the event loop (by copying into
one buffer); each batch crosses to a storage thread once, where the transform (a DARE
encryptor, set by the object service with ``set_transform``) runs on it and the result is
written to the data file in the same call: one thread hop per batch for encrypt + write,
the batch still hot in that thread's cache. ``commit`` runs the transform's ``finalize``,
the tail write, fsync, rename and the index transaction in one more hop.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from sealstore.storage.base import ObjectMeta, PartMeta, StorageError, UploadMeta, Versioning
from sealstore.storage.conditions import WriteCondition
from sealstore.storage.contract import Buffer, WriteTransform
from sealstore.storage.files import BlobWriter
from sealstore.storage.index import Index

# Bytes gathered per storage-thread hop: big enough to amortise the hop, small enough to keep
# memory per request bounded.
WRITE_BATCH = 1 << 20

Run = Callable[..., Awaitable[Any]]


class _BlobSession:
    """Shared batching, transform, commit and abort logic of object and part writers.

    ``run`` executes a blocking callable on the backend's storage threads; ``change`` does
    the same and then lets the backend reap garbage (used for the publishing hop).
    """

    def __init__(self, run: Run, change: Run, index: Index, blob: BlobWriter) -> None:
        self._run = run
        self._change = change
        self._index = index
        self._blob = blob
        self._buffer = bytearray()
        self._transform: WriteTransform | None = None
        self._accepted = 0
        self._done = False

    @property
    def accepted(self) -> int:
        """Bytes given to ``write`` so far (the plaintext size when a transform is set)."""
        return self._accepted

    @property
    def written(self) -> int:
        """Stored bytes so far: on disk, plus (without a transform) what is still buffered."""
        if self._transform is not None:
            return self._blob.size
        return self._blob.size + len(self._buffer)

    def set_transform(self, transform: WriteTransform) -> None:
        """Pass every byte written through ``transform`` (before the first ``write``)."""
        if self._accepted or self._done:
            raise StorageError("set_transform must come before the first write")
        self._transform = transform

    def _store(self, data: Buffer) -> None:
        """Storage thread: transform one batch and append the result to the data file."""
        out = data if self._transform is None else self._transform.update(data)
        if out:
            self._blob.write(out)

    async def write(self, data: bytes) -> None:
        """Append bytes; they reach the disk (transformed) in ~1 MiB batches."""
        if self._done:
            raise StorageError("writer already committed or aborted")
        if not data:
            return
        self._accepted += len(data)
        if not self._buffer and len(data) >= WRITE_BATCH:
            await self._run(self._store, data)
            return
        self._buffer += data
        if len(self._buffer) >= WRITE_BATCH:
            batch, self._buffer = self._buffer, bytearray()
            await self._run(self._store, batch)

    async def _finish_and_publish(self, register: Callable[[], None]) -> None:
        """One thread hop: transform and write the tail, finalize the transform, fsync +
        rename + fsync dir, then ``register`` (the index transaction) under the file's lock.
        Any failure removes the data file."""
        if self._done:
            raise StorageError("writer already committed or aborted")
        self._done = True
        tail, self._buffer = self._buffer, bytearray()
        blob, transform = self._blob, self._transform

        def work() -> None:
            if tail:
                self._store(tail)
            if transform is not None:
                final = transform.finalize()
                if final:
                    blob.write(final)
            blob.finish()
            blob.publish(register)

        try:
            await self._change(work)
        except BaseException:
            await self._run(blob.discard)  # no-op if the publish went through
            raise

    async def abort(self) -> None:
        """Throw the data away. Idempotent; a no-op after commit."""
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        await self._run(self._blob.discard)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            await self.abort()


class FSObjectWriter(_BlobSession):
    """Streams one object's stored bytes; `commit` makes it visible atomically."""

    def __init__(
        self,
        run: Run,
        change: Run,
        index: Index,
        blob: BlobWriter,
        bucket: str,
        key: str,
        raw: bytes,
        *,
        versioning: Versioning = Versioning.UNVERSIONED,
    ) -> None:
        super().__init__(run, change, index, blob)
        self.bucket = bucket
        self.key = key
        self._raw = raw
        self.versioning = versioning

    async def commit(
        self, meta: ObjectMeta, *, condition: WriteCondition | None = None
    ) -> ObjectMeta:
        """fsync + rename + publish; replaces any existing object (only if ``condition``
        holds, checked in the publishing transaction). Returns the stored meta (with
        stored_size, last_modified and the data locator filled in)."""
        blob, index = self._blob, self._index
        published = ObjectMeta(
            bucket=self.bucket,
            key=self.key,
            size=meta.size,
            stored_size=0,
            etag=meta.etag,
            last_modified=0.0,
            content_type=meta.content_type,
            user_meta=dict(meta.user_meta),
            headers=dict(meta.headers),
            internal=dict(meta.internal),
            parts=[],
            files=[blob.file_id],
            version_id=meta.version_id,
        )

        def register() -> None:
            published.stored_size = blob.size
            published.last_modified = time.time()
            index.publish_object(
                published, self._raw, blob.file_id, published.last_modified, condition
            )

        await self._finish_and_publish(register)
        return published


class FSPartWriter(_BlobSession):
    """Streams one part; `commit` registers it, replacing an earlier part with that number."""

    def __init__(
        self,
        run: Run,
        change: Run,
        index: Index,
        blob: BlobWriter,
        upload: UploadMeta,
        number: int,
    ) -> None:
        super().__init__(run, change, index, blob)
        self.upload = upload
        self.number = number

    async def commit(self, etag: str, size: int, internal: dict[str, str]) -> PartMeta:
        """fsync + rename + register the part (NoSuchUpload if it was completed/aborted)."""
        blob, index = self._blob, self._index
        part = PartMeta(
            number=self.number,
            etag=etag,
            size=size,
            stored_size=0,
            last_modified=0.0,
            internal=dict(internal),
        )

        def register() -> None:
            part.stored_size = blob.size
            part.last_modified = time.time()
            index.publish_part(self.upload.upload_id, part, blob.file_id, part.last_modified)

        await self._finish_and_publish(register)
        return part
