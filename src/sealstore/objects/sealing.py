"""Object keys with the KMS: a fresh sealed key for a new object, the key of a stored one.

The only module that asks the KMS for data keys on behalf of objects. A new object gets one
``generate_key`` call; opening one costs one ``decrypt_key`` call, with the key id and the
context stored in the object (objects keep pointing at the key that sealed them). The DEK never
leaves these functions; what they return for storage holds only sealed material (§3.2-3.5).

Every key is sealed and KMS-bound to its exact path (`keys.object_path`): MinIO's cleaned
``path.Join`` would let ``a//b`` and ``a/b`` (or ``dir/`` and ``dir``) share a KEK and KMS
context, so a sealed key copied from one would open as the other. For every key MinIO
encrypts the two are the same bytes, so MinIO-written objects still open.
KMS metrics and readiness are the KMS wrapper's job (`kms/`), not this module's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sealstore.crypto import keys
from sealstore.crypto.kms_context import encode_context
from sealstore.kms.base import KMSDecryptError
from sealstore.objects import metadata as md
from sealstore.objects.choice import SSEChoice

if TYPE_CHECKING:
    from sealstore.kms.base import KMS, DataKey


async def new_object_key(
    kms: KMS, bucket: str, key: str, choice: SSEChoice
) -> tuple[bytes, dict[str, str]]:
    """A fresh OEK for ``bucket/key`` and the metadata that seals it, as ``choice`` says.

    SSE-S3 uses the KMS default key and the object context; SSE-KMS the client's key id (or
    the default) and context. Only the client's context is stored (canonical JSON, base64);
    the bucket entry is re-added when the object is opened.
    """
    if choice.kind == md.DOMAIN_SSE_KMS:
        key_id = choice.key_id or kms.default_key_id
        dk = await kms.generate_key(key_id, md.kms_context(bucket, key, choice.context))
        oek, meta = _seal_fresh_key(kms, dk, md.DOMAIN_SSE_KMS, md.META_KMS_SEALED_KEY, bucket, key)
        if choice.context:
            meta[md.META_CONTEXT] = base64.b64encode(encode_context(dict(choice.context))).decode()
        if choice.key_id_given and choice.key_id_given != dk.key_id:
            meta[md.META_KMS_KEY_ID_GIVEN] = choice.key_id_given  # echoed as the client spelt it
        return oek, meta
    dk = await kms.generate_key(kms.default_key_id, md.object_context(bucket, key))
    return _seal_fresh_key(kms, dk, md.DOMAIN_SSE_S3, md.META_S3_SEALED_KEY, bucket, key)


def _seal_fresh_key(
    kms: KMS, dk: DataKey, domain: str, sealed_key_entry: str, bucket: str, key: str
) -> tuple[bytes, dict[str, str]]:
    """Derive a fresh OEK from ``dk`` and seal it to ``bucket/key``; SSE-S3 and SSE-KMS differ
    only in the sealing domain and the metadata entry that holds the sealed key (§3.5)."""
    oek = keys.generate_object_key(dk.plaintext)
    sealed = keys.seal_object_key(oek, dk.plaintext, domain, bucket, key, exact=True)
    meta = {
        md.META_SEAL_ALGORITHM: sealed.algorithm,
        md.META_IV: base64.b64encode(sealed.iv).decode(),
        sealed_key_entry: base64.b64encode(sealed.key).decode(),
        md.META_S3_KMS_KEY_ID: dk.key_id,
        md.META_S3_KMS_SEALED_KEY: base64.b64encode(dk.ciphertext).decode(),
        md.META_KMS_KIND: kms.kind,
        md.META_FORMAT_VERSION: md.FORMAT_VERSION,
    }
    return oek, meta


async def open_object_key(
    kms: KMS, meta: Mapping[str, str], bucket: str, key: str, *, exact: bool = True
) -> bytes:
    """Recover the OEK of an SSE-S3 or SSE-KMS object stored at ``bucket/key``.

    Raises KMS errors (unavailable / decrypt), ``KeyMismatchError`` when the sealed key does
    not open for this path, ``SSEMetadataError`` for malformed metadata. ``exact=False``
    opens with MinIO's cleaned path, as sealstore sealed keys before exact binding; only
    an admin tool that re-seals such objects (and the service, for empty legacy objects,
    which carry no plaintext to substitute) may ask for it.
    """
    sealed = md.parse_sealed_key(meta)
    key_id = md.ci_get(meta, md.META_S3_KMS_KEY_ID)
    if key_id is None:
        raise md.SSEMetadataError(f"missing encryption metadata entry {md.META_S3_KMS_KEY_ID}")
    ciphertext = md.b64_entry(meta, md.META_S3_KMS_SEALED_KEY, None)
    stored_kind = md.ci_get(meta, md.META_KMS_KIND)
    if stored_kind is not None and stored_kind != kms.kind:
        raise KMSDecryptError(
            f"object was sealed by a {stored_kind} KMS but this server uses {kms.kind}"
        )
    if md.is_sse_s3(meta):
        domain, ctx = md.DOMAIN_SSE_S3, md.object_context(bucket, key, exact=exact)
    else:
        domain = md.DOMAIN_SSE_KMS
        ctx = md.kms_context(bucket, key, md.stored_client_context(meta), exact=exact)
    dek = await kms.decrypt_key(key_id, ciphertext, ctx)
    return keys.unseal_object_key(sealed, dek, domain, bucket, key, exact=exact)


def seal_etag_hex(oek: bytes, md5_hex: str) -> str:
    """Seal a plaintext MD5 ETag for storage (§4.4): 96 hex chars."""
    return keys.seal_etag(oek, bytes.fromhex(md5_hex)).hex()


def unseal_etag_hex(oek: bytes, stored: str) -> str:
    """Reverse :func:`seal_etag_hex`; values shorter than 32 bytes are returned unchanged."""
    raw = bytes.fromhex(stored.split("-", 1)[0]) if stored else b""
    if len(raw) < 32:
        return stored
    return keys.unseal_etag(oek, raw).hex()
