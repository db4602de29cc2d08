"""SSE-S3 object lifecycle: KMS data key -> object key -> sealed metadata -> DARE streams.

This module is the only place that combines the KMS (kms/) with the pure crypto (crypto/),
so every handler (PUT, GET, copy, multipart) seals and opens keys the same way and writes
metadata byte-compatible with MinIO (minio-sse-format.md §3.3, §3.5, §4.1-4.4).

Streaming helpers keep the event loop free: AES work for a ~1 MiB batch runs in a worker
thread together with the (blocking) sink write, so one thread hop covers both.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sealstore.crypto import dare, keys, ranges
from sealstore.crypto.context import encode_context

if TYPE_CHECKING:
    from sealstore.kms.base import KMS, DataKey

SSE_HEADER = "X-Amz-Server-Side-Encryption"
SSE_AES256 = "AES256"
SSE_KMS = "aws:kms"
SSE_KMS_KEY_ID_HEADER = "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"
SSE_CONTEXT_HEADER = "X-Amz-Server-Side-Encryption-Context"
SSEC_HEADERS = (
    "X-Amz-Server-Side-Encryption-Customer-Algorithm",
    "X-Amz-Server-Side-Encryption-Customer-Key",
    "X-Amz-Server-Side-Encryption-Customer-Key-Md5",
)
SSEC_COPY_HEADERS = (
    "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Algorithm",
    "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key",
    "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key-Md5",
)

DOMAIN_SSE_S3 = "SSE-S3"
DOMAIN_SSE_KMS = "SSE-KMS"
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

# Plaintext gathered per worker-thread hop: big enough to amortise the hop, small enough
# to keep memory per request bounded.
BATCH_SIZE = 1024 * 1024


class SSEMetadataError(Exception):
    """Stored encryption metadata is missing or malformed (treated like tampering)."""


def is_internal(name: str) -> bool:
    """True for metadata names that must never be returned to clients."""
    return name.lower().startswith(INTERNAL_PREFIXES)


def strip_internal(meta: Mapping[str, str]) -> dict[str, str]:
    """Return metadata without internal entries (what a client may see)."""
    return {k: v for k, v in meta.items() if not is_internal(k)}


def _ci_get(meta: Mapping[str, str], name: str) -> str | None:
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
    return any(_ci_get(meta, m) is not None for m in _ENCRYPTION_MARKERS)


def is_sse_s3(meta: Mapping[str, str]) -> bool:
    """True when the object is SSE-S3 encrypted (has an S3-sealed object key)."""
    return _ci_get(meta, META_S3_SEALED_KEY) is not None


def is_sse_kms(meta: Mapping[str, str]) -> bool:
    """True when the object is SSE-KMS encrypted (has a KMS-sealed object key, §3.4)."""
    return _ci_get(meta, META_KMS_SEALED_KEY) is not None


def sse_kind(meta: Mapping[str, str]) -> str | None:
    """ "SSE-S3", "SSE-KMS", "SSE-C" or None (not encrypted)."""
    if is_sse_s3(meta):
        return DOMAIN_SSE_S3
    if is_sse_kms(meta):
        return DOMAIN_SSE_KMS
    if is_encrypted(meta):
        return "SSE-C"
    return None


def kms_key_id_of(meta: Mapping[str, str]) -> str | None:
    """The KMS key name stored with an encrypted object (raw string, not base64)."""
    return _ci_get(meta, META_S3_KMS_KEY_ID)


def normalize_kms_key_id(raw: str) -> str:
    """Strip MinIO's accepted ``arn:aws:kms:`` prefix; callers reject surrounding spaces."""
    return raw[len(KMS_ARN_PREFIX) :] if raw.startswith(KMS_ARN_PREFIX) else raw


def kms_context(bucket: str, key: str, client_context: Mapping[str, str] | None) -> dict[str, str]:
    """SSE-KMS context: the client's map plus ``{bucket: bucket/key}`` unless it names the
    bucket itself (§3.4)."""
    ctx = dict(client_context or {})
    if bucket not in ctx:
        ctx[bucket] = keys.go_path_join(bucket, key)
    return ctx


def stored_client_context(meta: Mapping[str, str]) -> dict[str, str]:
    """Decode the client context stored with an SSE-KMS object ({} when none)."""
    raw = _ci_get(meta, META_CONTEXT)
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


async def new_kms_object_key(
    kms: KMS,
    key_id: str,
    bucket: str,
    key: str,
    client_context: Mapping[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """SSE-KMS: like :func:`new_object_key` but with the client's key id and context (§3.4).

    Only the client's context is stored (canonical JSON, base64); the bucket entry is
    re-added when the object is opened.
    """
    dk = await kms.generate_key(key_id, kms_context(bucket, key, client_context))
    oek, meta = _seal_fresh_key(kms, dk, DOMAIN_SSE_KMS, META_KMS_SEALED_KEY, bucket, key)
    if client_context:
        meta[META_CONTEXT] = base64.b64encode(encode_context(dict(client_context))).decode()
    return oek, meta


def object_context(bucket: str, key: str) -> dict[str, str]:
    """The KMS context MinIO binds SSE-S3 data keys to: ``{bucket: path.Join(bucket, key)}``."""
    return {bucket: keys.go_path_join(bucket, key)}


async def new_object_key(kms: KMS, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
    """Create a fresh OEK for ``bucket/key`` and the SSE-S3 metadata that seals it.

    One KMS call (datakey). The DEK never leaves this function; the returned metadata holds
    only sealed material and is what the storage layer persists beside the object.
    """
    dk = await kms.generate_key(kms.default_key_id, object_context(bucket, key))
    return _seal_fresh_key(kms, dk, DOMAIN_SSE_S3, META_S3_SEALED_KEY, bucket, key)


def _seal_fresh_key(
    kms: KMS, dk: DataKey, domain: str, sealed_key_entry: str, bucket: str, key: str
) -> tuple[bytes, dict[str, str]]:
    """Derive a fresh OEK from ``dk`` and seal it to ``bucket/key``; SSE-S3 and SSE-KMS differ
    only in the sealing domain and the metadata entry that holds the sealed key (§3.5)."""
    oek = keys.generate_object_key(dk.plaintext)
    sealed = keys.seal_object_key(oek, dk.plaintext, domain, bucket, key)
    meta = {
        META_SEAL_ALGORITHM: sealed.algorithm,
        META_IV: base64.b64encode(sealed.iv).decode(),
        sealed_key_entry: base64.b64encode(sealed.key).decode(),
        META_S3_KMS_KEY_ID: dk.key_id,
        META_S3_KMS_SEALED_KEY: base64.b64encode(dk.ciphertext).decode(),
        META_KMS_KIND: kms.kind,
        META_FORMAT_VERSION: FORMAT_VERSION,
    }
    return oek, meta


def _b64(meta: Mapping[str, str], name: str, size: int | None) -> bytes:
    """Decode one std-base64 metadata entry, checking presence and length."""
    raw = _ci_get(meta, name)
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
    algorithm = _ci_get(meta, META_SEAL_ALGORITHM)
    if algorithm != keys.SEAL_ALGORITHM:
        raise SSEMetadataError(f"unsupported seal algorithm {algorithm!r}")
    entry = META_KMS_SEALED_KEY if is_sse_kms(meta) and not is_sse_s3(meta) else META_S3_SEALED_KEY
    return keys.SealedKey(
        iv=_b64(meta, META_IV, 32),
        algorithm=algorithm,
        key=_b64(meta, entry, 64),
    )


async def open_object_key(kms: KMS, meta: Mapping[str, str], bucket: str, key: str) -> bytes:
    """Recover the OEK of an SSE-S3 or SSE-KMS object stored at ``bucket/key``.

    Uses the key id *stored in the object* (objects keep pointing at the key that sealed
    them). Raises KMS errors (unavailable / decrypt), ``KeyMismatchError`` when the sealed
    key does not open for this path, ``SSEMetadataError`` for malformed metadata.
    """
    sealed = parse_sealed_key(meta)
    key_id = _ci_get(meta, META_S3_KMS_KEY_ID)
    if key_id is None:
        raise SSEMetadataError(f"missing encryption metadata entry {META_S3_KMS_KEY_ID}")
    ciphertext = _b64(meta, META_S3_KMS_SEALED_KEY, None)
    stored_kind = _ci_get(meta, META_KMS_KIND)
    if stored_kind is not None and stored_kind != kms.kind:
        from sealstore.kms.base import KMSDecryptError

        raise KMSDecryptError(
            f"object was sealed by a {stored_kind} KMS but this server uses {kms.kind}"
        )
    if is_sse_s3(meta):
        domain, ctx = DOMAIN_SSE_S3, object_context(bucket, key)
    else:
        domain, ctx = DOMAIN_SSE_KMS, kms_context(bucket, key, stored_client_context(meta))
    dek = await kms.decrypt_key(key_id, ciphertext, ctx)
    return keys.unseal_object_key(sealed, dek, domain, bucket, key)


def seal_etag_hex(oek: bytes, md5_hex: str) -> str:
    """Seal a plaintext MD5 ETag for storage (§4.4): 96 hex chars."""
    return keys.seal_etag(oek, bytes.fromhex(md5_hex)).hex()


def unseal_etag_hex(oek: bytes, stored: str) -> str:
    """Reverse :func:`seal_etag_hex`; values shorter than 32 bytes are returned unchanged."""
    raw = bytes.fromhex(stored.split("-", 1)[0]) if stored else b""
    if len(raw) < 32:
        return stored
    return keys.unseal_etag(oek, raw).hex()


def plaintext_size(meta: Mapping[str, str], stored_size: int) -> int:
    """Client-visible size of an encrypted object: actual-size entry or dec(stored) (P8)."""
    actual = _ci_get(meta, META_ACTUAL_SIZE)
    if actual is not None and actual.isdigit():
        return int(actual)
    return dare.decrypted_size(stored_size)


# An async sink that appends ciphertext (e.g. storage ObjectWriter.write / PartWriter.write).
Sink = Callable[[bytes], Awaitable[object]]


@runtime_checkable
class TransformWriter(Protocol):
    """A storage writer that can run a transform and its file write in one thread hop
    (storage ObjectWriter / PartWriter ``write_via``)."""

    async def write_via(self, produce: Callable[[], bytes | bytearray | memoryview]) -> None: ...


async def encrypt_stream(
    key: bytes,
    source: AsyncIterable[bytes],
    sink: Sink | TransformWriter,
    *,
    batch_size: int = BATCH_SIZE,
) -> tuple[int, int]:
    """Encrypt ``source`` as one DARE 2.0 stream into ``sink``; return (plain, stored) sizes.

    Plaintext chunks are gathered on the loop (by reference, no copy) into ~``batch_size``
    batches; AES never runs on the loop. Given a storage writer (``write_via``), each batch
    is encrypted *and* written in one executor call: one thread hop per batch. A plain async
    ``sink`` callable gets the ciphertext after a separate encryption hop (kept for callers
    that are not storage writers, e.g. tests and copies into memory).
    """
    enc = dare.DareEncryptor(key)
    plain = 0
    stored = 0
    pending: list[bytes] = []
    pending_len = 0

    def _encrypt(chunks: list[bytes], final: bool) -> bytearray:
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        # finalize(data) seals the batch and the final package into one buffer (no join).
        return enc.finalize(data) if final else enc.update(data)

    async def _emit(chunks: list[bytes], final: bool) -> int:
        if isinstance(sink, TransformWriter):
            produced = 0

            def produce() -> bytearray:
                nonlocal produced
                out = _encrypt(chunks, final)
                produced = len(out)
                return out

            await sink.write_via(produce)
            return produced
        out = await asyncio.to_thread(_encrypt, chunks, final)
        if out:
            await sink(out)
        return len(out)

    async for chunk in source:
        if not chunk:
            continue
        plain += len(chunk)
        pending.append(chunk)
        pending_len += len(chunk)
        if pending_len >= batch_size:
            batch, pending = pending, []
            pending_len = 0
            stored += await _emit(batch, False)
    stored += await _emit(pending, True)
    return plain, stored


async def encrypt_part(
    oek: bytes,
    part_number: int,
    source: AsyncIterable[bytes],
    sink: Sink | TransformWriter,
) -> tuple[int, int]:
    """Encrypt one multipart part: its own DARE stream keyed by derive_part_key(OEK, n).

    Seq restarts at 0 and the stream nonce is random per part (pitfall P3: never reuse a
    nonce when the same part number is uploaded twice). Pass the PartWriter itself as
    ``sink`` for one thread hop per batch (see :func:`encrypt_stream`).
    """
    return await encrypt_stream(keys.derive_part_key(oek, part_number), source, sink)


@dataclass(frozen=True)
class StoredPart:
    """One DARE stream of an encrypted object: part number (None = single-part) and sizes."""

    number: int | None
    plain_size: int


# read(offset, length, transform) reads ``length`` stored bytes from ``offset`` of the whole
# stored object and yields ``transform(chunk)`` for each chunk, running ``transform`` off the
# event loop (storage ``read(..., transform=)`` runs it in the same thread call as the read).
RangeReader = Callable[[int, int, Callable[[bytes], bytes]], AsyncIterator[bytes]]

# Stored bytes a GET reads and decrypts per thread hop. Deliberately NOT a whole number of
# DARE packages: with package-aligned reads (16 x 65,568 B) each batch empties the decryptor's
# carry-over buffer, so its ~1 MiB buffer is freed and re-allocated (mmap/munmap, page faults)
# every batch; measured in the server that was 0.40x of plain GET vs 0.60x with 1 MiB reads.
DECRYPT_READ_SIZE = 1 << 20


def _part_key(oek: bytes, part: StoredPart) -> bytes:
    return oek if part.number is None else keys.derive_part_key(oek, part.number)


async def decrypt_range(
    oek: bytes,
    parts: list[StoredPart],
    offset: int,
    length: int,
    read: RangeReader,
) -> AsyncIterator[bytes]:
    """Yield plaintext bytes ``[offset, offset+length)`` decrypting only touched packages.

    Uses crypto.ranges.plan_range (§4.3). Each segment is decrypted from its start sequence
    number; the stream's final-package check runs only when a segment reaches the end of
    its part. The decryptor is handed to ``read`` as its transform, so each stored chunk is
    read and decrypted in one thread hop; callers should read ``DECRYPT_READ_SIZE`` chunks.
    """
    if length <= 0:
        return
    plan = ranges.plan_range([p.plain_size for p in parts], offset, length)
    part_stored_end: list[int] = []
    pos = 0
    for p in parts:
        pos += dare.encrypted_size(p.plain_size)
        part_stored_end.append(pos)
    for seg in plan:
        dec = dare.DareDecryptor(_part_key(oek, parts[seg.part_index]), start_seq=seg.start_seq)
        to_skip = seg.skip
        remaining = seg.take
        async for plain in read(seg.stored_offset, seg.stored_length, dec.update):
            if to_skip:
                cut = min(to_skip, len(plain))
                plain = plain[cut:]
                to_skip -= cut
            if len(plain) > remaining:
                plain = plain[:remaining]
            remaining -= len(plain)
            if plain:
                yield plain
        if seg.stored_offset + seg.stored_length >= part_stored_end[seg.part_index]:
            dec.finalize()  # checks decryptor state only: no AES, fine on the loop
        if remaining:
            raise dare.DareError("stored object is shorter than its metadata says")
