"""The SSE metadata entries stored beside an encrypted object, exactly as MinIO names them.

Pure functions over ``ObjectMeta.internal``: which kind of encryption an object has, which KMS
key sealed it, the sealed object key, the client-visible size. Nothing here calls the KMS or
touches storage (that is `sealing.py` and `service.py`); the entries themselves are byte
compatible with MinIO (minio-sse-format.md §3.5) so objects stay readable by either server.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from sealstore.crypto import dare, keys

DOMAIN_SSE_S3 = "SSE-S3"
DOMAIN_SSE_KMS = "SSE-KMS"
DOMAIN_SSE_C = "SSE-C"
KMS_ARN_PREFIX = "arn:aws:kms:"

# Metadata entry names exactly as MinIO writes them (§3.5).
META_SEAL_ALGORITHM = "X-Minio-Internal-Server-Side-Encryption-Seal-Algorithm"
META_IV = "X-Minio-Internal-Server-Side-Encryption-Iv"
META_S3_SEALED_KEY = "X-Minio-Internal-Server-Side-Encryption-S3-Sealed-Key"
META_S3_KMS_KEY_ID = "X-Minio-Internal-Server-Side-Encryption-S3-Kms-Key-Id"
META_S3_KMS_SEALED_KEY = "X-Minio-Internal-Server-Side-Encryption-S3-Kms-Sealed-Key"
META_KMS_SEALED_KEY = "X-Minio-Internal-Server-Side-Encryption-Kms-Sealed-Key"
META_SSEC_SEALED_KEY = "X-Minio-Internal-Server-Side-Encryption-Sealed-Key"
META_CONTEXT = "X-Minio-Internal-Server-Side-Encryption-Context"
META_ENCRYPTED_MULTIPART = "X-Minio-Internal-Encrypted-Multipart"
META_ACTUAL_SIZE = "X-Minio-Internal-Actual-Size"
# MinIO keeps the sealed ETag (§4.4) as the object's ETag; our index keeps the client-visible
# MD5 for listings (no KMS call per listed object), and the sealed form here.
META_SEALED_ETAG = "X-Sealstore-Internal-Sealed-Etag"
# Our additions (pitfall P6): which KMS kind sealed the DEK, and our format version, so a
# later migration or a mis-configured server can say precisely why an object cannot open.
META_KMS_KIND = "X-Sealstore-Internal-Kms-Kind"
META_FORMAT_VERSION = "X-Sealstore-Internal-Sse-Format"
# SSE-KMS: the key id as the client spelt it (an ARN or a bare id), echoed back as given.
META_KMS_KEY_ID_GIVEN = "X-Sealstore-Internal-Kms-Key-Id-Given"
FORMAT_VERSION = "1"

INTERNAL_PREFIXES = ("x-minio-internal-", "x-sealstore-internal-")
_ENCRYPTION_MARKERS = (
    META_S3_SEALED_KEY,
    META_KMS_SEALED_KEY,
    META_SSEC_SEALED_KEY,
    META_S3_KMS_KEY_ID,
    META_IV,
    META_SEAL_ALGORITHM,
    META_ENCRYPTED_MULTIPART,
)


class SSEMetadataError(Exception):
    """Stored encryption metadata is missing or malformed (treated like tampering)."""


def is_internal(name: str) -> bool:
    """True for metadata names that must never be returned to clients."""
    return name.lower().startswith(INTERNAL_PREFIXES)


def strip_internal(meta: Mapping[str, str]) -> dict[str, str]:
    """Return metadata without internal entries (what a client may see)."""
    return {k: v for k, v in meta.items() if not is_internal(k)}


def ci_get(meta: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive metadata lookup (stores may normalise case differently)."""
    if name in meta:
        return meta[name]
    lname = name.lower()
    for k, v in meta.items():
        if k.lower() == lname:
            return v
    return None


def is_encrypted(meta: Mapping[str, str]) -> bool:
    """MinIO's IsEncrypted test: any sealing entry present (§3.5)."""
    return any(ci_get(meta, m) is not None for m in _ENCRYPTION_MARKERS)


def is_sse_s3(meta: Mapping[str, str]) -> bool:
    """True when the object is SSE-S3 encrypted (has an S3-sealed object key)."""
    return ci_get(meta, META_S3_SEALED_KEY) is not None


def is_sse_kms(meta: Mapping[str, str]) -> bool:
    """True when the object is SSE-KMS encrypted (has a KMS-sealed object key, §3.4)."""
    return ci_get(meta, META_KMS_SEALED_KEY) is not None


def sse_kind(meta: Mapping[str, str]) -> str | None:
    """ "SSE-S3", "SSE-KMS", "SSE-C" or None (not encrypted)."""
    if is_sse_s3(meta):
        return DOMAIN_SSE_S3
    if is_sse_kms(meta):
        return DOMAIN_SSE_KMS
    if is_encrypted(meta):
        return DOMAIN_SSE_C
    return None


def kms_key_id_of(meta: Mapping[str, str]) -> str | None:
    """The KMS key name stored with an encrypted object (raw string, not base64)."""
    return ci_get(meta, META_S3_KMS_KEY_ID)


def normalize_kms_key_id(raw: str) -> str:
    """Strip MinIO's accepted ``arn:aws:kms:`` prefix; callers reject surrounding spaces."""
    return raw[len(KMS_ARN_PREFIX) :] if raw.startswith(KMS_ARN_PREFIX) else raw


def _bound_path(bucket: str, key: str, exact: bool) -> str:
    return keys.object_path(bucket, key) if exact else keys.go_path_join(bucket, key)


def kms_context(
    bucket: str, key: str, client_context: Mapping[str, str] | None, *, exact: bool = True
) -> dict[str, str]:
    """SSE-KMS context: the client's map plus ``{bucket: bucket/key}`` unless it names the
    bucket itself (§3.4). ``bucket/key`` is the exact key (`keys.object_path`), equal to
    MinIO's ``path.Join`` for every key MinIO encrypts; ``exact=False`` is MinIO's cleaned
    form, which objects sealed before exact binding used."""
    ctx = dict(client_context or {})
    if bucket not in ctx:
        ctx[bucket] = _bound_path(bucket, key, exact)
    return ctx


def object_context(bucket: str, key: str, *, exact: bool = True) -> dict[str, str]:
    """The KMS context of SSE-S3 data keys: ``{bucket: bucket/key}`` (see `kms_context`)."""
    return {bucket: _bound_path(bucket, key, exact)}


def stored_client_context(meta: Mapping[str, str]) -> dict[str, str]:
    """Decode the client context stored with an SSE-KMS object ({} when none)."""
    raw = ci_get(meta, META_CONTEXT)
    if not raw:
        return {}
    try:
        doc = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        raise SSEMetadataError(f"encryption metadata entry {META_CONTEXT} is malformed") from None
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        raise SSEMetadataError(f"encryption metadata entry {META_CONTEXT} is not a string map")
    return doc


def b64_entry(meta: Mapping[str, str], name: str, size: int | None) -> bytes:
    """Decode one std-base64 metadata entry, checking presence and length."""
    raw = ci_get(meta, name)
    if raw is None:
        raise SSEMetadataError(f"missing encryption metadata entry {name}")
    try:
        value = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise SSEMetadataError(f"encryption metadata entry {name} is not base64") from None
    if size is not None and len(value) != size:
        raise SSEMetadataError(f"encryption metadata entry {name} has the wrong length")
    return value


def parse_sealed_key(meta: Mapping[str, str]) -> keys.SealedKey:
    """Validate and decode the sealed OEK entries (§3.2: IV 32 B, key 64 B, known algorithm)."""
    algorithm = ci_get(meta, META_SEAL_ALGORITHM)
    if algorithm != keys.SEAL_ALGORITHM:
        raise SSEMetadataError(f"unsupported seal algorithm {algorithm!r}")
    entry = META_KMS_SEALED_KEY if is_sse_kms(meta) and not is_sse_s3(meta) else META_S3_SEALED_KEY
    return keys.SealedKey(
        iv=b64_entry(meta, META_IV, 32),
        algorithm=algorithm,
        key=b64_entry(meta, entry, 64),
    )


def plaintext_size(meta: Mapping[str, str], stored_size: int) -> int:
    """Client-visible size of an encrypted object: actual-size entry or dec(stored) (P8)."""
    actual = ci_get(meta, META_ACTUAL_SIZE)
    if actual is not None and actual.isdigit():
        return int(actual)
    return dare.decrypted_size(stored_size)
