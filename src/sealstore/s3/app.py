"""aiohttp application: path-style routing, SigV4 on every request, S3 errors, access log.

One catch-all route sends every request through :func:`dispatch`, which (1) answers the
admin endpoints under ``/minio/``, (2) authenticates with SigV4, (3) picks the operation from
method + bucket/key + query subresources, (4) turns every failure into an S3 XML error with
the request id, and (5) logs one structured line. Keeping this in one place means no handler
can forget authentication, error mapping or logging.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from sealstore.s3.context import AppContext, S3Request, new_request_id
from sealstore.s3.errors import S3Error, s3_error_for

if TYPE_CHECKING:
    from sealstore.config import Settings

Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]

SERVER_NAME = "sealstore"
APP_CTX_KEY = web.AppKey("sealstore_ctx", AppContext)

# Query parameters that select a different S3 operation ("subresources"). A request naming
# one we do not implement gets NotImplemented instead of silently acting as a plain GET/PUT.
KNOWN_SUBRESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "attributes",
        "cors",
        "delete",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "lifecycle",
        "list-type",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "partNumber",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versioning",
        "versions",
        "website",
    }
)

# Operation name -> "module:function" under sealstore.s3.handlers. Resolved lazily so a
# handler module that fails to import degrades to NotImplemented for its operations only.
OPERATIONS: dict[str, str] = {
    "ListBuckets": "bucket:list_buckets",
    "CreateBucket": "bucket:create_bucket",
    "HeadBucket": "bucket:head_bucket",
    "DeleteBucket": "bucket:delete_bucket",
    "GetBucketLocation": "bucket:get_bucket_location",
    "GetBucketVersioning": "bucket:get_bucket_versioning",
    "GetBucketAcl": "bucket:get_bucket_acl",
    "GetObjectAcl": "bucket:get_object_acl",
    "ListObjectsV1": "listing:list_objects_v1",
    "ListObjectsV2": "listing:list_objects_v2",
    "PutBucketEncryption": "bucket_encryption:put_bucket_encryption",
    "GetBucketEncryption": "bucket_encryption:get_bucket_encryption",
    "DeleteBucketEncryption": "bucket_encryption:delete_bucket_encryption",
    "DeleteObjects": "delete_objects:delete_objects",
    "PutObject": "object:put_object",
    "CopyObject": "object:copy_object",
    "GetObject": "object:get_object",
    "HeadObject": "object:head_object",
    "DeleteObject": "object:delete_object",
    "CreateMultipartUpload": "multipart:create_multipart_upload",
    "UploadPart": "multipart:upload_part",
    "UploadPartCopy": "multipart:upload_part_copy",
    "CompleteMultipartUpload": "multipart:complete_multipart_upload",
    "AbortMultipartUpload": "multipart:abort_multipart_upload",
    "ListParts": "multipart:list_parts",
    "ListMultipartUploads": "multipart:list_multipart_uploads",
}


@dataclass(frozen=True)
class Route:
    """The operation chosen for a request."""

    op: str
    bucket: str | None
    key: str | None


def split_path(raw_path: str) -> tuple[str | None, str | None]:
    """Split a path-style URL path into (bucket, key), percent-decoding each.

    ``/`` -> (None, None); ``/b`` or ``/b/`` -> ("b", None); ``/b/k/x`` -> ("b", "k/x").
    A key is decoded after splitting so an encoded ``%2F`` in the bucket part cannot shift
    the split.
    """
    path = raw_path.split("?", 1)[0]
    if not path.startswith("/"):
        raise S3Error("InvalidURI")
    rest = path[1:]
    if not rest:
        return None, None
    bucket_raw, sep, key_raw = rest.partition("/")
    bucket = unquote(bucket_raw, errors="strict")
    if not sep or key_raw == "":
        return bucket, None
    return bucket, unquote(key_raw, errors="surrogateescape")


def select_operation(
    method: str,
    bucket: str | None,
    key: str | None,
    query: object,
    headers: object = None,
) -> str:
    """Map method + target + query subresources (+ copy-source header) to an operation."""
    q = query  # a MultiDictProxy; only membership is used
    subs = {name for name in q if name in KNOWN_SUBRESOURCES}  # type: ignore[attr-defined]
    if bucket is None:
        if method in ("GET", "HEAD") and not subs:
            return "ListBuckets"
        raise S3Error("MethodNotAllowed")
    if key is None:
        return _bucket_operation(method, subs)
    op = _object_operation(method, subs)
    if headers is not None and "x-amz-copy-source" in headers:  # type: ignore[operator]
        if op == "PutObject":
            return "CopyObject"
        if op == "UploadPart":
            return "UploadPartCopy"
    return op


def _bucket_operation(method: str, subs: set[str]) -> str:
    if method == "GET":
        for sub, op in (
            ("location", "GetBucketLocation"),
            ("encryption", "GetBucketEncryption"),
            ("uploads", "ListMultipartUploads"),
            ("versioning", "GetBucketVersioning"),
            ("acl", "GetBucketAcl"),
        ):
            if sub in subs:
                return op if subs == {sub} else _not_implemented(subs)
        if subs == {"list-type"}:
            return "ListObjectsV2"
        if not subs:
            return "ListObjectsV1"
    elif method == "PUT":
        if subs == {"encryption"}:
            return "PutBucketEncryption"
        if not subs:
            return "CreateBucket"
    elif method == "HEAD":
        if not subs:
            return "HeadBucket"
    elif method == "DELETE":
        if subs == {"encryption"}:
            return "DeleteBucketEncryption"
        if not subs:
            return "DeleteBucket"
    elif method == "POST":
        if subs == {"delete"}:
            return "DeleteObjects"
    else:
        raise S3Error("MethodNotAllowed")
    return _not_implemented(subs)


def _object_operation(method: str, subs: set[str]) -> str:
    if method == "PUT":
        if subs == {"partNumber", "uploadId"}:
            return "UploadPart"
        if not subs:
            return "PutObject"
    elif method == "GET":
        if subs == {"uploadId"}:
            return "ListParts"
        if subs == {"acl"}:
            return "GetObjectAcl"
        if not subs or subs == {"partNumber"}:
            return "GetObject"
    elif method == "HEAD":
        if not subs or subs == {"partNumber"}:
            return "HeadObject"
    elif method == "DELETE":
        if subs == {"uploadId"}:
            return "AbortMultipartUpload"
        if not subs:
            return "DeleteObject"
    elif method == "POST":
        if subs == {"uploads"}:
            return "CreateMultipartUpload"
        if subs == {"uploadId"}:
            return "CompleteMultipartUpload"
    else:
        raise S3Error("MethodNotAllowed")
    return _not_implemented(subs)


def _not_implemented(subs: set[str]) -> str:
    names = ", ".join(sorted(subs)) or "this request"
    raise S3Error("NotImplemented", f"The requested operation ({names}) is not implemented")


_resolved: dict[str, Handler | None] = {}


def resolve_handler(op: str) -> Handler:
    """Import the handler for ``op`` once; missing modules become NotImplemented."""
    if op not in _resolved:
        target = OPERATIONS.get(op)
        fn: Handler | None = None
        if target is not None:
            mod_name, func_name = target.split(":")
            try:
                mod = importlib.import_module(f"sealstore.s3.handlers.{mod_name}")
                fn = getattr(mod, func_name, None)
            except Exception as exc:
                from sealstore.log import get_logger

                get_logger().error(
                    "handler module failed to import; its operations answer NotImplemented",
                    extra={"module": mod_name, "error": f"{type(exc).__name__}: {exc}"},
                )
                fn = None
        _resolved[op] = fn
    fn = _resolved[op]
    if fn is None:
        raise S3Error("NotImplemented", f"{op} is not implemented by this server")
    return fn


def _lookup_secret(ctx: AppContext) -> Callable[[str], str | None]:
    user, password = ctx.settings.root_user, ctx.settings.root_password

    def lookup(access_key: str) -> str | None:
        return password if access_key == user else None

    return lookup


def authenticate(request: web.Request, ctx: AppContext) -> object:
    """Run SigV4 verification for ``request`` (raises S3Error on failure)."""
    from sealstore.s3 import sigv4

    raw = request.raw_path
    raw_path, _, raw_query = raw.partition("?")
    return sigv4.authenticate(
        request.method,
        raw_path,
        raw_query,
        request.headers,
        _lookup_secret(ctx),
        ctx.settings.region,
        datetime.now(UTC),
    )


def _error_response(err: S3Error, resource: str, request_id: str, head: bool) -> web.Response:
    body = b"" if head else err.to_xml(resource, request_id)
    resp = web.Response(status=err.status, body=body, content_type="application/xml")
    for k, v in err.headers.items():
        resp.headers[k] = v
    if head:
        resp.headers["x-minio-error-code"] = err.code
    return resp


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Entry point for every HTTP request (see module docstring)."""
    ctx = request.app[APP_CTX_KEY]
    started = time.perf_counter()
    request_id = new_request_id()
    path = request.raw_path.split("?", 1)[0]
    op = "Unknown"
    s3req: S3Request | None = None
    resp: web.StreamResponse
    try:
        if path == "/minio" or path.startswith("/minio/"):
            from sealstore import admin

            op = "Admin"
            resp = await admin.handle(request, ctx, request_id)
        else:
            auth = authenticate(request, ctx)
            bucket, key = split_path(request.raw_path)
            op = select_operation(request.method, bucket, key, request.query, request.headers)
            handler = resolve_handler(op)
            s3req = S3Request(
                http=request,
                ctx=ctx,
                bucket=bucket,
                key=key,
                query=request.query,
                auth=auth,
                request_id=request_id,
                op=op,
            )
            resp = await handler(s3req)
    except ConnectionResetError:
        # The client went away mid-request (aiohttp raises this on writes to a closed
        # transport). Nothing can be answered; record it without a traceback.
        ctx.logger.info("client disconnected", extra={"request_id": request_id, "op": op})
        resp = (s3req.prepared if s3req is not None else None) or web.Response(status=499)
        _finish(ctx, request, resp, op, request_id, path, started, s3req)
        return resp
    except Exception as exc:
        err = s3_error_for(exc)
        if err is None:
            ctx.logger.error(
                "unhandled error",
                extra={"request_id": request_id, "op": op, "error": type(exc).__name__},
                exc_info=exc,
            )
            err = S3Error("InternalError")
        elif err.status >= 500:
            ctx.logger.warning(
                "request failed",
                extra={"request_id": request_id, "op": op, "code": err.code, "error": str(exc)},
            )
        prepared = s3req.prepared if s3req is not None else None
        if prepared is not None:
            # Headers (and maybe part of the body) are already sent: the only honest signal
            # left is to cut the connection so the client sees a short body.
            if request.transport is not None:
                request.transport.close()
            resp = prepared
        else:
            resp = _error_response(err, path, request_id, request.method == "HEAD")
    _finish(ctx, request, resp, op, request_id, path, started, s3req)
    return resp


def _finish(
    ctx: AppContext,
    request: web.Request,
    resp: web.StreamResponse,
    op: str,
    request_id: str,
    path: str,
    started: float,
    s3req: S3Request | None,
) -> None:
    """Add common headers (if still possible), count and log the request."""
    if not resp.prepared:
        resp.headers["x-amz-request-id"] = request_id
        resp.headers["Server"] = SERVER_NAME
    duration_ms = (time.perf_counter() - started) * 1000
    body = getattr(s3req, "_body", None) if s3req is not None else None
    bytes_in = getattr(body, "size", None) or 0
    if request.method == "HEAD":
        bytes_out = 0
    elif isinstance(resp, web.Response):
        bytes_out = len(resp.body or b"") if isinstance(resp.body, bytes) else 0
    else:
        bytes_out = resp.content_length or 0 if resp.prepared else 0
    ctx.metrics.record_request(op, resp.status, int(bytes_in or 0), int(bytes_out or 0))
    ctx.logger.info(
        "request",
        extra={
            "method": request.method,
            "path": path,
            "op": op,
            "status": resp.status,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "duration_ms": round(duration_ms, 2),
            "request_id": request_id,
            "remote": request.remote,
        },
    )


def create_app(ctx: AppContext) -> web.Application:
    """Build the aiohttp application for one worker process.

    ``client_max_size`` is irrelevant because bodies are streamed by handlers; it is kept
    at aiohttp's default so nothing ever calls ``request.read()`` on an object body.
    """
    app = web.Application(handler_args={"max_field_size": 65536, "max_line_size": 65536})
    app[APP_CTX_KEY] = ctx
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def import_handlers() -> None:
    """Pre-import every handler module at startup so the first request pays no import cost."""
    for op in OPERATIONS:
        try:
            resolve_handler(op)
        except S3Error:
            continue


def build_app(settings: Settings) -> web.Application:
    """Create the application plus its lifecycle: open storage, start KMS and its monitor.

    Runs inside each worker process (after fork), so SQLite connections and KMS sessions
    are never shared between processes. ``kms.start()`` never raises because the KMS is
    down; the server starts, reports not-ready and heals (pitfall P10).
    """
    from sealstore.log import get_logger

    ctx = AppContext(settings=settings, storage=None, kms=None, logger=get_logger())
    app = create_app(ctx)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        from sealstore import admin
        from sealstore.kms.factory import build_kms
        from sealstore.objects.service import ObjectService
        from sealstore.storage.factory import open_store

        assert settings.data_dir is not None
        ctx.storage = open_store(settings.data_dir)
        await ctx.storage.open()
        ctx.storage_open = True
        ctx.kms = build_kms(settings)
        if ctx.kms is not None and settings.kms_cache_ttl > 0:
            from sealstore.kms.cache import CachingKMS

            ctx.kms = CachingKMS(ctx.kms, ttl=settings.kms_cache_ttl)
            ctx.logger.info(
                "KMS data-key cache on (GETs of recently read objects survive KMS outages)",
                extra={"ttl_s": settings.kms_cache_ttl},
            )
        if ctx.kms is not None:
            await ctx.kms.start()
        ctx.objects = ObjectService(ctx.storage, ctx.kms, auto_encryption=settings.auto_encryption)
        import_handlers()
        monitor = admin.start_monitor(ctx)
        ctx.logger.info("sealstore ready to serve", extra={"pid": os.getpid()})
        try:
            yield
        finally:
            await admin.stop_monitor(monitor)
            if ctx.kms is not None:
                await ctx.kms.close()
            await ctx.storage.close()
            ctx.storage_open = False
            ctx.logger.info("sealstore stopped", extra={"pid": os.getpid()})

    app.cleanup_ctx.append(lifecycle)
    return app
