"""Multipart upload: Create, UploadPart, Complete, Abort, ListParts, ListMultipartUploads.

Encryption follows MinIO's layout (minio-sse-format.md §4.2): CreateMultipartUpload seals ONE
object key (OEK) into the upload's metadata with the ``X-Minio-Internal-Encrypted-Multipart``
marker; every part n is an independent DARE 2.0 stream under HMAC(OEK, uint32_le(n)) whose
nonce is random (never MinIO's deterministic one, pitfall P3: re-uploading a part number must not
reuse a nonce under the same key). A part's ETag is the MD5 of its plaintext, so the final
``md5(concat(part md5s))-N`` ETag is exactly what S3 gives and clients can verify it.

Storage never copies part data on completion; the object row references the part files in
order, which is also what the SSE read path needs (per-part keys, plaintext part sizes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from sealstore import sse
from sealstore.s3.context import S3Request, iso8601
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.delete_objects import read_xml_body
from sealstore.s3.handlers.listing import owner_xml, request_owner, s3_url_encode
from sealstore.s3.handlers.object import (
    DEFAULT_CONTENT_TYPE,
    decide_encryption,
    new_key,
    open_key,
)
from sealstore.s3.handlers.object import _stored_headers as stored_headers
from sealstore.s3.handlers.object import _user_metadata as user_metadata
from sealstore.s3.xml import MalformedXMLError, child_text, document, local_name, parse, tag, wrap
from sealstore.storage import base as st

__all__ = [
    "MAX_PART_SIZE",
    "CompletePart",
    "abort_multipart_upload",
    "complete_multipart_upload",
    "create_multipart_upload",
    "list_multipart_uploads",
    "list_parts",
    "multipart_etag",
    "parse_complete_request",
    "parse_part_number",
    "upload_part",
]

MAX_PART_SIZE = 5 * 1024**3  # S3: a part is at most 5 GiB
MAX_PARTS_LISTED = 1000
# Completion normally takes milliseconds (no data is copied); only when it is slower does the
# handler commit to a 200 and keep the connection alive with whitespace, as S3 does.
KEEPALIVE_AFTER = 2.0
KEEPALIVE_EVERY = 5.0


@dataclass(frozen=True)
class CompletePart:
    """One ``<Part>`` of a CompleteMultipartUpload body."""

    number: int
    etag: str  # normalised: unquoted, lower-case


# --------------------------------------------------------------------------- pure helpers


def parse_part_number(raw: str | None) -> int:
    """``partNumber`` must be an integer 1..10000 (InvalidArgument otherwise, as S3)."""
    if raw is None or not raw.isdigit() or len(raw) > 5 or not 1 <= int(raw) <= st.MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {st.MAX_PART_NUMBER}, inclusive",
        )
    return int(raw)


def parse_complete_request(data: bytes) -> list[CompletePart]:
    """Parse ``<CompleteMultipartUpload>`` strictly; enforce ascending part numbers.

    Structure errors are MalformedXML; a list that is not strictly ascending is
    InvalidPartOrder (checked here, before any storage access, like S3).
    """
    root = parse(data, "CompleteMultipartUpload")
    parts: list[CompletePart] = []
    for el in root:
        if local_name(el) != "Part":
            raise MalformedXMLError(f"unexpected element {local_name(el)}")
        number_text = child_text(el, "PartNumber")
        etag = child_text(el, "ETag")
        if number_text is None or etag is None:
            raise MalformedXMLError("each Part needs a PartNumber and an ETag")
        number_text = number_text.strip()
        if not number_text.isdigit() or len(number_text) > 5:
            raise MalformedXMLError(f"PartNumber {number_text!r} is not a number")
        number = int(number_text)
        if not 1 <= number <= st.MAX_PART_NUMBER:
            raise S3Error(
                "InvalidArgument",
                f"Part number must be an integer between 1 and {st.MAX_PART_NUMBER}, inclusive",
            )
        parts.append(CompletePart(number, st.normalize_etag(etag)))
    if not parts:
        raise MalformedXMLError("CompleteMultipartUpload lists no Part")
    for prev, cur in itertools.pairwise(parts):
        if cur.number <= prev.number:
            raise S3Error("InvalidPartOrder")
    return parts


def multipart_etag(part_etags: list[str]) -> str:
    """S3's multipart ETag: hex(md5(concat of binary part MD5s)) + ``-N``.

    A listed ETag that is not 32 hex characters cannot belong to any part (parts always carry
    their plaintext MD5), so it is InvalidPart.
    """
    digest = hashlib.md5(usedforsecurity=False)
    for etag in part_etags:
        try:
            raw = bytes.fromhex(etag)
        except ValueError:
            raise S3Error("InvalidPart") from None
        if len(raw) != 16:
            raise S3Error("InvalidPart")
        digest.update(raw)
    return f"{digest.hexdigest()}-{len(part_etags)}"


def _parse_int(raw: str | None, name: str, default: int, maximum: int) -> int:
    """Non-negative integer query parameter, capped like S3 caps max-* values."""
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 10:
        raise S3Error("InvalidArgument", f"{name} must be a non-negative integer")
    return min(int(raw), maximum)


def render_initiate(bucket: str, key: str, upload_id: str) -> bytes:
    """``InitiateMultipartUploadResult``."""
    return document(
        "InitiateMultipartUploadResult",
        [tag("Bucket", bucket), tag("Key", key), tag("UploadId", upload_id)],
    )


def render_complete(location: str, bucket: str, key: str, etag: str) -> bytes:
    """``CompleteMultipartUploadResult``."""
    return document(
        "CompleteMultipartUploadResult",
        [
            tag("Location", location),
            tag("Bucket", bucket),
            tag("Key", key),
            tag("ETag", f'"{etag}"'),
        ],
    )


def render_list_parts(
    upload: st.UploadMeta,
    parts: list[st.PartMeta],
    *,
    marker: int,
    max_parts: int,
    truncated: bool,
    access_key: str,
) -> bytes:
    """``ListPartsResult``; NextPartNumberMarker is the last part number returned."""
    owner = owner_xml(access_key)
    rows = [
        wrap(
            "Part",
            [
                tag("PartNumber", p.number),
                tag("LastModified", iso8601(p.last_modified)),
                tag("ETag", f'"{p.etag}"'),
                tag("Size", p.size),
            ],
        )
        for p in parts
    ]
    head = [
        tag("Bucket", upload.bucket),
        tag("Key", upload.key),
        tag("UploadId", upload.upload_id),
        owner.replace("<Owner>", "<Initiator>").replace("</Owner>", "</Initiator>"),
        owner,
        tag("StorageClass", "STANDARD"),
        tag("PartNumberMarker", marker),
        tag("NextPartNumberMarker", parts[-1].number if parts else marker),
        tag("MaxParts", max_parts),
        tag("IsTruncated", truncated),
    ]
    return document("ListPartsResult", head + rows)


@dataclass(frozen=True)
class UploadsQuery:
    """Validated ListMultipartUploads parameters."""

    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    upload_id_marker: str = ""
    max_uploads: int = 1000
    encoding_url: bool = False


def parse_uploads_query(query: Mapping[str, str]) -> UploadsQuery:
    """Validate ListMultipartUploads query parameters."""
    encoding = query.get("encoding-type")
    if encoding not in (None, "", "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    key_marker = query.get("key-marker", "")
    upload_id_marker = query.get("upload-id-marker", "")
    if upload_id_marker and not key_marker:
        # S3 ignores upload-id-marker without key-marker.
        upload_id_marker = ""
    return UploadsQuery(
        prefix=query.get("prefix", ""),
        delimiter=query.get("delimiter", ""),
        key_marker=key_marker,
        upload_id_marker=upload_id_marker,
        max_uploads=_parse_int(query.get("max-uploads"), "max-uploads", 1000, 1000),
        encoding_url=encoding == "url",
    )


def group_uploads(
    uploads: list[st.UploadMeta], prefix: str, delimiter: str
) -> tuple[list[st.UploadMeta], list[str]]:
    """Roll uploads whose key continues past ``delimiter`` after ``prefix`` into prefixes."""
    if not delimiter:
        return uploads, []
    kept: list[st.UploadMeta] = []
    prefixes: list[str] = []
    for u in uploads:
        rest = u.key[len(prefix) :]
        idx = rest.find(delimiter)
        if idx >= 0:
            cp = prefix + rest[: idx + len(delimiter)]
            if not prefixes or prefixes[-1] != cp:
                prefixes.append(cp)
        else:
            kept.append(u)
    return kept, prefixes


def render_list_uploads(
    bucket: str,
    q: UploadsQuery,
    uploads: list[st.UploadMeta],
    prefixes: list[str],
    truncated: bool,
    next_key: str,
    next_upload_id: str,
    access_key: str,
) -> bytes:
    """``ListMultipartUploadsResult``."""

    def enc(v: str) -> str:
        return s3_url_encode(v) if q.encoding_url else v

    owner = owner_xml(access_key)
    initiator = owner.replace("<Owner>", "<Initiator>").replace("</Owner>", "</Initiator>")
    head = [
        tag("Bucket", bucket),
        tag("KeyMarker", enc(q.key_marker)),
        tag("UploadIdMarker", q.upload_id_marker),
        tag("NextKeyMarker", enc(next_key)),
        tag("NextUploadIdMarker", next_upload_id),
        tag("Delimiter", enc(q.delimiter) if q.delimiter else None),
        tag("Prefix", enc(q.prefix)),
        tag("MaxUploads", q.max_uploads),
        tag("IsTruncated", truncated),
        tag("EncodingType", "url" if q.encoding_url else None),
    ]
    rows = [
        wrap(
            "Upload",
            [
                tag("Key", enc(u.key)),
                tag("UploadId", u.upload_id),
                initiator,
                owner,
                tag("StorageClass", "STANDARD"),
                tag("Initiated", iso8601(u.initiated)),
            ],
        )
        for u in uploads
    ]
    rows.extend(wrap("CommonPrefixes", tag("Prefix", enc(p))) for p in prefixes)
    return document("ListMultipartUploadsResult", head + rows)


# --------------------------------------------------------------------------- error mapping

_STORAGE_CODES: dict[type[Exception], str] = {
    st.NoSuchBucket: "NoSuchBucket",
    st.NoSuchUpload: "NoSuchUpload",
    st.NoSuchKey: "NoSuchKey",
    st.InvalidPart: "InvalidPart",
    st.InvalidPartOrder: "InvalidPartOrder",
    st.EntityTooSmall: "EntityTooSmall",
}


@contextlib.contextmanager
def storage_errors(resource: str) -> Iterator[None]:
    """Translate storage exceptions into the S3 errors clients expect from these calls."""
    try:
        yield
    except st.InvalidObjectName as exc:
        raise S3Error("InvalidArgument", f"Invalid object name: {exc.reason}") from None
    except st.StorageError as exc:
        code = next((c for t, c in _STORAGE_CODES.items() if isinstance(exc, t)), None)
        if code is None:
            raise
        raise S3Error(code, resource=resource) from None


# --------------------------------------------------------------------------- SSE decision


def _reject_ssec(req: S3Request) -> None:
    """SSE-C is not offered; say so clearly instead of storing the object unencrypted."""
    for name in sse.SSEC_HEADERS:
        if req.header(name) is not None:
            raise S3Error(
                "NotImplemented", "SSE-C (customer-provided keys) is not supported by this server"
            )


def echo_sse(req: S3Request, internal: Mapping[str, str]) -> None:
    """Echo the SSE response headers of an upload/object (SSE-S3 or SSE-KMS, §6.2)."""
    kind = sse.sse_kind(internal)
    if kind == sse.DOMAIN_SSE_S3:
        req.response_headers[sse.SSE_HEADER] = sse.SSE_AES256
    elif kind == sse.DOMAIN_SSE_KMS:
        req.response_headers[sse.SSE_HEADER] = sse.SSE_KMS
        key_id = sse.kms_key_id_of(internal)
        if key_id:
            if not key_id.startswith(sse.KMS_ARN_PREFIX):
                key_id = sse.KMS_ARN_PREFIX + key_id
            req.response_headers[sse.SSE_KMS_KEY_ID_HEADER] = key_id


def _is_encrypted_upload(upload: st.UploadMeta) -> bool:
    return sse.META_ENCRYPTED_MULTIPART in upload.meta.internal or sse.is_encrypted(
        upload.meta.internal
    )


def _bucket_key(req: S3Request) -> tuple[str, str]:
    if not req.bucket or not req.key:
        raise S3Error("InvalidRequest", "A bucket and an object key are required")
    return req.bucket, req.key


async def _get_upload(req: S3Request, bucket: str, key: str) -> st.UploadMeta:
    upload_id = req.query.get("uploadId", "")
    if not upload_id:
        raise S3Error("NoSuchUpload", resource=f"/{bucket}/{key}")
    with storage_errors(f"/{bucket}/{key}"):
        return await req.ctx.storage.get_upload(bucket, key, upload_id)


# --------------------------------------------------------------------------- handlers


async def create_multipart_upload(req: S3Request) -> web.StreamResponse:
    """POST /bucket/key?uploads."""
    bucket, key = _bucket_key(req)
    storage = req.ctx.storage
    with storage_errors(bucket):
        st.validate_object_key(key)
        if not await storage.bucket_exists(bucket):
            raise S3Error("NoSuchBucket", resource=bucket)
    _reject_ssec(req)
    # Metadata is validated and stored exactly as PutObject does (size limit, header set),
    # before any KMS call is spent on a request that would be refused anyway.
    user_meta = user_metadata(req)
    headers = stored_headers(req)
    # Same precedence as PutObject (header, auto-encryption, bucket default), same errors.
    choice = await decide_encryption(req, bucket)
    internal: dict[str, str] = {}
    if choice is not None:
        _oek, internal = await new_key(req, bucket, key, choice)
        internal[sse.META_ENCRYPTED_MULTIPART] = ""
    template = st.ObjectMeta(
        bucket=bucket,
        key=key,
        content_type=req.header("Content-Type") or DEFAULT_CONTENT_TYPE,
        user_meta=user_meta,
        headers=headers,
        internal=internal,
    )
    with storage_errors(f"/{bucket}/{key}"):
        upload = await storage.create_upload(bucket, key, template)
    echo_sse(req, internal)
    return req.xml_response(render_initiate(bucket, key, upload.upload_id))


async def _copy_into(writer: Any, source: AsyncIterable[bytes]) -> None:
    async for chunk in source:
        if chunk:
            await writer.write(chunk)


async def _bounded(source: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass chunks through, failing with EntityTooLarge once ``limit`` bytes are exceeded."""
    seen = 0
    async for chunk in source:
        seen += len(chunk)
        if seen > limit:
            raise S3Error("EntityTooLarge", f"A part may be at most {limit} bytes")
        yield chunk


def _check_content_length(req: S3Request) -> None:
    declared = req.header("x-amz-decoded-content-length") or req.header("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_PART_SIZE:
        raise S3Error("EntityTooLarge", f"A part may be at most {MAX_PART_SIZE} bytes")


async def upload_part(req: S3Request) -> web.StreamResponse:
    """PUT /bucket/key?partNumber=N&uploadId=ID: stream (and encrypt) one part."""
    bucket, key = _bucket_key(req)
    number = parse_part_number(req.query.get("partNumber"))
    if req.header("x-amz-copy-source") is not None:
        return await upload_part_copy(req)  # the router sends both to UploadPart
    _reject_ssec(req)
    _check_content_length(req)
    upload = await _get_upload(req, bucket, key)
    encrypted = _is_encrypted_upload(upload)
    oek: bytes | None = None
    if encrypted:
        oek = await open_key(req, upload.meta)
    body = req.body()
    storage = req.ctx.storage
    with storage_errors(f"/{bucket}/{key}"):
        writer = await storage.new_part_writer(upload, number)
        try:
            source = _bounded(body, MAX_PART_SIZE)
            if oek is not None:
                # Own DARE stream per part: key HMAC(OEK, n), random nonce, seq from 0.
                await sse.encrypt_part(oek, number, source, writer)
            else:
                await _copy_into(writer, source)
            if body.md5_hex is None:  # the body always computes it; never store a bad ETag
                raise S3Error("InternalError", "The part's MD5 was not computed")
            part = await writer.commit(body.md5_hex, body.size, {})
        except BaseException:
            await writer.abort()
            raise
    req.response_headers["ETag"] = f'"{part.etag}"'
    for name, value in (getattr(body, "checksums", None) or {}).items():
        req.response_headers[name] = value
    echo_sse(req, upload.meta.internal)
    return req.make_response(200)


def parse_copy_range(value: str | None, size: int) -> tuple[int, int]:
    """``x-amz-copy-source-range: bytes=first-last`` -> (offset, length) within ``size``.

    Unlike GET ranges, S3 accepts only the explicit ``first-last`` form here, and a range
    outside the source is an error rather than being clipped.
    """
    if value is None:
        return 0, size
    spec = value.strip()
    if not spec.startswith("bytes="):
        raise S3Error(
            "InvalidArgument", "The x-amz-copy-source-range value must be bytes=first-last"
        )
    first_s, sep, last_s = spec[len("bytes=") :].partition("-")
    if not sep or not first_s.isdigit() or not last_s.isdigit():
        raise S3Error(
            "InvalidArgument", "The x-amz-copy-source-range value must be bytes=first-last"
        )
    first, last = int(first_s), int(last_s)
    if first > last or last >= size:
        raise S3Error(
            "InvalidArgument",
            f"Range specified is not valid for source object of size: {size}",
        )
    return first, last - first + 1


async def upload_part_copy(req: S3Request) -> web.StreamResponse:
    """PUT ...?partNumber&uploadId with x-amz-copy-source: a part from (a range of) an object.

    The source is decrypted if needed (its sealed key is bound to its own path) and the part
    is encrypted under the destination upload's part key, exactly like an uploaded part.
    """
    from sealstore.s3.handlers.object import check_conditions, parse_copy_source, plaintext_stream

    bucket, key = _bucket_key(req)
    number = parse_part_number(req.query.get("partNumber"))
    _reject_ssec(req)
    for name in sse.SSEC_COPY_HEADERS:
        if req.header(name) is not None:
            raise S3Error(
                "NotImplemented", "SSE-C (customer-provided keys) is not supported by this server"
            )
    src_bucket, src_key = parse_copy_source(req.header("x-amz-copy-source") or "")
    upload = await _get_upload(req, bucket, key)
    storage = req.ctx.storage
    src = await storage.head(src_bucket, src_key)
    if check_conditions(req.headers, src, prefix="x-amz-copy-source-", copy=True) is not None:
        raise S3Error("PreconditionFailed")
    offset, length = parse_copy_range(req.header("x-amz-copy-source-range"), src.size)
    if length > MAX_PART_SIZE:
        raise S3Error("EntityTooLarge", f"A part may be at most {MAX_PART_SIZE} bytes")
    src_oek: bytes | None = None
    if sse.is_encrypted(src.internal):
        if sse.sse_kind(src.internal) not in (sse.DOMAIN_SSE_S3, sse.DOMAIN_SSE_KMS):
            raise S3Error("NotImplemented", "The source uses an encryption type this server lacks")
        src_oek = await open_key(req, src)
    encrypted = _is_encrypted_upload(upload)
    dst_oek = await open_key(req, upload.meta) if encrypted else None
    md5 = hashlib.md5(usedforsecurity=False)
    copied = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal copied
        async for chunk in plaintext_stream(req, src, src_oek, offset, length):
            md5.update(chunk)
            copied += len(chunk)
            yield chunk

    with storage_errors(f"/{bucket}/{key}"):
        writer = await storage.new_part_writer(upload, number)
        try:
            if dst_oek is not None:
                await sse.encrypt_part(dst_oek, number, source(), writer)
            else:
                await _copy_into(writer, source())
            if copied != length:
                raise S3Error("InternalError", "The copy source ended early")
            part = await writer.commit(md5.hexdigest(), copied, {})
        except BaseException:
            await writer.abort()
            raise
    echo_sse(req, upload.meta.internal)
    body = document(
        "CopyPartResult",
        [tag("LastModified", iso8601(part.last_modified)), tag("ETag", f'"{part.etag}"')],
    )
    return req.xml_response(body)


async def _complete(req: S3Request, upload: st.UploadMeta, parts: list[CompletePart]) -> Any:
    """Validate and publish the object; returns the committed ObjectMeta."""
    etag = multipart_etag([p.etag for p in parts])
    meta = replace(upload.meta, etag=etag, parts=[], files=[])
    with storage_errors(f"/{upload.bucket}/{upload.key}"):
        return await req.ctx.storage.complete_upload(
            upload, [(p.number, p.etag) for p in parts], meta
        )


_RUNNING: set[asyncio.Task[Any]] = set()


def _finished(task: asyncio.Task[Any]) -> None:
    """Drop the strong reference; mark an exception nobody awaited as retrieved."""
    _RUNNING.discard(task)
    if not task.cancelled():
        task.exception()


def _location(req: S3Request, bucket: str, key: str) -> str:
    host = req.header("Host") or "localhost"
    scheme = req.http.scheme
    return f"{scheme}://{host}/{bucket}/{s3_url_encode(key)}"


async def complete_multipart_upload(req: S3Request) -> web.StreamResponse:
    """POST /bucket/key?uploadId=ID.

    The part list is parsed and checked before anything is touched. If publishing takes
    longer than ``KEEPALIVE_AFTER`` seconds, a 200 is committed and whitespace is sent every
    few seconds so proxies and clients do not time out; the result (or an ``<Error>``
    document, as S3 does) follows in the same body.
    """
    bucket, key = _bucket_key(req)
    upload = await _get_upload(req, bucket, key)
    parts = parse_complete_request(await read_xml_body(req))
    # The completion is a task of its own so that a client hanging up mid-wait cannot
    # cancel it halfway (storage publishes atomically either way); keep a strong reference
    # until it ends, since the event loop only holds tasks weakly.
    task = asyncio.ensure_future(_complete(req, upload, parts))
    _RUNNING.add(task)
    task.add_done_callback(_finished)
    done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_AFTER)
    echo_sse(req, upload.meta.internal)
    if done:
        obj = task.result()
        req.response_headers["ETag"] = f'"{obj.etag}"'
        return req.xml_response(render_complete(_location(req, bucket, key), bucket, key, obj.etag))
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/xml"
    await req.start_stream(resp)
    await resp.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    while True:
        done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_EVERY)
        if done:
            break
        await resp.write(b" ")
    try:
        obj = task.result()
    except Exception as exc:
        from sealstore.s3.app import map_exception  # lazy: app imports handlers lazily too

        err = map_exception(exc)
        if err is None:
            req.ctx.logger.error(
                "complete_multipart_upload failed",
                extra={"request_id": req.request_id},
                exc_info=exc,
            )
            err = S3Error("InternalError")
        body = err.to_xml(f"/{bucket}/{key}", req.request_id)
    else:
        body = render_complete(_location(req, bucket, key), bucket, key, obj.etag)
    await resp.write(body.split(b"\n", 1)[1] if body.startswith(b"<?xml") else body)
    await resp.write_eof()
    return resp


async def abort_multipart_upload(req: S3Request) -> web.StreamResponse:
    """DELETE /bucket/key?uploadId=ID -> 204."""
    bucket, key = _bucket_key(req)
    upload = await _get_upload(req, bucket, key)
    with storage_errors(f"/{bucket}/{key}"):
        await req.ctx.storage.abort_upload(upload)
    return req.make_response(204)


async def list_parts(req: S3Request) -> web.StreamResponse:
    """GET /bucket/key?uploadId=ID[&part-number-marker&max-parts]."""
    bucket, key = _bucket_key(req)
    upload = await _get_upload(req, bucket, key)
    marker = _parse_int(req.query.get("part-number-marker"), "part-number-marker", 0, 10**9)
    max_parts = _parse_int(req.query.get("max-parts"), "max-parts", 1000, MAX_PARTS_LISTED)
    parts: list[st.PartMeta] = []
    truncated = False
    if max_parts > 0:
        with storage_errors(f"/{bucket}/{key}"):
            parts, truncated = await req.ctx.storage.list_parts(
                upload, marker=marker, max_parts=max_parts
            )
    body = render_list_parts(
        upload,
        parts,
        marker=marker,
        max_parts=max_parts,
        truncated=truncated,
        access_key=request_owner(req),
    )
    return req.xml_response(body)


async def list_multipart_uploads(req: S3Request) -> web.StreamResponse:
    """GET /bucket?uploads."""
    bucket = req.bucket
    if not bucket:
        raise S3Error("InvalidRequest", "A bucket name is required for this operation")
    q = parse_uploads_query(req.query)
    storage = req.ctx.storage
    uploads: list[st.UploadMeta] = []
    truncated = False
    with storage_errors(bucket):
        if not await storage.bucket_exists(bucket):
            raise S3Error("NoSuchBucket", resource=bucket)
        if q.max_uploads > 0:
            uploads, truncated = await storage.list_uploads(
                bucket,
                prefix=q.prefix,
                key_marker=q.key_marker,
                upload_id_marker=q.upload_id_marker,
                max_uploads=q.max_uploads,
            )
    kept, prefixes = group_uploads(uploads, q.prefix, q.delimiter)
    next_key = uploads[-1].key if truncated and uploads else ""
    next_id = uploads[-1].upload_id if truncated and uploads else ""
    body = render_list_uploads(
        bucket, q, kept, prefixes, truncated, next_key, next_id, request_owner(req)
    )
    return req.xml_response(body)
