"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, CopyObject.

Each handler parses the request (bucket/key, SSE headers, metadata, conditions, ranges),
calls the object service (`req.ctx.objects`) and renders its result. Bodies stream end to
end; the service opens every key with the KMS before anything is written or sent, so a KMS
outage yields a clean 503 and no partial object.

PUT:  put_object -> ObjectService.put -> (objects.sealing.new_object_key) -> _fill
      -> ObjectWriter.write (backend: batch, DARE-encrypt + write per storage-thread hop)
      -> ObjectWriter.commit.
GET:  get_object -> ObjectService.head -> preconditions.check_conditions
      -> ObjectService.open (objects.sealing.open_object_key) -> reading.decrypt_range
      -> Store.read(transform=decryptor) (backend: read + decrypt per hop) -> response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sealstore.objects.choice import CustomerKey
from sealstore.objects.metadata import strip_internal
from sealstore.s3 import checksums, sse_headers
from sealstore.s3.context import S3Request, http_date, iso8601
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers import tagging
from sealstore.s3.handlers.object_request import (
    DEFAULT_CONTENT_TYPE,
    content_md5,
    copy_source_version,
    new_object,
    require_key,
    response_overrides,
)
from sealstore.s3.handlers.preconditions import (
    ByteRange,
    check_conditions,
    parse_range,
    part_range,
    require_copy_source_conditions,
    write_condition,
)
from sealstore.s3.handlers.versions import delete_headers, requested_version, version_headers
from sealstore.s3.xml import document, tag
from sealstore.storage.base import ObjectMeta

# ----------------------------------------------------------------------------- PutObject


async def put_object(req: S3Request) -> web.StreamResponse:
    """PUT /bucket/key: stream the body (optionally SSE-S3/SSE-KMS encrypted) into storage."""
    bucket, key = require_key(req)
    expected_md5 = content_md5(req)
    attrs = tagging.with_request_tags(req, new_object(req))
    requested = sse_headers.write_choice(req)
    condition = write_condition(req.headers)  # If-None-Match: * / If-Match (412, 409)
    body = req.body()
    meta = await req.ctx.objects.put(
        bucket, key, body, attrs, sse=requested, content_md5=expected_md5, condition=condition
    )
    resp = req.make_response(200)
    resp.headers["ETag"] = f'"{meta.etag}"'
    for name, value in (body.checksums or {}).items():
        resp.headers[name] = value
    resp.headers.update(checksums.put_headers(body.stored_checksum))
    resp.headers.update(sse_headers.response_for(meta.internal, requested))
    resp.headers.update(version_headers(meta))
    return resp


# ----------------------------------------------------------------------------- reading


def _object_headers(
    resp: web.StreamResponse, meta: ObjectMeta, customer: CustomerKey | None
) -> None:
    resp.headers["ETag"] = f'"{meta.etag}"'
    resp.headers["Last-Modified"] = http_date(meta.last_modified)
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["Content-Type"] = meta.content_type or DEFAULT_CONTENT_TYPE
    for name, value in meta.headers.items():
        resp.headers[name] = value
    for name, value in strip_internal(meta.user_meta).items():
        resp.headers[name] = value
    if meta.parts:
        resp.headers["x-amz-mp-parts-count"] = str(len(meta.parts))
    resp.headers.update(tagging.count_header(meta))
    resp.headers.update(sse_headers.sse_response_headers(meta.internal, customer))


def _not_modified(req: S3Request, meta: ObjectMeta, status: int) -> web.StreamResponse:
    if status == 412:
        raise S3Error("PreconditionFailed")
    resp = req.make_response(304)
    resp.headers["ETag"] = f'"{meta.etag}"'
    resp.headers["Last-Modified"] = http_date(meta.last_modified)
    return resp


async def _send(req: S3Request, resp: web.StreamResponse, stream: AsyncIterator[bytes]) -> None:
    """Pull the first chunk before sending headers, so a vanished file or a tampered first
    package still becomes a proper S3 error instead of a cut connection; then stream."""
    first = b""
    if resp.content_length:
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


async def _get_or_head(req: S3Request, head: bool) -> web.StreamResponse:
    bucket, key = require_key(req)
    sse_headers.reject_sse_on_read(req.headers)
    customer = sse_headers.read_key(req)  # SSE-C: the key, checked before any lookup
    overrides = response_overrides(req)
    objects = req.ctx.objects
    version = requested_version(req)
    meta = await objects.head(bucket, key, version)
    objects.require_readable(meta, customer)
    cond = check_conditions(req.headers, meta)
    if cond is not None:
        return _not_modified(req, meta, cond)
    part_number = req.query.get("partNumber")
    rng = part_range(part_number, req.header("Range"), meta)
    if rng is None:
        rng = parse_range(req.header("Range"), meta.size)
    partial = rng is not None
    if rng is None:
        rng = ByteRange(0, meta.size)
    status = 206 if partial and (part_number is None or meta.parts) else 200
    resp = web.StreamResponse(status=status)
    _object_headers(resp, meta, customer)
    resp.headers.update(version_headers(meta, version))
    resp.headers.update(overrides)
    ranged = partial and part_number is None  # a Range: no stored checksum covers it
    resp.headers.update(checksums.get_headers(req.headers, meta, part_number, ranged))
    if status == 206:
        end = rng.start + rng.length - 1
        resp.headers["Content-Range"] = f"bytes {rng.start}-{end}/{meta.size}"
    resp.content_length = rng.length
    if head:
        await objects.verify(meta, customer)  # the key opens and the layout holds, as a GET
        return await req.start_stream(resp)
    await _send(req, resp, await objects.open(meta, rng.start, rng.length, customer))
    return resp


async def get_object(req: S3Request) -> web.StreamResponse:
    """GET /bucket/key: Range, conditionals, partNumber, response-* overrides."""
    return await _get_or_head(req, head=False)


async def head_object(req: S3Request) -> web.StreamResponse:
    """HEAD /bucket/key: the GET headers without a body, after the same key and layout
    checks as a GET (one KMS decrypt for an encrypted object)."""
    return await _get_or_head(req, head=True)


async def delete_object(req: S3Request) -> web.StreamResponse:
    """DELETE /bucket/key[?versionId]: 204 whether or not the key existed (S3 semantics);
    a versioned bucket answers with the marker written or the version removed."""
    bucket, key = require_key(req)
    result = await req.ctx.objects.delete(bucket, key, requested_version(req))
    resp = req.make_response(204)
    resp.headers.update(delete_headers(result))
    return resp


# ----------------------------------------------------------------------------- CopyObject


async def copy_object(req: S3Request) -> web.StreamResponse:
    """PUT /bucket/key with x-amz-copy-source: server-side copy, re-encrypting as needed."""
    bucket, key = require_key(req)
    requested = sse_headers.write_choice(req)
    src_customer = sse_headers.read_key(req, copy_source=True)
    src_bucket, src_key, src_version = copy_source_version(req.header("x-amz-copy-source") or "")
    directive = (req.header("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.")
    tag_directive = tagging.tagging_directive(req)
    objects = req.ctx.objects
    src = await objects.head(src_bucket, src_key, src_version, copy_source=True)
    require_copy_source_conditions(req.headers, src)
    attrs = new_object(req) if directive == "REPLACE" else None
    attrs = tagging.copy_attributes(req, src, attrs, tag_directive)
    algorithm = checksums.copy_algorithm(req.headers)
    stored = await objects.copy(
        src, bucket, key, attrs=attrs, sse=requested, src_customer=src_customer, checksum=algorithm
    )
    body = document(
        "CopyObjectResult",
        [
            tag("LastModified", iso8601(stored.last_modified)),
            tag("ETag", f'"{stored.etag}"'),
            *checksums.object_xml(stored.internal),
        ],
    )
    resp = req.xml_response(body)
    resp.headers.update(sse_headers.response_for(stored.internal, requested))
    resp.headers.update(version_headers(stored))
    if src.version_id is not None or src_version is not None:
        resp.headers["x-amz-copy-source-version-id"] = src.version_label
    return resp
