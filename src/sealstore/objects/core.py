"""The object service's single-object half: keys, layout, PUT, copy, HEAD, GET, DELETE.

`ObjectCore` holds everything one object needs: choosing the encryption, opening and sealing
object keys through the KMS, binding and checking the authenticated layout, and streaming
through the DARE crypto. `objects.service.ObjectService` adds multipart uploads on top; the
handlers only ever see that one class (see its module docstring for the data flow).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sealstore.crypto.keys import KeyMismatchError
from sealstore.kms.base import KMSDecryptError
from sealstore.objects import checksum as ck
from sealstore.objects import conditional, layout, sealing, ssec
from sealstore.objects import metadata as md
from sealstore.objects.choice import (
    BUCKET_ENCRYPTION_CONFIG,
    CustomerKey,
    SSEChoice,
    decide,
    inherited,
    read_stored_rule,
)
from sealstore.objects.errors import (
    BadDigest,
    InvalidRequest,
    KMSNotConfigured,
    NotSupported,
)
from sealstore.objects.reading import plaintext
from sealstore.objects.streams import HashedBody
from sealstore.objects.streams import fill as _fill
from sealstore.objects.tagging import stored_tagging, tag_entry
from sealstore.objects.versions import readable, version_for
from sealstore.storage.base import (
    DeleteResult,
    ObjectMeta,
    UploadMeta,
)
from sealstore.storage.contract import Store

if TYPE_CHECKING:
    from sealstore.kms.base import KMS

EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()
COPY_SELF_ERROR = (
    "This copy request is illegal because it is trying to copy an object to itself without "
    "changing the object's metadata, storage class, website redirect location or encryption "
    "attributes."
)


@dataclass(frozen=True)
class NewObject:
    """What a client sets on a new object besides its data."""

    content_type: str
    user_meta: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    tagging: str = ""  # canonical tag text (`objects.tagging.encode`), "" for none
    checksum: tuple[str, str] | None = None  # a multipart upload's (algorithm, type)


def is_encrypted_upload(upload: UploadMeta) -> bool:
    internal = upload.meta.internal
    return md.META_ENCRYPTED_MULTIPART in internal or md.is_encrypted(internal)


class ObjectCore:
    """Single objects over a ``Store``, encrypted under a ``KMS``; multipart uploads are
    `ObjectService`'s (this class's subclass)."""

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
        if choice is not None and choice.needs_kms and self.kms is None:
            raise KMSNotConfigured()
        return choice

    async def _new_key(
        self, bucket: str, key: str, choice: SSEChoice | None
    ) -> tuple[bytes | None, dict[str, str]]:
        """(OEK, sealed metadata) for a new object, or (None, {}) when it stays plaintext."""
        if choice is None:
            return None, {}
        if choice.customer is not None:
            return ssec.new_object_key(choice.customer, bucket, key)
        if self.kms is None:
            raise KMSNotConfigured()
        return await sealing.new_object_key(self.kms, bucket, key, choice)

    async def _open_key(
        self, meta: ObjectMeta, customer: CustomerKey | None = None
    ) -> bytes | None:
        """The OEK of a stored object or upload (one KMS decrypt, or the SSE-C ``customer``
        key, which `require_readable` made sure is there), None when unencrypted."""
        if not md.is_encrypted(meta.internal):
            return None
        if ssec.is_ssec(meta.internal):
            if customer is None:
                raise InvalidRequest(ssec.ENCRYPTED_OBJECT)
            return ssec.open_object_key(meta.internal, meta.bucket, meta.key, customer)
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

    async def _open_verified(
        self, meta: ObjectMeta, customer: CustomerKey | None = None
    ) -> bytes | None:
        """`_open_key`, then the layout check (ObjectIntegrityError before any byte)."""
        oek = await self._open_key(meta, customer)
        layout.require_layout(meta, oek)
        return oek

    async def verify(
        self, meta: ObjectMeta, customer: CustomerKey | None = None
    ) -> layout.LayoutStatus:
        """Open the key (KMS or SSE-C ``customer``) and check the layout (HEAD; `admin
        verify`): raises like `open`, else the verdict (``legacy``: no layout binding)."""
        self.require_readable(meta, customer)
        return layout.require_layout(meta, await self._open_key(meta, customer))

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
        etag = md5_hex
        if oek is not None:
            internal[md.META_SEALED_ETAG] = sealed_etag = sealing.seal_etag_hex(oek, md5_hex)
            internal[md.META_ACTUAL_SIZE] = str(size)
            if ssec.is_ssec(internal):  # as MinIO and AWS: no plaintext MD5 for SSE-C
                etag = sealed_etag[-32:]
        internal.update(tag_entry(attrs.tagging))
        meta = ObjectMeta(
            bucket=bucket,
            key=key,
            size=size,
            etag=etag,
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
        condition: conditional.Condition = None,
    ) -> ObjectMeta:
        """Store ``body`` as ``bucket/key`` (encrypted as `decide` says); BadDigest (nothing
        stored) when its MD5 differs from ``content_md5``; ``condition``: `conditional`."""
        writer = await self.store.new_writer(bucket, key)  # validates bucket + key before KMS
        async with writer:
            await conditional.precheck(self.store, bucket, key, condition)
            oek, internal = await self._new_key(bucket, key, await self.decide(bucket, sse))
            internal.update(await _fill(writer, oek, body) | ck.body_entries(body))
            md5_hex = body.md5_hex or EMPTY_MD5
            if content_md5 is not None and md5_hex != content_md5:
                raise BadDigest()
            vid = version_for(writer.versioning)
            meta = self._new_meta(bucket, key, attrs, writer.accepted, md5_hex, oek, internal, vid)
            return await writer.commit(meta, condition=condition)

    async def copy(
        self,
        src: ObjectMeta,
        bucket: str,
        key: str,
        *,
        attrs: NewObject | None,
        sse: SSEChoice | None,
        src_customer: CustomerKey | None = None,
        checksum: str | None = None,
    ) -> ObjectMeta:
        """Copy ``src`` (from `head`) to ``bucket/key``; ``attrs`` None keeps its attributes
        and tags (directives COPY). Keys are bound to their path, so an encrypted destination
        always gets a new key; data is decrypted and re-encrypted in one stream, hashed for
        the ETag and the checksum (`ck.CopyTap`); SSE-C key rotation: onto itself, new key."""
        self.require_readable(src, src_customer)
        src_encrypted = md.is_encrypted(src.internal)
        if (
            (src.bucket, src.key) == (bucket, key)
            and src.is_latest
            and attrs is None
            and sse is None
            and checksum is None  # S3 allows a self-copy that only changes the checksum
            and not (self.auto_encryption and not src_encrypted)
            and not ssec.is_ssec(src.internal)  # the copy drops the customer key: a change
        ):
            raise InvalidRequest(COPY_SELF_ERROR)
        if attrs is None:
            attrs = NewObject(src.content_type, dict(src.user_meta), dict(src.headers))
            attrs = replace(attrs, tagging=stored_tagging(src.internal))
        writer = await self.store.new_writer(bucket, key)
        async with writer:
            choice = await self.decide(
                bucket, sse, inherit=inherited(src.internal, kms=self.kms is not None)
            )
            src_oek = await self._open_verified(src, src_customer)
            dst_oek, internal = await self._new_key(bucket, key, choice)
            tap = ck.CopyTap.for_object(src.internal, checksum)
            source = plaintext(self.store, src, src_oek, 0, src.size)
            internal.update(await _fill(writer, dst_oek, tap.hashed(source)) | tap.entries())
            vid = version_for(writer.versioning)
            meta = self._new_meta(
                bucket, key, attrs, writer.accepted, tap.md5, dst_oek, internal, vid
            )
            return await writer.commit(meta)

    async def head(
        self, bucket: str, key: str, version_id: str | None = None, *, copy_source: bool = False
    ) -> ObjectMeta:
        """The current object's (or the named version's) metadata, no KMS call; a delete
        marker is refused as S3 does (`versions.readable`)."""
        return readable(await self.store.head(bucket, key, version_id), copy_source=copy_source)

    @staticmethod
    def require_readable(meta: ObjectMeta, customer: CustomerKey | None = None) -> None:
        """AWS's InvalidRequest for an SSE-C object read without its key, or another object
        read with one (`ssec.require_read_key`); GET, HEAD and copy sources check it."""
        ssec.require_read_key(meta.internal, customer)

    async def open(
        self, meta: ObjectMeta, offset: int, length: int, customer: CustomerKey | None = None
    ) -> AsyncIterator[bytes]:
        """Authenticated plaintext ``[offset, offset+length)`` of the object ``meta``.

        The key is opened (KMS) and the layout checked (ObjectIntegrityError) before this
        returns; decryption errors surface as DareError from the iterator, from its first
        chunk on when the first package is bad. The iterator holds each part's last batch
        back until that part's final package authenticated (`reading.decrypt_range`).
        """
        self.require_readable(meta, customer)
        oek = await self._open_verified(meta, customer)
        return plaintext(self.store, meta, oek, offset, length)

    async def delete(self, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
        """S3 DeleteObject (see `Store.delete`): an absent key or version is not an error."""
        return await self.store.delete(bucket, key, version_id)
