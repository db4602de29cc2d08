"""The storage contract: what the object service may ask of any storage backend.

Everything above `storage/` (the object service in `sealstore.objects`, the admin tools)
sees a backend only through these Protocols; `storage/base.py` holds the data types, the
errors and the name rules they share. A second backend (the S3/SeaweedFS one) implements
the same Protocols and passes the same contract suite (`tests/contract/`), without any
change to the service or the HTTP layer.

Why a *transform* is part of the contract: encryption and decryption are CPU work that must
not run on the event loop, and the cheapest place to run them is in the same worker-thread
call that moves the bytes to or from the medium (one thread hop per batch, the batch still
hot in that thread's cache). So the service does not batch or hop threads itself: it hands
the backend a transform (a DARE encryptor or decryptor) and the backend decides where and in
which batch sizes it runs it. A backend must call a transform's methods in stream order,
never concurrently, and never on the event loop thread for more than trivial amounts.

Durability promise of every implementation: a successful ``commit`` (object or part) means
the data and its metadata survive a crash of the process or the machine; before it, nothing
of the new object is visible to ``head``, ``read`` or ``list_objects``; a replaced object is
either entirely the old or entirely the new one.

Versioning (S3's model; `docs/architecture.md`, "Versioning"): every version is an object of
its own (its own data, metadata and sealed key), named by ``ObjectMeta.version_id`` (None:
the ``null`` version). The caller chooses a new version's id before the data is published
(the object service binds it into the encrypted object's authenticated layout), so
``commit`` and ``complete_upload`` take it from ``meta.version_id``: None replaces the key's
null version, an id (fresh from `base.new_version_id`) adds a version; either becomes the
current one. Which of the two a write makes follows the bucket's state, which a writer
reports (``ObjectWriter.versioning``, read with its bucket check at no extra cost). Deletes
follow the state at the moment they commit. Publishing a version, writing a delete marker
and removing a version are each atomic and durable like ``commit``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from sealstore.storage.base import (
    BucketInfo,
    DeleteResult,
    ListResult,
    ObjectMeta,
    PartMeta,
    UploadMeta,
    Versioning,
    VersionList,
)
from sealstore.storage.conditions import WriteCondition

Buffer = bytes | bytearray | memoryview

# Read side: applied to each chunk of stored bytes, in order; returns the bytes to yield
# (an empty result is skipped). A DARE decryptor's ``update`` is one.
ReadTransform = Callable[[bytes], Buffer]


@runtime_checkable
class WriteTransform(Protocol):
    """Turns the bytes given to a writer into the bytes stored (a DARE encryptor is one).

    ``update`` may hold data back (DARE emits whole packages only); ``finalize`` returns the
    rest and is called exactly once, when the writer commits.
    """

    def update(self, data: Buffer) -> Buffer: ...

    def finalize(self) -> Buffer: ...


class _Writer(Protocol):
    """What object and part writers share: streaming, abort, and the byte counters."""

    @property
    def accepted(self) -> int:
        """Bytes given to ``write`` so far (the plaintext size when a transform is set)."""
        ...

    @property
    def written(self) -> int:
        """Stored bytes produced so far (after the transform); final after ``commit``."""
        ...

    def set_transform(self, transform: WriteTransform) -> None:
        """Pass every byte written through ``transform`` (call before the first ``write``)."""
        ...

    async def write(self, data: bytes) -> None:
        """Append ``data``; the backend batches and moves it off the loop as it sees fit."""
        ...

    async def abort(self) -> None:
        """Discard everything written; idempotent, a no-op after ``commit``."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Abort unless committed."""
        ...


@runtime_checkable
class ObjectWriter(_Writer, Protocol):
    """Streams one new object; nothing is visible until ``commit``."""

    @property
    def versioning(self) -> Versioning:
        """The bucket's versioning state when the writer was made: Enabled means the caller
        gives ``commit`` a fresh version id, otherwise None (the null version)."""
        ...

    async def commit(
        self, meta: ObjectMeta, *, condition: WriteCondition | None = None
    ) -> ObjectMeta:
        """Publish atomically as the key's current version: ``meta.version_id`` None
        replaces the null version (the whole object of an unversioned key), an id adds a
        version and keeps the older ones.

        Takes ``size, etag, content_type, user_meta, headers, internal, version_id`` from
        ``meta`` and returns the published metadata with ``stored_size``, ``last_modified`` and the
        backend's locator (``files``) filled in. Raises ``NoSuchBucket`` if the bucket was
        deleted meanwhile. With ``condition``, it is checked against the key's current object
        in the publishing transaction: ``ObjectChanged`` (nothing published) unless it holds,
        so of two racing commits with ``WriteCondition(absent=True)`` only one can win.
        """
        ...


@runtime_checkable
class PartWriter(_Writer, Protocol):
    """Streams one part of a multipart upload; ``commit`` registers it."""

    async def commit(self, etag: str, size: int, internal: dict[str, str]) -> PartMeta:
        """Register the part, replacing an earlier part with its number; raises
        ``NoSuchUpload`` if the upload was completed or aborted meanwhile."""
        ...


@runtime_checkable
class Store(Protocol):
    """A storage backend: buckets, objects and multipart uploads.

    Ordering and paging rules (UTF-8 byte order of keys, markers, common prefixes, upload
    order) are those documented in `docs/architecture.md` and checked by the contract suite.
    """

    async def open(self) -> None:
        """Prepare for use (create/check the medium, sweep leftovers of a crash)."""
        ...

    async def close(self) -> None: ...

    # -- buckets -----------------------------------------------------------------------

    async def create_bucket(self, name: str) -> None: ...

    async def delete_bucket(self, name: str) -> None:
        """``BucketNotEmpty`` while objects, versions or delete markers remain; pending
        uploads go with the bucket."""
        ...

    async def bucket_exists(self, name: str) -> bool: ...

    async def list_buckets(self) -> list[BucketInfo]: ...

    async def get_bucket_config(self, bucket: str, kind: str) -> str | None: ...

    async def put_bucket_config(self, bucket: str, kind: str, value: str | None) -> None:
        """Store (or with ``None`` remove) one bucket configuration document."""
        ...

    async def get_versioning(self, bucket: str) -> Versioning:
        """The bucket's versioning state (UNVERSIONED until first configured)."""
        ...

    async def put_versioning(self, bucket: str, state: Versioning) -> None:
        """Enable or suspend versioning (``InvalidArgument`` for UNVERSIONED: S3 cannot go
        back); existing versions stay as they are."""
        ...

    # -- objects -----------------------------------------------------------------------

    async def new_writer(self, bucket: str, key: str) -> ObjectWriter:
        """Validate the bucket and key and start a new object (nothing visible yet)."""
        ...

    async def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectMeta:
        """The current version's metadata: ``NoSuchKey``, or its subclass
        ``DeleteMarkerCurrent`` when the latest version is a delete marker. With
        ``version_id`` (``"null"`` for the null version) that version, a delete marker
        included (``is_delete_marker``), or ``NoSuchVersion``."""
        ...

    def read(
        self,
        meta: ObjectMeta,
        offset: int = 0,
        length: int | None = None,
        *,
        transform: ReadTransform | None = None,
    ) -> AsyncIterator[bytes]:
        """Stream stored bytes ``[offset, offset+length)`` of the object ``meta`` describes
        (offsets over the whole stored object, spanning parts), each chunk passed through
        ``transform`` when given. Once the first chunk is produced the bytes are those of
        ``meta`` even if the object is replaced meanwhile; ``NoSuchKey`` if its data is
        already gone."""
        ...

    async def update_internal(self, meta: ObjectMeta, internal: dict[str, str]) -> ObjectMeta:
        """Replace only the ``internal`` entries of the object version ``meta`` describes (as
        returned by ``head``, ``list_objects`` or ``list_versions``, current or not); the data
        and every other field stay as they are.

        Why: re-wrapping or re-sealing an object key (transit key rotation, KMS migration)
        changes metadata only, and must neither rewrite data nor race a client's PUT. So the
        update is a compare-and-swap: ``ObjectChanged`` (nothing written) when the object at
        that key is no longer the one ``meta`` describes (replaced, deleted, or its internal
        entries changed meanwhile). Atomic and durable like ``commit``: readers see all old
        or all new entries, and a successful return survives a crash.
        """
        ...

    async def delete(self, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
        """S3 DeleteObject. Without ``version_id``: unversioned bucket, remove the object;
        Enabled, add a delete marker with a fresh id; Suspended, add a null delete marker
        that replaces the null version. With it (``"null"`` included): remove exactly that
        version or marker for good, the next newest becoming current. Idempotent (an absent
        key or version is no error, S3 semantics), but ``NoSuchBucket`` when the bucket does
        not exist."""
        ...

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
        """One page of every version and delete marker: keys in UTF-8 byte order, each
        key's versions newest first, ``is_latest`` set; common prefixes as ``list_objects``
        makes them. Paging continues after ``key_marker`` (with ``version_id_marker``: after
        that version of that key)."""
        ...

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        start_after: str = "",
        delimiter: str = "",
        max_keys: int = 1000,
    ) -> ListResult:
        """Current versions only (no delete markers, no noncurrent versions)."""
        ...

    # -- multipart ---------------------------------------------------------------------

    async def create_upload(self, bucket: str, key: str, template: ObjectMeta) -> UploadMeta:
        """Start an upload; ``template`` is the final object's metadata (no data fields)."""
        ...

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadMeta: ...

    async def new_part_writer(self, upload: UploadMeta, part_number: int) -> PartWriter: ...

    async def list_parts(
        self, upload: UploadMeta, *, marker: int = 0, max_parts: int = 1000
    ) -> tuple[list[PartMeta], bool]: ...

    async def list_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> tuple[list[UploadMeta], bool]: ...

    async def complete_upload(
        self,
        upload: UploadMeta,
        parts: list[tuple[int, str]],
        meta: ObjectMeta,
        *,
        condition: WriteCondition | None = None,
    ) -> ObjectMeta:
        """Publish the upload as one object made of the listed ``(number, etag)`` parts, as a
        version like ``ObjectWriter.commit`` (``meta.version_id``); ``condition`` as for
        ``ObjectWriter.commit`` (``ObjectChanged``: the upload stays)."""
        ...

    async def update_upload_internal(
        self, upload: UploadMeta, internal: dict[str, str]
    ) -> UploadMeta:
        """``update_internal`` for a pending multipart upload's template (its sealed key):
        ``ObjectChanged`` unless the upload still exists with ``upload.meta.internal``."""
        ...

    async def abort_upload(self, upload: UploadMeta) -> None: ...
