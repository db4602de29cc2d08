"""The object service: the one place that combines the KMS, the DARE crypto and storage.

HTTP handlers translate requests into calls here and results back into responses; they
never see a key, a sealed entry or a storage thread. Data flows one way: a PUT's body goes
``put -> _fill -> ObjectWriter.write`` (the backend runs the DARE encryptor set with
``set_transform`` in its own thread hops) and a GET's plaintext comes back from
``open -> reading.decrypt_range -> Store.read(transform=decryptor)``.

Every KMS call happens before any byte is written or returned, so a KMS outage leaves no
partial object and becomes a clean error. Every encrypted object gets an authenticated layout
(`objects.layout`: size, ETag, part list bound under its key) when it is published, and every
read (GET, HEAD, copy source) checks it right after opening the key, before the first byte.
Bucket and listing operations involve no key and no crypto: handlers call the ``Store``
for those directly (``AppContext.storage``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from sealstore.crypto import dare, keys
from sealstore.crypto.keys import KeyMismatchError
from sealstore.kms.base import KMSDecryptError
from sealstore.objects import layout, sealing
from sealstore.objects import metadata as md
from sealstore.objects.choice import (
    BUCKET_ENCRYPTION_CONFIG,
    SSE_S3,
    SSEChoice,
    decide,
    read_stored_rule,
)
from sealstore.objects.errors import (
    BadDigest,
    InternalError,
    InvalidRequest,
    KMSNotConfigured,
    NotSupported,
)
from sealstore.objects.reading import plaintext
from sealstore.objects.streams import bounded as _bounded
from sealstore.objects.streams import hashed as _hashed
from sealstore.objects.versions import readable, version_for
from sealstore.storage.base import (
    DeleteResult,
    NoSuchBucket,
    ObjectMeta,
    PartMeta,
    UploadMeta,
    multipart_etag,
    validate_object_key,
)
from sealstore.storage.contract import ObjectWriter, PartWriter, Store

if TYPE_CHECKING:
    from sealstore.kms.base import KMS

EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()
COPY_SELF_ERROR = (
    "This copy request is illegal because it is trying to copy an object to itself without "
    "changing the object's metadata, storage class, website redirect location or encryption "
    "attributes."
)


class HashedBody(Protocol):
    """A request body: plaintext chunks, and the MD5 of all of them once iterated."""

    md5_hex: str | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True)
class NewObject:
    """What a client sets on a new object besides its data."""

    content_type: str
    user_meta: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


async def _fill(
    writer: ObjectWriter | PartWriter, key: bytes | None, source: AsyncIterable[bytes]
) -> dict[str, str]:
    """Stream ``source`` into ``writer``, as one DARE 2.0 stream under ``key`` when given;
    return the entry recording the stream's nonce ({} when unencrypted) for the layout.

    The backend batches the plaintext and runs the encryptor together with its file write
    (one worker-thread hop per ~1 MiB); AES never runs on the event loop.
    """
    encryptor = None if key is None else dare.DareEncryptor(key)
    if encryptor is not None:
        writer.set_transform(encryptor)
    async for chunk in source:
        if chunk:
            await writer.write(chunk)
    return {} if encryptor is None else layout.nonce_entry(encryptor.nonce)


def _require_supported(meta: ObjectMeta, message: str) -> None:
    """Refuse objects sealed with a kind this server cannot open (SSE-C)."""
    if md.sse_kind(meta.internal) == md.DOMAIN_SSE_C:
        raise NotSupported(message)


def _is_encrypted_upload(upload: UploadMeta) -> bool:
    internal = upload.meta.internal
    return md.META_ENCRYPTED_MULTIPART in internal or md.is_encrypted(internal)


def _inherited(src: ObjectMeta) -> SSEChoice | None:
    """The encryption a copy of ``src`` keeps when nothing else decides (stays at rest)."""
    kind = md.sse_kind(src.internal)
    if kind == md.DOMAIN_SSE_S3:
        return SSE_S3
    if kind == md.DOMAIN_SSE_KMS:
        return SSEChoice(
            md.DOMAIN_SSE_KMS,
            md.kms_key_id_of(src.internal),
            md.stored_client_context(src.internal) or None,
        )
    return None


class ObjectService:
    """Objects and multipart uploads over a ``Store``, encrypted under a ``KMS``."""

    def __init__(self, store: Store, kms: KMS | None, *, auto_encryption: bool) -> None:
        self.store = store
        self.kms = kms
        self.auto_encryption = auto_encryption

    async def decide(
        self, bucket: str, requested: SSEChoice | None, *, inherit: SSEChoice | None = None
    ) -> SSEChoice | None:
        """How a new object in ``bucket`` is encrypted (None = not at all); see
        `choice.decide` for the precedence. KMSNotConfigured if it must be and cannot be."""
        rule = None
        if requested is None and not self.auto_encryption:
            rule = read_stored_rule(
                await self.store.get_bucket_config(bucket, BUCKET_ENCRYPTION_CONFIG)
            )
        choice = decide(
            requested, auto_encryption=self.auto_encryption, bucket_rule=rule, inherit=inherit
        )
        if choice is not None and self.kms is None:
            raise KMSNotConfigured()
        return choice

    async def _new_key(
        self, bucket: str, key: str, choice: SSEChoice | None
    ) -> tuple[bytes | None, dict[str, str]]:
        """(OEK, sealed metadata) for a new object, or (None, {}) when it stays plaintext."""
        if choice is None:
            return None, {}
        if self.kms is None:
            raise KMSNotConfigured()
        return await sealing.new_object_key(self.kms, bucket, key, choice)

    async def _open_key(self, meta: ObjectMeta) -> bytes | None:
        """The OEK of a stored object or upload (one KMS decrypt), None when unencrypted."""
        if not md.is_encrypted(meta.internal):
            return None
        if self.kms is None:
            raise NotSupported("The object is encrypted but no KMS is configured on this server")
        try:
            return await sealing.open_object_key(self.kms, meta.internal, meta.bucket, meta.key)
        except (KeyMismatchError, KMSDecryptError):
            if not layout.legacy_empty(meta):
                raise
        # An empty legacy "dir/"-style object: nothing to substitute, the cleaned path may open.
        return await sealing.open_object_key(
            self.kms, meta.internal, meta.bucket, meta.key, exact=False
        )

    async def _open_verified(self, meta: ObjectMeta) -> bytes | None:
        """`_open_key`, then the layout check (ObjectIntegrityError before any byte)."""
        oek = await self._open_key(meta)
        layout.require_layout(meta, oek)
        return oek

    async def verify(self, meta: ObjectMeta) -> layout.LayoutStatus:
        """Open the key (KMS) and check the layout (HEAD; `admin verify`): raises like `open`,
        else the verdict (``legacy`` for objects without a layout binding)."""
        self.require_readable(meta)
        return layout.require_layout(meta, await self._open_key(meta))

    @staticmethod
    def _new_meta(
        bucket: str,
        key: str,
        attrs: NewObject,
        size: int,
        md5_hex: str,
        oek: bytes | None,
        internal: dict[str, str],
        version_id: str | None = None,
    ) -> ObjectMeta:
        if oek is not None:
            internal[md.META_SEALED_ETAG] = sealing.seal_etag_hex(oek, md5_hex)
            internal[md.META_ACTUAL_SIZE] = str(size)
        meta = ObjectMeta(
            bucket=bucket,
            key=key,
            size=size,
            etag=md5_hex,
            content_type=attrs.content_type,
            user_meta=dict(attrs.user_meta),
            headers=dict(attrs.headers),
            internal=internal,
            version_id=version_id,
        )
        if oek is not None:
            internal[layout.META_LAYOUT] = layout.seal_layout(meta, oek)
        return meta

    async def put(
        self,
        bucket: str,
        key: str,
        body: HashedBody,
        attrs: NewObject,
        *,
        sse: SSEChoice | None,
        content_md5: str | None = None,
    ) -> ObjectMeta:
        """Store ``body`` as ``bucket/key`` (encrypted as `decide` says); BadDigest (nothing
        stored) when its MD5 differs from ``content_md5``."""
        writer = await self.store.new_writer(bucket, key)  # validates bucket + key before KMS
        async with writer:
            oek, internal = await self._new_key(bucket, key, await self.decide(bucket, sse))
            internal.update(await _fill(writer, oek, body))
            md5_hex = body.md5_hex or EMPTY_MD5
            if content_md5 is not None and md5_hex != content_md5:
                raise BadDigest()
            vid = version_for(writer.versioning)
            meta = self._new_meta(bucket, key, attrs, writer.accepted, md5_hex, oek, internal, vid)
            return await writer.commit(meta)

    async def copy(
        self,
        src: ObjectMeta,
        bucket: str,
        key: str,
        *,
        attrs: NewObject | None,
        sse: SSEChoice | None,
    ) -> ObjectMeta:
        """Copy the object ``src`` (from `head`) to ``bucket/key``; ``attrs`` None keeps the
        source's (metadata directive COPY). Sealed keys are bound to their path, so an
        encrypted destination always gets a new key; data is decrypted and re-encrypted in
        one stream."""
        _require_supported(src, "The source uses SSE-C, which this server does not offer")
        src_encrypted = md.is_encrypted(src.internal)
        if (
            (src.bucket, src.key) == (bucket, key)
            and src.is_latest
            and attrs is None
            and sse is None
            and not (self.auto_encryption and not src_encrypted)
        ):
            raise InvalidRequest(COPY_SELF_ERROR)
        if attrs is None:
            attrs = NewObject(src.content_type, dict(src.user_meta), dict(src.headers))
        writer = await self.store.new_writer(bucket, key)
        async with writer:
            choice = await self.decide(bucket, sse, inherit=_inherited(src))
            src_oek = await self._open_verified(src)
            dst_oek, internal = await self._new_key(bucket, key, choice)
            md5 = hashlib.md5(usedforsecurity=False)
            source = plaintext(self.store, src, src_oek, 0, src.size)
            internal.update(await _fill(writer, dst_oek, _hashed(source, md5)))
            vid = version_for(writer.versioning)
            md5_hex = md5.hexdigest()
            meta = self._new_meta(
                bucket, key, attrs, writer.accepted, md5_hex, dst_oek, internal, vid
            )
            return await writer.commit(meta)

    async def head(
        self, bucket: str, key: str, version_id: str | None = None, *, copy_source: bool = False
    ) -> ObjectMeta:
        """The current object's (or the named version's) metadata, no KMS call; a delete
        marker is refused as S3 does (`versions.readable`)."""
        return readable(await self.store.head(bucket, key, version_id), copy_source=copy_source)

    @staticmethod
    def require_readable(meta: ObjectMeta) -> None:
        """NotSupported for objects this server cannot decrypt (SSE-C); HEAD checks it too."""
        _require_supported(meta, "The object uses SSE-C, which this server does not offer")

    async def open(self, meta: ObjectMeta, offset: int, length: int) -> AsyncIterator[bytes]:
        """Authenticated plaintext ``[offset, offset+length)`` of the object ``meta``.

        The key is opened (KMS) and the layout checked (ObjectIntegrityError) before this
        returns; decryption errors surface as DareError from the iterator, from its first
        chunk on when the first package is bad. The iterator holds each part's last batch
        back until that part's final package authenticated (`reading.decrypt_range`).
        """
        self.require_readable(meta)
        return plaintext(self.store, meta, await self._open_verified(meta), offset, length)

    async def delete(self, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
        """S3 DeleteObject (see `Store.delete`): an absent key or version is not an error."""
        return await self.store.delete(bucket, key, version_id)

    async def create_upload(
        self, bucket: str, key: str, attrs: NewObject, *, sse: SSEChoice | None
    ) -> UploadMeta:
        """Start an upload. An encrypted one seals ONE object key into the upload (§4.2);
        each part gets its own DARE stream under HMAC(OEK, part number)."""
        validate_object_key(key)
        if not await self.store.bucket_exists(bucket):
            raise NoSuchBucket(bucket)
        oek, internal = await self._new_key(bucket, key, await self.decide(bucket, sse))
        if oek is not None:
            internal[md.META_ENCRYPTED_MULTIPART] = ""
        template = ObjectMeta(
            bucket=bucket,
            key=key,
            content_type=attrs.content_type,
            user_meta=dict(attrs.user_meta),
            headers=dict(attrs.headers),
            internal=internal,
        )
        return await self.store.create_upload(bucket, key, template)

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadMeta:
        """The upload, or NoSuchUpload."""
        return await self.store.get_upload(bucket, key, upload_id)

    async def _part_key(self, upload: UploadMeta, number: int) -> bytes | None:
        """Part n's key: HMAC(OEK, n); the stream nonce is random per part (pitfall P3)."""
        oek = await self._open_key(upload.meta) if _is_encrypted_upload(upload) else None
        return None if oek is None else keys.derive_part_key(oek, number)

    async def put_part(
        self, upload: UploadMeta, number: int, body: HashedBody, *, max_size: int
    ) -> PartMeta:
        """Store part ``number`` from ``body`` (at most ``max_size`` bytes)."""
        part_key = await self._part_key(upload, number)
        writer = await self.store.new_part_writer(upload, number)
        async with writer:
            nonce = await _fill(writer, part_key, _bounded(body, max_size))
            if body.md5_hex is None:  # the body always computes it; never store a bad ETag
                raise InternalError("The part's MD5 was not computed")
            return await writer.commit(body.md5_hex, writer.accepted, nonce)

    async def copy_part(
        self, upload: UploadMeta, number: int, src: ObjectMeta, offset: int, length: int
    ) -> PartMeta:
        """Store part ``number`` from plaintext ``[offset, offset+length)`` of ``src``,
        decrypted under its own key and encrypted under the upload's part key."""
        _require_supported(src, "The source uses an encryption type this server lacks")
        src_oek = await self._open_verified(src)
        part_key = await self._part_key(upload, number)
        md5 = hashlib.md5(usedforsecurity=False)
        writer = await self.store.new_part_writer(upload, number)
        async with writer:
            source = plaintext(self.store, src, src_oek, offset, length)
            nonce = await _fill(writer, part_key, _hashed(source, md5))
            if writer.accepted != length:
                raise InternalError("The copy source ended early")
            return await writer.commit(md5.hexdigest(), writer.accepted, nonce)

    async def complete(self, upload: UploadMeta, parts: list[tuple[int, str]]) -> ObjectMeta:
        """Publish the upload as one object of the listed ``(number, etag)`` parts, with
        S3's ``md5(part md5s)-N`` ETag (InvalidPart for an ETag that is no MD5).

        An encrypted upload's object gets its layout entry (size, ETag, the chosen parts in
        order) from the stored parts (`layout.bind_completion`) before the store publishes.
        """
        etag = multipart_etag([e for _, e in parts])
        meta = replace(
            upload.meta, etag=etag, parts=[], files=[], internal=dict(upload.meta.internal)
        )
        meta.version_id = version_for(await self.store.get_versioning(upload.bucket))
        oek = await self._open_key(upload.meta) if _is_encrypted_upload(upload) else None
        if oek is not None:
            await layout.bind_completion(self.store, upload, parts, meta, oek)
        return await self.store.complete_upload(upload, list(parts), meta)

    async def abort(self, upload: UploadMeta) -> None:
        """Discard the upload and its parts."""
        await self.store.abort_upload(upload)
