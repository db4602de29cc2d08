"""FSBackend: durable local-disk storage (SQLite index + random-named data files).

The event loop never touches the disk: every index query and file operation runs on a
dedicated thread pool, so a slow fsync cannot stall request handling. Crash safety comes from
the order of operations (see `files.py` and `index.py`): data is fsynced and renamed into
place before one SQLite transaction publishes it, so a crash leaves the old object or the new
one; leftovers are swept by `open()`. Versions (`index_versions.py`) follow the same order.

Readers open every data file of an object before yielding the first byte (an open descriptor
keeps the data readable through a concurrent replace or delete); replaced files are kept for
`gc_grace` seconds, so metadata fetched by `head()` just before a replace still reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self, TypeVar

from sealstore.storage.base import (
    MAX_PART_NUMBER,
    MIN_PART_SIZE,
    BucketInfo,
    DeleteResult,
    InvalidArgument,
    ListResult,
    ObjectMeta,
    PartMeta,
    StorageError,
    UploadMeta,
    Versioning,
    VersionList,
    encode_key,
    validate_bucket_name,
)
from sealstore.storage.conditions import WriteCondition
from sealstore.storage.contract import ReadTransform
from sealstore.storage.files import BlobWriter, Layout, SweepReport, sweep
from sealstore.storage.fs_reader import READ_SIZE, read_stored
from sealstore.storage.fs_writers import FSObjectWriter, FSPartWriter
from sealstore.storage.index import Index, reap_garbage
from sealstore.storage.index_rows import template_from_json, template_to_json
from sealstore.storage.listing import objects_of_bucket
from sealstore.storage.version_listing import versions_of_bucket

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_GC_GRACE_S = 60.0


class FSBackend:
    """Storage backend on a local directory; safe to share between processes."""

    def __init__(
        self,
        data_dir: Path,
        *,
        gc_grace: float = DEFAULT_GC_GRACE_S,
        threads: int = 8,
        min_part_size: int = MIN_PART_SIZE,
        read_size: int = READ_SIZE,
    ) -> None:
        if read_size <= 0:
            raise ValueError("read_size must be positive")
        self.data_dir = Path(data_dir)
        self.read_size = read_size
        self.layout = Layout(self.data_dir)
        self.gc_grace = gc_grace
        self.min_part_size = min_part_size
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._index = Index(self.layout.index)
        self._next_reap = 0.0
        self._reaper: asyncio.Task[None] | None = None
        self.sweep_report = SweepReport()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise StorageError("storage backend is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _maybe_reap(self) -> None:
        """Unlink garbage past its grace period; cheap enough to call after every change."""
        now = time.time()
        if now < self._next_reap:
            return
        self._next_reap = now + min(self.gc_grace / 4, 5.0)
        reap_garbage(self._index, self.layout, now - self.gc_grace)

    def _after_change(self, fn: Callable[..., T], *args: object) -> Callable[[], T]:
        def run() -> T:
            result = fn(*args)
            self._maybe_reap()
            return result

        return run

    async def _change(self, fn: Callable[..., T], *args: object) -> T:
        return await self._run(self._after_change(fn, *args))

    async def open(self) -> None:
        """Create the layout, make the index, reap expired garbage and sweep leftovers."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(
            max_workers=self._threads, thread_name_prefix="sealstore-storage"
        )
        try:
            await self._run(self._open_blocking)
        except BaseException:
            await self.close()
            raise
        self._reaper = asyncio.create_task(self._reap_periodically(), name="sealstore-reaper")

    async def _reap_periodically(self) -> None:
        """Remove expired garbage even when no further change arrives to trigger it."""
        interval = max(self.gc_grace / 2, 1.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._run(self._maybe_reap)
            except StorageError:
                return  # backend closed
            except Exception:  # a transient disk or lock error must not end reaping
                log.exception("storage garbage reaping failed; will retry")

    def _prepare_blocking(self) -> None:
        """Create the layout and the index schema; any failure is one StorageError."""
        try:
            self.layout.create()
            self._index.initialize()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot use data directory {self.data_dir}: {exc}") from exc

    @classmethod
    def preflight(cls, data_dir: Path) -> None:
        """Check (blocking, no event loop) that ``data_dir`` can hold a store, then let go.

        The server runs this once in the parent process before it forks workers, so an
        unusable data directory is reported once, as one clear line, instead of by every
        worker from inside the event loop. It creates the layout and index but skips the
        sweep (``open()`` in each worker does that) and leaves no connection or thread
        behind, so forking afterwards is safe.
        """
        backend = cls(data_dir)
        try:
            backend._prepare_blocking()
        finally:
            backend._index.close()

    def _open_blocking(self) -> None:
        self._prepare_blocking()
        self._next_reap = 0.0
        self._maybe_reap()
        self.sweep_report = sweep(
            self.layout,
            self._index.known_file_ids,
            self._index.live_file_ids,
            self._index.file_known,
        )

    async def close(self) -> None:
        """Stop the worker threads and close the index connections."""
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(executor.shutdown, wait=True)
        )
        self._index.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def create_bucket(self, name: str) -> None:
        validate_bucket_name(name)
        await self._run(self._index.create_bucket, name, time.time())

    async def delete_bucket(self, name: str) -> None:
        await self._change(self._index.delete_bucket, name, time.time())

    async def bucket_exists(self, name: str) -> bool:
        return await self._run(self._index.bucket_exists, name)

    async def list_buckets(self) -> list[BucketInfo]:
        return await self._run(self._index.list_buckets)

    async def get_bucket_config(self, bucket: str, kind: str) -> str | None:
        return await self._run(self._index.get_bucket_config, bucket, kind)

    async def put_bucket_config(self, bucket: str, kind: str, value: str | None) -> None:
        await self._run(self._index.put_bucket_config, bucket, kind, value)

    async def get_versioning(self, bucket: str) -> Versioning:
        return await self._run(self._index.versioning, bucket)

    async def put_versioning(self, bucket: str, state: Versioning) -> None:
        await self._run(self._index.set_versioning, bucket, state)

    async def new_writer(self, bucket: str, key: str) -> FSObjectWriter:
        raw = encode_key(key)
        state, blob = await self._run(self._new_blob, bucket)
        return FSObjectWriter(
            self._run, self._change, self._index, blob, bucket, key, raw, versioning=state
        )

    def _new_blob(self, bucket: str) -> tuple[Versioning, BlobWriter]:
        """Check the bucket (learning its versioning state in the same query) and create the
        temp file, in one thread hop."""
        state = self._index.versioning(bucket)
        return state, BlobWriter(self.layout)

    async def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectMeta:
        return await self._run(self._index.head, bucket, encode_key(key), version_id)

    def read(
        self,
        meta: ObjectMeta,
        offset: int = 0,
        length: int | None = None,
        *,
        transform: ReadTransform | None = None,
    ) -> AsyncIterator[bytes]:
        """Stream stored bytes [offset, offset+length) across the object's data files, in
        chunks of ``read_size`` (see READ_SIZE).

        ``transform`` (e.g. a DARE decryptor's ``update``) runs on each chunk in the same
        storage thread call as its read and its non-empty results are yielded instead: one
        thread hop per chunk for an encrypted GET rather than one to read and one to decrypt.

        Nothing is opened until the first iteration; then all touched files are opened at
        once, so the bytes stay those of `meta` even if the object is replaced meanwhile.
        Raises NoSuchKey if the data vanished before it could be opened.
        """
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        return read_stored(self._run, self.layout, meta, offset, length, self.read_size, transform)

    async def update_internal(self, meta: ObjectMeta, internal: dict[str, str]) -> ObjectMeta:
        """Metadata-only compare-and-swap of one index row (no data file is touched)."""
        return await self._run(self._index.update_internal, meta, encode_key(meta.key), internal)

    async def delete(self, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
        raw, now = encode_key(key), time.time()
        return await self._change(self._index.delete_object, bucket, raw, version_id, now)

    async def list_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        delimiter: str = "",
        max_keys: int = 1000,
    ) -> VersionList:
        return await self._run(
            functools.partial(
                versions_of_bucket,
                self._index,
                bucket,
                prefix=prefix,
                key_marker=key_marker,
                version_id_marker=version_id_marker,
                delimiter=delimiter,
                max_keys=max_keys,
            )
        )

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        start_after: str = "",
        delimiter: str = "",
        max_keys: int = 1000,
    ) -> ListResult:
        return await self._run(
            functools.partial(
                objects_of_bucket,
                self._index,
                bucket,
                prefix=prefix,
                start_after=start_after,
                delimiter=delimiter,
                max_keys=max_keys,
            )
        )

    async def create_upload(self, bucket: str, key: str, template: ObjectMeta) -> UploadMeta:
        raw = encode_key(key)
        now = time.time()
        template = template_from_json(bucket, key, template_to_json(template))  # a clean copy
        # Time-ordered ids make "key, upload id" order match initiation order.
        upload_id = f"{time.time_ns():016x}{secrets.token_hex(12)}"
        upload = UploadMeta(
            upload_id=upload_id, bucket=bucket, key=key, initiated=now, meta=template
        )
        await self._run(self._index.create_upload, upload, raw)
        return upload

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadMeta:
        return await self._run(self._index.get_upload, bucket, encode_key(key), upload_id)

    async def new_part_writer(self, upload: UploadMeta, part_number: int) -> FSPartWriter:
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise InvalidArgument(f"part number must be 1..{MAX_PART_NUMBER}")
        raw = encode_key(upload.key)

        def new_blob() -> BlobWriter:
            self._index.get_upload(upload.bucket, raw, upload.upload_id)
            return BlobWriter(self.layout)

        blob = await self._run(new_blob)
        return FSPartWriter(self._run, self._change, self._index, blob, upload, part_number)

    async def list_parts(
        self, upload: UploadMeta, *, marker: int = 0, max_parts: int = 1000
    ) -> tuple[list[PartMeta], bool]:
        if max_parts <= 0:
            return [], False
        parts = await self._run(self._index.list_parts, upload.upload_id, marker, max_parts + 1)
        return parts[:max_parts], len(parts) > max_parts

    async def list_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> tuple[list[UploadMeta], bool]:
        prefix_raw, marker_raw = prefix.encode("utf-8"), key_marker.encode("utf-8")
        return await self._run(
            self._index.list_uploads_page,
            bucket,
            prefix_raw,
            marker_raw,
            upload_id_marker,
            max_uploads,
        )

    async def complete_upload(
        self,
        upload: UploadMeta,
        parts: list[tuple[int, str]],
        meta: ObjectMeta,
        *,
        condition: WriteCondition | None = None,
    ) -> ObjectMeta:
        """Publish the upload as one object referencing its part files (no copy)."""
        raw = encode_key(upload.key)
        return await self._change(
            self._index.complete_upload,
            upload,
            list(parts),
            meta,
            raw,
            time.time(),
            self.min_part_size,
            condition,
        )

    async def update_upload_internal(
        self, upload: UploadMeta, internal: dict[str, str]
    ) -> UploadMeta:
        return await self._run(self._index.update_upload_internal, upload, internal)

    async def abort_upload(self, upload: UploadMeta) -> None:
        await self._change(self._index.abort_upload, upload.upload_id, time.time())
