"""The object service: the one place that combines the KMS, the DARE crypto and storage.

HTTP handlers translate requests into calls here and results back into responses; they
never see a key, a sealed entry or a storage thread. Data flows one way: a PUT's body goes
``put -> streams.fill -> ObjectWriter.write`` (the backend runs the DARE encryptor set with
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

from dataclasses import replace

from sealstore.crypto import keys
from sealstore.objects import checksum as ck
from sealstore.objects import conditional, layout, ssec
from sealstore.objects import metadata as md
from sealstore.objects import multipart_checksum as mp
from sealstore.objects.choice import CustomerKey, SSEChoice
from sealstore.objects.core import NewObject, ObjectCore, is_encrypted_upload
from sealstore.objects.errors import InternalError
from sealstore.objects.reading import plaintext
from sealstore.objects.streams import HashedBody
from sealstore.objects.streams import bounded as _bounded
from sealstore.objects.streams import fill as _fill
from sealstore.objects.tagging import tag_entry
from sealstore.objects.versions import version_for
from sealstore.storage.base import (
    NoSuchBucket,
    ObjectMeta,
    PartMeta,
    UploadMeta,
    multipart_etag,
    validate_object_key,
)

__all__ = ["NewObject", "ObjectService"]


class ObjectService(ObjectCore):
    """Objects and multipart uploads over a ``Store``, encrypted under a ``KMS``."""

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
        internal.update(tag_entry(attrs.tagging))
        internal.update(ck.upload_entries(attrs.checksum))
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

    async def _upload_key(self, upload: UploadMeta, customer: CustomerKey | None) -> bytes | None:
        """The upload's OEK: SSE-C from ``customer`` (another key: 400), else from the KMS."""
        if ssec.is_ssec(upload.meta.internal) and customer is not None:
            m = upload.meta
            return ssec.open_upload_key(m.internal, m.bucket, m.key, customer)
        return await self._open_key(upload.meta) if is_encrypted_upload(upload) else None

    async def _part_key(
        self, upload: UploadMeta, number: int, customer: CustomerKey | None = None
    ) -> bytes | None:
        """Part n's key: HMAC(OEK, n); the stream nonce is random per part (pitfall P3).
        An SSE-C upload's parts repeat its key, no other upload's carry one."""
        ssec.require_part_key(upload.meta.internal, customer)
        oek = await self._upload_key(upload, customer)
        return None if oek is None else keys.derive_part_key(oek, number)

    async def put_part(
        self,
        upload: UploadMeta,
        number: int,
        body: HashedBody,
        *,
        max_size: int,
        customer: CustomerKey | None = None,
    ) -> PartMeta:
        """Store part ``number`` from ``body`` (at most ``max_size`` bytes)."""
        part_key = await self._part_key(upload, number, customer)
        writer = await self.store.new_part_writer(upload, number)
        async with writer:
            nonce = await _fill(writer, part_key, _bounded(body, max_size))
            if body.md5_hex is None:  # the body always computes it; never store a bad ETag
                raise InternalError("The part's MD5 was not computed")
            etag = ssec.part_etag(upload.meta.internal, part_key, body.md5_hex)
            return await writer.commit(etag, writer.accepted, nonce | ck.body_entries(body))

    async def copy_part(
        self,
        upload: UploadMeta,
        number: int,
        src: ObjectMeta,
        offset: int,
        length: int,
        *,
        customer: CustomerKey | None = None,
        src_customer: CustomerKey | None = None,
    ) -> PartMeta:
        """Store part ``number`` from plaintext ``[offset, offset+length)`` of ``src``,
        decrypted under its own key and encrypted under the upload's part key."""
        self.require_readable(src, src_customer)
        part_key = await self._part_key(upload, number, customer)
        src_oek = await self._open_verified(src, src_customer)
        tap = ck.CopyTap.for_part(upload.meta.internal)
        writer = await self.store.new_part_writer(upload, number)
        async with writer:
            source = plaintext(self.store, src, src_oek, offset, length)
            nonce = await _fill(writer, part_key, tap.hashed(source))
            if writer.accepted != length:
                raise InternalError("The copy source ended early")
            etag = ssec.part_etag(upload.meta.internal, part_key, tap.md5)
            return await writer.commit(etag, writer.accepted, nonce | tap.entries())

    async def complete(
        self,
        upload: UploadMeta,
        parts: list[tuple[int, str]],
        customer: CustomerKey | None = None,
        cond: conditional.Condition = None,
        checks: mp.Completion | None = None,
    ) -> ObjectMeta:
        """Publish the upload as one object of the listed ``(number, etag)`` parts with S3's
        ``md5(part md5s)-N`` ETag (InvalidPart for a non-MD5 ETag), binding an encrypted one's
        layout (`layout.bind_completion`; SSE-C only when the request repeats its key, which
        AWS does not require); records the upload id; ``cond`` as for `put`; ``checks``: the
        part and object checksums the request lists (`multipart_checksum`)."""
        await conditional.precheck(self.store, upload.bucket, upload.key, cond)
        meta = replace(upload.meta, etag=multipart_etag([e for _, e in parts]), parts=[], files=[])
        internal = dict(upload.meta.internal) | {conditional.UPLOAD_ID: upload.upload_id}
        meta.internal = await mp.finish_upload(self.store, upload, parts, internal, checks)
        sealed_c = ssec.is_ssec(upload.meta.internal)
        oek = None if sealed_c and customer is None else await self._upload_key(upload, customer)
        meta.version_id = version_for(await self.store.get_versioning(upload.bucket))
        if oek is not None:
            await layout.bind_completion(self.store, upload, parts, meta, oek)
        return await self.store.complete_upload(upload, list(parts), meta, condition=cond)

    async def abort(self, upload: UploadMeta) -> None:
        """Discard the upload and its parts."""
        await self.store.abort_upload(upload)
