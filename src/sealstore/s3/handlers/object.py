"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, CopyObject.

Bodies are streamed end to end (request -> optional DARE encryption -> storage; storage ->
optional DARE decryption of only the touched packages -> response). Every KMS call happens
before anything is written or any response byte is sent, so a KMS outage yields a clean
503 and no partial object.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from aiohttp import web

from sealstore import sse
from sealstore.s3.context import S3Request, http_date, iso8601
from sealstore.s3.errors import S3Error, kms_not_configured
from sealstore.s3.xml import document, tag
from sealstore.storage.base import NoSuchKey, ObjectMeta, normalize_etag

# Standard headers S3 stores with an object and returns on GET/HEAD.
STORED_HEADERS = (
    "Cache-Control",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Expires",
)
# GET query overrides (S3 "response-*" parameters) -> response header.
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
MAX_USER_METADATA = 2048  # S3: user-defined metadata is limited to 2 KB
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
COPY_SELF_ERROR = (
    "This copy request is illegal because it is trying to copy an object to itself without "
    "changing the object's metadata, storage class, website redirect location or encryption "
    "attributes."
)


# ----------------------------------------------------------------------------- SSE choice


def _reject_ssec(req: S3Request, copy_source: bool = False) -> None:
    names = sse.SSEC_COPY_HEADERS if copy_source else sse.SSEC_HEADERS
    if any(req.header(h) is not None for h in names):
        raise S3Error(
            "NotImplemented",
            "SSE-C (customer-provided keys) is not supported by this server; "
            "use SSE-S3 (x-amz-server-side-encryption: AES256)",
        )


@dataclass(frozen=True)
class SSEChoice:
    """How a new object will be encrypted: SSE-S3, or SSE-KMS with a key id and context."""

    kind: str  # sse.DOMAIN_SSE_S3 or sse.DOMAIN_SSE_KMS
    key_id: str | None = None  # SSE-KMS only; None = the KMS default key
    context: dict[str, str] | None = None  # SSE-KMS client context


SSE_S3 = SSEChoice(sse.DOMAIN_SSE_S3)


def _parse_kms_context(raw: str) -> dict[str, str]:
    try:
        doc = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        doc = None
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        raise S3Error(
            "InvalidArgument",
            f"{sse.SSE_CONTEXT_HEADER} must be base64-encoded JSON of string keys and values",
        )
    return doc


def requested_sse(req: S3Request) -> SSEChoice | None:
    """The encryption the request asks for in its own headers (validated), or None."""
    value = req.header(sse.SSE_HEADER)
    key_hdr = req.header(sse.SSE_KMS_KEY_ID_HEADER)
    ctx_hdr = req.header(sse.SSE_CONTEXT_HEADER)
    if value is None and key_hdr is None and ctx_hdr is None:
        return None
    if value is None or value.lower() == sse.SSE_KMS:
        if value is not None and value != sse.SSE_KMS:
            raise S3Error("InvalidEncryptionAlgorithmError")
        key_id: str | None = None
        if key_hdr is not None:
            if not key_hdr or key_hdr.strip() != key_hdr:
                raise S3Error(
                    "InvalidArgument",
                    "The KMS key id must not be empty or have leading or trailing spaces",
                )
            key_id = sse.normalize_kms_key_id(key_hdr)
        context = _parse_kms_context(ctx_hdr) if ctx_hdr is not None else None
        return SSEChoice(sse.DOMAIN_SSE_KMS, key_id, context)
    if value != sse.SSE_AES256:
        raise S3Error("InvalidEncryptionAlgorithmError")
    if key_hdr is not None or ctx_hdr is not None:
        raise S3Error(
            "InvalidArgument",
            "A KMS key id or encryption context requires x-amz-server-side-encryption: aws:kms",
        )
    return SSE_S3


async def decide_encryption(
    req: S3Request, bucket: str, *, inherit: SSEChoice | None = None
) -> SSEChoice | None:
    """How to encrypt a new object in ``bucket`` (None = not at all).

    Request headers first, then MINIO_SSE_AUTO_ENCRYPTION (SSE-S3), then the bucket default
    rule, then ``inherit`` (a copy of an encrypted source stays encrypted at rest). Raises
    501 when encryption is wanted but no KMS is configured.
    """
    choice = requested_sse(req)
    if choice is None and req.ctx.settings.auto_encryption:
        choice = SSE_S3
    if choice is None:
        from sealstore.s3.handlers.bucket_encryption import default_sse_rule

        rule = default_sse_rule(await req.ctx.storage.get_bucket_config(bucket, "encryption"))
        if rule is not None and rule.algorithm == sse.SSE_AES256:
            choice = SSE_S3
        elif rule is not None and rule.algorithm == sse.SSE_KMS:
            key_id = sse.normalize_kms_key_id(rule.kms_key_id) if rule.kms_key_id else None
            choice = SSEChoice(sse.DOMAIN_SSE_KMS, key_id)
    if choice is None:
        choice = inherit
    if choice is not None and req.ctx.kms is None:
        raise kms_not_configured()
    return choice


async def decide_sse(req: S3Request, bucket: str, *, inherit: bool = False) -> bool:
    """SSE-S3 yes/no for callers that support only SSE-S3 (multipart uploads).

    SSE-KMS requests (header or bucket default) get a clear NotImplemented there.
    """
    choice = await decide_encryption(req, bucket, inherit=SSE_S3 if inherit else None)
    if choice is not None and choice.kind != sse.DOMAIN_SSE_S3:
        raise S3Error(
            "NotImplemented",
            "SSE-KMS (aws:kms) is not supported for this operation yet; use AES256",
        )
    return choice is not None


def _reject_sse_on_read(req: S3Request) -> None:
    if req.header(sse.SSE_HEADER) is not None:
        raise S3Error(
            "InvalidArgument",
            "x-amz-server-side-encryption is only valid on requests that write objects",
        )
    _reject_ssec(req)


# ----------------------------------------------------------------------------- metadata


def _user_metadata(req: S3Request) -> dict[str, str]:
    meta = req.user_metadata()
    size = sum(len(k) - len("x-amz-meta-") + len(v) for k, v in meta.items())
    if size > MAX_USER_METADATA:
        raise S3Error("MetadataTooLarge")
    return meta


def _stored_headers(req: S3Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = req.header(name)
        if value is None:
            continue
        if name == "Content-Encoding":
            # aws-chunked is transport framing, never part of the object (S3 strips it).
            parts = [p.strip() for p in value.split(",") if p.strip().lower() != "aws-chunked"]
            value = ",".join(p for p in parts if p)
            if not value:
                continue
        out[name] = value
    return out


def _content_md5(req: S3Request) -> str | None:
    raw = req.header("Content-MD5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest") from None
    if len(digest) != 16:
        raise S3Error("InvalidDigest")
    return digest.hex()


def _sse_headers(resp: web.StreamResponse, kind: str | None, key_id: str | None = None) -> None:
    """Echo the SSE response headers (§6.2) for an object of the given kind."""
    if kind == sse.DOMAIN_SSE_S3:
        resp.headers[sse.SSE_HEADER] = sse.SSE_AES256
    elif kind == sse.DOMAIN_SSE_KMS:
        resp.headers[sse.SSE_HEADER] = sse.SSE_KMS
        if key_id:
            arn = key_id if key_id.startswith(sse.KMS_ARN_PREFIX) else sse.KMS_ARN_PREFIX + key_id
            resp.headers[sse.SSE_KMS_KEY_ID_HEADER] = arn


def _meta_sse_headers(resp: web.StreamResponse, internal: Mapping[str, str]) -> None:
    _sse_headers(resp, sse.sse_kind(internal), sse.kms_key_id_of(internal))


def _require_key(req: S3Request) -> tuple[str, str]:
    if not req.bucket or req.key is None:
        raise S3Error("InvalidRequest", "A bucket and key are required for this operation")
    return req.bucket, req.key


# ----------------------------------------------------------------------------- PutObject


async def put_object(req: S3Request) -> web.StreamResponse:
    """PUT /bucket/key: stream the body (optionally SSE-S3/SSE-KMS encrypted) into storage."""
    bucket, key = _require_key(req)
    _reject_ssec(req)
    expected_md5 = _content_md5(req)
    user_meta = _user_metadata(req)
    storage = req.ctx.storage
    writer = await storage.new_writer(bucket, key)  # validates bucket + key before KMS
    async with writer:
        choice = await decide_encryption(req, bucket)
        body = req.body()
        internal: dict[str, str] = {}
        if choice is not None:
            oek, internal = await new_key(req, bucket, key, choice)
            plain_size, _ = await sse.encrypt_stream(oek, body, writer)
        else:
            oek = None
            plain_size = 0
            async for chunk in body:
                plain_size += len(chunk)
                await writer.write(chunk)
        md5_hex = body.md5_hex or hashlib.md5(b"", usedforsecurity=False).hexdigest()
        if expected_md5 is not None and md5_hex != expected_md5:
            raise S3Error("BadDigest")
        if oek is not None:
            internal[sse.META_SEALED_ETAG] = sse.seal_etag_hex(oek, md5_hex)
            internal[sse.META_ACTUAL_SIZE] = str(plain_size)
        meta = ObjectMeta(
            bucket=bucket,
            key=key,
            size=plain_size,
            etag=md5_hex,
            content_type=req.header("Content-Type") or DEFAULT_CONTENT_TYPE,
            user_meta=user_meta,
            headers=_stored_headers(req),
            internal=internal,
        )
        await writer.commit(meta)
    resp = req.make_response(200)
    resp.headers["ETag"] = f'"{md5_hex}"'
    for name, value in (body.checksums or {}).items():
        resp.headers[name] = value
    _meta_sse_headers(resp, internal)
    return resp


async def new_key(
    req: S3Request, bucket: str, key: str, choice: SSEChoice | None = None
) -> tuple[bytes, dict[str, str]]:
    """KMS data key + sealed OEK, counting the KMS call and dropping readiness on outage."""
    kms = req.ctx.kms
    if kms is None:
        raise kms_not_configured()
    async with _kms_call(req, "generate"):
        if choice is not None and choice.kind == sse.DOMAIN_SSE_KMS:
            return await sse.new_kms_object_key(
                kms, choice.key_id or kms.default_key_id, bucket, key, choice.context
            )
        return await sse.new_object_key(kms, bucket, key)


async def open_key(req: S3Request, meta: ObjectMeta) -> bytes:
    """Recover the OEK of an encrypted object (one KMS decrypt)."""
    kms = req.ctx.kms
    if kms is None:
        raise S3Error(
            "NotImplemented",
            "The object is encrypted but no KMS is configured on this server",
        )
    async with _kms_call(req, "decrypt"):
        return await sse.open_object_key(kms, meta.internal, meta.bucket, meta.key)


@contextlib.asynccontextmanager
async def _kms_call(req: S3Request, op: str) -> AsyncIterator[None]:
    """Count one KMS call in the metrics; an outage also drops readiness at once, so load
    balancers stop sending SSE traffic before the next background self-test notices."""
    from sealstore.admin import mark_kms_failed
    from sealstore.kms.base import KMSUnavailableError

    try:
        yield
    except KMSUnavailableError as exc:
        req.ctx.metrics.record_kms(op, "error")
        mark_kms_failed(req.ctx, str(exc))
        raise
    except Exception:
        req.ctx.metrics.record_kms(op, "error")
        raise
    req.ctx.metrics.record_kms(op, "ok")


# Former private names, still imported by the multipart handlers.
_new_key = new_key
_open_key = open_key


# ----------------------------------------------------------------------------- reading


def stored_parts(meta: ObjectMeta) -> list[sse.StoredPart]:
    """The DARE streams of an encrypted object (one per multipart part, else one)."""
    if meta.parts:
        return [sse.StoredPart(p.number, p.size) for p in meta.parts]
    return [sse.StoredPart(None, meta.size)]


def plaintext_stream(
    req: S3Request, meta: ObjectMeta, oek: bytes | None, offset: int, length: int
) -> AsyncIterator[bytes]:
    """Plaintext bytes [offset, offset+length) of an object (decrypting when ``oek``)."""
    storage = req.ctx.storage
    if oek is None:
        return storage.read(meta, offset, length)

    def read(
        stored_offset: int, stored_length: int, transform: Callable[[bytes], bytes]
    ) -> AsyncIterator[bytes]:
        # Each chunk is decrypted in the storage thread that read it: one thread hop per
        # ~1 MiB instead of two (see sse.DECRYPT_READ_SIZE for why the size is not aligned).
        return storage.read(
            meta,
            stored_offset,
            stored_length,
            chunk_size=sse.DECRYPT_READ_SIZE,
            transform=transform,
        )

    return sse.decrypt_range(oek, stored_parts(meta), offset, length, read)


@dataclass(frozen=True)
class ByteRange:
    """A satisfiable single byte range [start, start+length)."""

    start: int
    length: int


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Parse a single ``bytes=`` range; None = whole object; raises 416 when unsatisfiable.

    Syntactically invalid or multi-range headers are ignored (the whole object is sent),
    which is what S3 does.
    """
    if header is None:
        return None
    value = header.strip()
    if not value.startswith("bytes="):
        return None
    spec = value[len("bytes=") :].strip()
    if "," in spec or "-" not in spec:
        return None
    first, _, last = spec.partition("-")
    first, last = first.strip(), last.strip()
    if first == "":
        if not last.isdigit():
            return None
        n = int(last)
        if n == 0:
            raise _invalid_range(size)
        n = min(n, size)
        if size == 0:
            raise _invalid_range(size)
        return ByteRange(size - n, n)
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _invalid_range(size)
    end = min(end, size - 1)
    return ByteRange(start, end - start + 1)


def _invalid_range(size: int) -> S3Error:
    return S3Error("InvalidRange", headers={"Content-Range": f"bytes */{size}"})


def _parse_http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _etag_matches(header: str, etag: str) -> bool:
    want = normalize_etag(etag)
    for candidate in header.split(","):
        c = candidate.strip()
        if c == "*" or normalize_etag(c.removeprefix("W/")) == want:
            return True
    return False


def check_conditions(
    headers: Mapping[str, str], meta: ObjectMeta, *, prefix: str = "", copy: bool = False
) -> int | None:
    """Evaluate If-* preconditions (RFC 7232 order, S3 semantics).

    Returns None to proceed, 304 (not modified) or 412 (precondition failed). For copy
    sources (``prefix="x-amz-copy-source-"``) every failure is 412.
    """
    mtime = datetime.fromtimestamp(int(meta.last_modified), tz=UTC)
    if_match = headers.get(prefix + "if-match")
    if_none_match = headers.get(prefix + "if-none-match")
    if_unmod = _parse_http_date(headers.get(prefix + "if-unmodified-since"))
    if_mod = _parse_http_date(headers.get(prefix + "if-modified-since"))
    if if_match is not None:
        if not _etag_matches(if_match, meta.etag):
            return 412
    elif if_unmod is not None and mtime > if_unmod:
        return 412
    not_modified = 412 if copy else 304
    if if_none_match is not None:
        if _etag_matches(if_none_match, meta.etag):
            return not_modified
    elif if_mod is not None and mtime <= if_mod:
        return not_modified
    return None


def _object_headers(resp: web.StreamResponse, meta: ObjectMeta) -> None:
    resp.headers["ETag"] = f'"{meta.etag}"'
    resp.headers["Last-Modified"] = http_date(meta.last_modified)
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["Content-Type"] = meta.content_type or DEFAULT_CONTENT_TYPE
    for name, value in meta.headers.items():
        resp.headers[name] = value
    for name, value in sse.strip_internal(meta.user_meta).items():
        resp.headers[name] = value
    if meta.parts:
        resp.headers["x-amz-mp-parts-count"] = str(len(meta.parts))
    _meta_sse_headers(resp, meta.internal)


def _not_modified(req: S3Request, meta: ObjectMeta, status: int) -> web.StreamResponse:
    if status == 412:
        raise S3Error("PreconditionFailed")
    resp = req.make_response(304)
    resp.headers["ETag"] = f'"{meta.etag}"'
    resp.headers["Last-Modified"] = http_date(meta.last_modified)
    return resp


def _part_range(req: S3Request, meta: ObjectMeta) -> ByteRange | None:
    raw = req.query.get("partNumber")
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 10000:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000")
    if req.header("Range") is not None:
        raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber")
    n = int(raw)
    if not meta.parts:
        if n != 1:
            raise _invalid_range(meta.size)
        return ByteRange(0, meta.size)
    offset = 0
    for p in meta.parts:
        if p.number == n:
            return ByteRange(offset, p.size)
        offset += p.size
    raise _invalid_range(meta.size)


async def _get_or_head(req: S3Request, head: bool) -> web.StreamResponse:
    bucket, key = _require_key(req)
    _reject_sse_on_read(req)
    meta = await req.ctx.storage.head(bucket, key)
    cond = check_conditions(req.headers, meta)
    if cond is not None:
        return _not_modified(req, meta, cond)
    encrypted = sse.is_encrypted(meta.internal)
    if sse.sse_kind(meta.internal) == "SSE-C":
        raise S3Error("NotImplemented", "The object uses SSE-C, which this server does not offer")
    rng = _part_range(req, meta)
    partial = rng is not None
    if rng is None:
        rng = parse_range(req.header("Range"), meta.size)
        partial = rng is not None
    if rng is None:
        rng = ByteRange(0, meta.size)
    status = 206 if partial and (req.query.get("partNumber") is None or meta.parts) else 200
    resp = web.StreamResponse(status=status)
    _object_headers(resp, meta)
    for param, header in RESPONSE_OVERRIDES.items():
        value = req.query.get(param)
        if value is not None:
            resp.headers[header] = value
    if status == 206:
        end = rng.start + rng.length - 1
        resp.headers["Content-Range"] = f"bytes {rng.start}-{end}/{meta.size}"
    resp.content_length = rng.length
    if head:
        return await req.start_stream(resp)
    oek = await open_key(req, meta) if encrypted else None
    stream = plaintext_stream(req, meta, oek, rng.start, rng.length)
    # Pull the first chunk before sending headers: a vanished file or tampered first
    # package still becomes a proper S3 error instead of a cut connection.
    first = b""
    if rng.length:
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            first = b""
    await req.start_stream(resp)
    if first:
        await resp.write(first)
    async for chunk in stream:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def get_object(req: S3Request) -> web.StreamResponse:
    """GET /bucket/key: Range, conditionals, partNumber, response-* overrides."""
    return await _get_or_head(req, head=False)


async def head_object(req: S3Request) -> web.StreamResponse:
    """HEAD /bucket/key: the GET headers without a body (no KMS call needed)."""
    return await _get_or_head(req, head=True)


async def delete_object(req: S3Request) -> web.StreamResponse:
    """DELETE /bucket/key: 204 whether or not the key existed (S3 semantics)."""
    bucket, key = _require_key(req)
    with contextlib.suppress(NoSuchKey):
        await req.ctx.storage.delete(bucket, key)
    return req.make_response(204)


# ----------------------------------------------------------------------------- CopyObject


def parse_copy_source(value: str) -> tuple[str, str]:
    """Parse ``x-amz-copy-source`` (``[/]bucket/key[?versionId=...]``, URL-encoded)."""
    raw = value.strip()
    path, _, query = raw.partition("?")
    if query:
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        version = params.get("versionId")
        if version is not None and version != "null":
            raise S3Error("NoSuchVersion")
    decoded = unquote(path)
    decoded = decoded.removeprefix("/")
    bucket, sep, key = decoded.partition("/")
    if not bucket or not sep or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key")
    return bucket, key


async def copy_object(req: S3Request) -> web.StreamResponse:
    """PUT /bucket/key with x-amz-copy-source: server-side copy, re-encrypting as needed.

    Sealed keys are bound to bucket/key, so an encrypted destination always gets a new OEK
    sealed for the new path; the data is decrypted and re-encrypted in a stream.
    """
    bucket, key = _require_key(req)
    _reject_ssec(req)
    _reject_ssec(req, copy_source=True)
    src_bucket, src_key = parse_copy_source(req.header("x-amz-copy-source") or "")
    directive = (req.header("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.")
    storage = req.ctx.storage
    src = await storage.head(src_bucket, src_key)
    cond = check_conditions(req.headers, src, prefix="x-amz-copy-source-", copy=True)
    if cond is not None:
        raise S3Error("PreconditionFailed")
    src_encrypted = sse.is_encrypted(src.internal)
    src_kind = sse.sse_kind(src.internal)
    if src_kind == "SSE-C":
        raise S3Error("NotImplemented", "The source uses SSE-C, which this server does not offer")
    inherit: SSEChoice | None = None
    if src_kind == sse.DOMAIN_SSE_S3:
        inherit = SSE_S3
    elif src_kind == sse.DOMAIN_SSE_KMS:
        inherit = SSEChoice(
            sse.DOMAIN_SSE_KMS,
            sse.kms_key_id_of(src.internal),
            sse.stored_client_context(src.internal) or None,
        )
    sse_header = requested_sse(req) is not None
    if (
        src_bucket == bucket
        and src_key == key
        and directive != "REPLACE"
        and not sse_header
        and not (req.ctx.settings.auto_encryption and not src_encrypted)
    ):
        raise S3Error("InvalidRequest", COPY_SELF_ERROR)
    if directive == "REPLACE":
        user_meta = _user_metadata(req)
        headers = _stored_headers(req)
        content_type = req.header("Content-Type") or DEFAULT_CONTENT_TYPE
    else:
        user_meta = dict(src.user_meta)
        headers = dict(src.headers)
        content_type = src.content_type
    writer = await storage.new_writer(bucket, key)
    async with writer:
        choice = await decide_encryption(req, bucket, inherit=inherit)
        src_oek = await open_key(req, src) if src_encrypted else None
        internal: dict[str, str] = {}
        dst_oek: bytes | None = None
        if choice is not None:
            dst_oek, internal = await new_key(req, bucket, key, choice)
        md5 = hashlib.md5(usedforsecurity=False)

        async def source() -> AsyncIterator[bytes]:
            async for chunk in plaintext_stream(req, src, src_oek, 0, src.size):
                md5.update(chunk)
                yield chunk

        if dst_oek is not None:
            plain_size, _ = await sse.encrypt_stream(dst_oek, source(), writer)
        else:
            plain_size = 0
            async for chunk in source():
                plain_size += len(chunk)
                await writer.write(chunk)
        md5_hex = md5.hexdigest()
        if dst_oek is not None:
            internal[sse.META_SEALED_ETAG] = sse.seal_etag_hex(dst_oek, md5_hex)
            internal[sse.META_ACTUAL_SIZE] = str(plain_size)
        stored = await writer.commit(
            ObjectMeta(
                bucket=bucket,
                key=key,
                size=plain_size,
                etag=md5_hex,
                content_type=content_type,
                user_meta=user_meta,
                headers=headers,
                internal=internal,
            )
        )
    body = document(
        "CopyObjectResult",
        [tag("LastModified", iso8601(stored.last_modified)), tag("ETag", f'"{md5_hex}"')],
    )
    resp = req.xml_response(body)
    _meta_sse_headers(resp, internal)
    return resp


def route_put(req: S3Request) -> bool:
    """True when a PUT on an object is a CopyObject (has x-amz-copy-source)."""
    return req.header("x-amz-copy-source") is not None
