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
import dataclasses
from typing import Any

from aiohttp import web

from sealstore.objects.choice import CustomerKey
from sealstore.objects.conditional import completed_from
from sealstore.objects.multipart_checksum import Completion
from sealstore.s3 import checksums, sse_headers
from sealstore.s3.context import S3Request, iso8601
from sealstore.s3.errors import S3Error, s3_error_for
from sealstore.s3.handlers.delete_objects import read_xml_body
from sealstore.s3.handlers.listing import request_owner, s3_url_encode
from sealstore.s3.handlers.multipart_xml import (
    CompletePart,
    UploadsQuery,
    group_uploads,
    parse_complete_request,
    parse_int,
    parse_part_number,
    parse_uploads_query,
    render_complete,
    render_initiate,
    render_list_parts,
    render_list_uploads,
)
from sealstore.s3.handlers.object_request import copy_source_version, new_object
from sealstore.s3.handlers.preconditions import (
    parse_copy_range,
    require_copy_source_conditions,
    write_condition,
)
from sealstore.s3.handlers.tagging import with_request_tags
from sealstore.s3.handlers.versions import version_headers
from sealstore.s3.xml import MalformedXMLError, document, tag
from sealstore.storage import base as st
from sealstore.storage.conditions import WriteCondition

__all__ = [
    "MAX_PART_SIZE",
    "CompletePart",
    "UploadsQuery",
    "abort_multipart_upload",
    "complete_multipart_upload",
    "create_multipart_upload",
    "group_uploads",
    "list_multipart_uploads",
    "list_parts",
    "parse_complete_request",
    "parse_copy_range",
    "parse_part_number",
    "parse_uploads_query",
    "render_complete",
    "render_initiate",
    "render_list_parts",
    "render_list_uploads",
    "upload_part",
]

MAX_PART_SIZE = 5 * 1024**3  # S3: a part is at most 5 GiB
MAX_PARTS_LISTED = 1000
# Completion normally takes milliseconds (no data is copied); only when it is slower does the
# handler commit to a 200 and keep the connection alive with whitespace, as S3 does.
KEEPALIVE_AFTER = 2.0
KEEPALIVE_EVERY = 5.0


# --------------------------------------------------------------------------- handlers


def _bucket_key(req: S3Request) -> tuple[str, str]:
    if not req.bucket or not req.key:
        raise S3Error("InvalidRequest", "A bucket and an object key are required")
    return req.bucket, req.key


async def _get_upload(req: S3Request, bucket: str, key: str) -> st.UploadMeta:
    upload_id = req.query.get("uploadId", "")
    if not upload_id:
        raise S3Error("NoSuchUpload", resource=f"/{bucket}/{key}")
    return await req.ctx.objects.get_upload(bucket, key, upload_id)


async def create_multipart_upload(req: S3Request) -> web.StreamResponse:
    """POST /bucket/key?uploads: same metadata rules and SSE precedence as PutObject."""
    bucket, key = _bucket_key(req)
    choice = checksums.create_choice(req.headers)
    attrs = dataclasses.replace(with_request_tags(req, new_object(req)), checksum=choice)
    requested = sse_headers.write_choice(req)
    upload = await req.ctx.objects.create_upload(bucket, key, attrs, sse=requested)
    req.response_headers.update(sse_headers.response_for(upload.meta.internal, requested))
    req.response_headers.update(checksums.create_headers(choice))
    return req.xml_response(render_initiate(bucket, key, upload.upload_id))


def _check_content_length(req: S3Request) -> None:
    declared = req.header("x-amz-decoded-content-length") or req.header("Content-Length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and int(declared) > MAX_PART_SIZE
    ):
        raise S3Error("EntityTooLarge", f"A part may be at most {MAX_PART_SIZE} bytes")


async def upload_part(req: S3Request) -> web.StreamResponse:
    """PUT /bucket/key?partNumber=N&uploadId=ID: stream (and encrypt) one part."""
    bucket, key = _bucket_key(req)
    number = parse_part_number(req.query.get("partNumber"))
    if req.header("x-amz-copy-source") is not None:
        return await upload_part_copy(req)  # the router sends both to UploadPart
    customer = sse_headers.read_key(req)  # an SSE-C upload's parts repeat its key
    _check_content_length(req)
    upload = await _get_upload(req, bucket, key)
    body = req.body()
    checksums.prepare_part(upload.meta.internal, body)
    part = await req.ctx.objects.put_part(
        upload, number, body, max_size=MAX_PART_SIZE, customer=customer
    )
    req.response_headers["ETag"] = f'"{part.etag}"'
    for name, value in (body.checksums or {}).items():
        req.response_headers[name] = value
    req.response_headers.update(sse_headers.sse_response_headers(upload.meta.internal, customer))
    return req.make_response(200)


async def upload_part_copy(req: S3Request) -> web.StreamResponse:
    """PUT ...?partNumber&uploadId with x-amz-copy-source: a part from (a range of) an object,
    decrypted under the source's key and encrypted under the upload's part key."""
    bucket, key = _bucket_key(req)
    number = parse_part_number(req.query.get("partNumber"))
    customer = sse_headers.read_key(req)
    src_customer = sse_headers.read_key(req, copy_source=True)
    src_bucket, src_key, src_version = copy_source_version(req.header("x-amz-copy-source") or "")
    upload = await _get_upload(req, bucket, key)
    objects = req.ctx.objects
    src = await objects.head(src_bucket, src_key, src_version, copy_source=True)
    require_copy_source_conditions(req.headers, src)
    offset, length = parse_copy_range(req.header("x-amz-copy-source-range"), src.size)
    if length > MAX_PART_SIZE:
        raise S3Error("EntityTooLarge", f"A part may be at most {MAX_PART_SIZE} bytes")
    part = await objects.copy_part(
        upload, number, src, offset, length, customer=customer, src_customer=src_customer
    )
    req.response_headers.update(sse_headers.sse_response_headers(upload.meta.internal, customer))
    if src.version_id is not None or src_version is not None:
        req.response_headers["x-amz-copy-source-version-id"] = src.version_label
    body = document(
        "CopyPartResult",
        [
            tag("LastModified", iso8601(part.last_modified)),
            tag("ETag", f'"{part.etag}"'),
            *checksums.part_xml(part.internal),
        ],
    )
    return req.xml_response(body)


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


async def _complete_parts(req: S3Request) -> tuple[list[CompletePart], bytes]:
    """The body's part list and the body; an empty body is MalformedXML there, as S3 answers.
    A Complete's ``x-amz-checksum-*`` headers describe the object, not this XML body, so the
    body reader must not check them."""
    req.body(checksum_headers=False)
    try:
        data = await read_xml_body(req)
    except S3Error as exc:
        if exc.code != "MissingRequestBodyError":
            raise
        raise MalformedXMLError("CompleteMultipartUpload needs a body") from None
    return parse_complete_request(data), data


async def _replayed(req: S3Request, bucket: str, key: str) -> web.StreamResponse:
    """A Complete for an upload that no longer exists: S3 answers a retry of a Complete that
    succeeded (same upload id, same part list) with the same 200 result; NoSuchUpload else."""
    upload_id = req.query.get("uploadId", "")
    try:
        parts, _ = await _complete_parts(req)
    except (S3Error, MalformedXMLError):
        parts = []
    listed = [(p.number, p.etag) for p in parts]
    done = await completed_from(req.ctx.storage, bucket, key, upload_id, listed) if parts else None
    if done is None:
        raise S3Error("NoSuchUpload", resource=f"/{bucket}/{key}")
    req.response_headers.update(sse_headers.sse_response_headers(done.internal))
    req.response_headers["ETag"] = f'"{done.etag}"'
    return req.xml_response(render_complete(_location(req, bucket, key), bucket, key, done.etag))


async def _complete_once(
    req: S3Request,
    upload: st.UploadMeta,
    parts: list[tuple[int, str]],
    customer: CustomerKey | None,
    condition: WriteCondition | None,
    checks: Completion | None,
) -> st.ObjectMeta:
    """Complete ``upload``; when a concurrent retry of this same Complete won the race (the
    upload vanished into an object made of these parts), its object is this one's result."""
    try:
        return await req.ctx.objects.complete(
            upload, parts, customer, cond=condition, checks=checks
        )
    except st.NoSuchUpload:
        done = await completed_from(
            req.ctx.storage, upload.bucket, upload.key, upload.upload_id, parts
        )
        if done is None:
            raise
        return done


async def complete_multipart_upload(req: S3Request) -> web.StreamResponse:
    """POST /bucket/key?uploadId=ID.

    The part list is parsed and checked before anything is touched; ``If-None-Match: *`` /
    ``If-Match`` make the completion conditional (`objects.conditional`). A retried Complete
    of an upload that already completed gets the same result (`_replayed`). If publishing
    takes longer than ``KEEPALIVE_AFTER`` seconds, a 200 is committed and whitespace is sent
    every few seconds so proxies and clients do not time out; the result (or an ``<Error>``
    document, as S3 does) follows in the same body.
    """
    bucket, key = _bucket_key(req)
    condition = write_condition(req.headers)
    customer = sse_headers.read_key(req)  # optional (AWS): binds an SSE-C object's layout
    try:
        upload = await _get_upload(req, bucket, key)
    except st.NoSuchUpload:
        return await _replayed(req, bucket, key)
    parts, data = await _complete_parts(req)
    checks = checksums.completion(req.headers, data)
    # The completion is a task of its own so that a client hanging up mid-wait cannot
    # cancel it halfway (storage publishes atomically either way); keep a strong reference
    # until it ends, since the event loop only holds tasks weakly.
    task = asyncio.ensure_future(
        _complete_once(
            req, upload, [(p.number, p.etag) for p in parts], customer, condition, checks
        )
    )
    _RUNNING.add(task)
    task.add_done_callback(_finished)
    done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_AFTER)
    req.response_headers.update(sse_headers.sse_response_headers(upload.meta.internal, customer))
    if done:
        obj = task.result()
        req.response_headers["ETag"] = f'"{obj.etag}"'
        req.response_headers.update(version_headers(obj))
        return req.xml_response(
            render_complete(
                _location(req, bucket, key),
                bucket,
                key,
                obj.etag,
                checksums.object_xml(obj.internal),
            )
        )
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
        err = s3_error_for(exc)
        if err is None:
            req.ctx.logger.error(
                "complete_multipart_upload failed",
                extra={"request_id": req.request_id},
                exc_info=exc,
            )
            err = S3Error("InternalError")
        body = err.to_xml(f"/{bucket}/{key}", req.request_id)
    else:
        body = render_complete(
            _location(req, bucket, key), bucket, key, obj.etag, checksums.object_xml(obj.internal)
        )
    await resp.write(body.split(b"\n", 1)[1] if body.startswith(b"<?xml") else body)
    await resp.write_eof()
    return resp


async def abort_multipart_upload(req: S3Request) -> web.StreamResponse:
    """DELETE /bucket/key?uploadId=ID -> 204."""
    bucket, key = _bucket_key(req)
    upload = await _get_upload(req, bucket, key)
    await req.ctx.objects.abort(upload)
    return req.make_response(204)


async def list_parts(req: S3Request) -> web.StreamResponse:
    """GET /bucket/key?uploadId=ID[&part-number-marker&max-parts]."""
    bucket, key = _bucket_key(req)
    upload = await _get_upload(req, bucket, key)
    marker = parse_int(req.query.get("part-number-marker"), "part-number-marker", 0, 10**9)
    max_parts = parse_int(req.query.get("max-parts"), "max-parts", 1000, MAX_PARTS_LISTED)
    parts: list[st.PartMeta] = []
    truncated = False
    if max_parts > 0:
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
