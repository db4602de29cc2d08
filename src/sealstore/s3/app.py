"""aiohttp application: one dispatcher for every request, and the process lifecycle.

One catch-all route sends every request through :func:`dispatch`, which (0) refuses a header
section over S3's 8 KiB before any other work, (1) answers the admin endpoints under
``/minio/`` (``s3/admin_api.py``), (2) authenticates with SigV4 (``s3/auth.py``; a browser
POST upload is the one exception: its form is verified by its handler), (3) picks
the operation and its handler (``s3/routing.py``), (4) turns every failure into an S3 XML
error with the request id, and (5) logs one structured line. Between (3) and the handler,
``s3/policy/authorize.py`` decides whether the principal (root, a user, or anonymous) may
perform the operation. Keeping
this in one place means no handler can forget authentication, error mapping or logging.

Bounded inputs: aiohttp itself refuses a request line or one header line over
:data:`MAX_HTTP_LINE` and more than :data:`MAX_HEADERS` headers (a plain-text 400 before the
application runs), so parsing one request costs at most ~1 MiB; :func:`dispatch` then answers
``RequestHeaderSectionTooLarge`` for a header section over :data:`MAX_HEADER_SECTION`, as S3
does, before authentication hashes any of it.  The query string is read once
(:func:`.query.query_multidict`), the same way SigV4 canonicalises it.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from sealstore.kms import health
from sealstore.s3 import admin_api
from sealstore.s3.auth import FORM_AUTH, authenticate
from sealstore.s3.context import AppContext, S3Request, new_request_id
from sealstore.s3.errors import S3Error, s3_error_for
from sealstore.s3.policy.authorize import authorize_request
from sealstore.s3.query import query_multidict
from sealstore.s3.routing import handler_for, is_browser_post, select_operation, split_path

if TYPE_CHECKING:
    from sealstore.config import Settings

SERVER_NAME = "sealstore"
# S3 refuses request header sections over 8 KiB (RequestHeaderSectionTooLarge).
MAX_HEADER_SECTION = 8192
# aiohttp's own bounds (its defaults): one request or header line, and the number of headers.
MAX_HTTP_LINE = 8190
MAX_HEADERS = 128
APP_CTX_KEY = web.AppKey("sealstore_ctx", AppContext)


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
        _check_header_section(request)
        if path == "/minio" or path.startswith("/minio/"):
            op = "Admin"
            resp = await admin_api.handle(request, ctx)
        else:
            content_type = request.headers.get("Content-Type")
            form_upload = is_browser_post(request.method, request.raw_path, content_type)
            if form_upload:
                auth = FORM_AUTH  # PostObject: its handler authenticates and authorises the form
            else:
                auth = authenticate(request, ctx.settings, ctx.users.current, allow_anonymous=True)
            bucket, key = split_path(request.raw_path)
            query = query_multidict(request.raw_path.partition("?")[2])
            op = select_operation(request.method, bucket, key, query, request.headers)
            handler = handler_for(op)
            s3req = S3Request(
                http=request,
                ctx=ctx,
                bucket=bucket,
                key=key,
                query=query,
                auth=auth,
                request_id=request_id,
                op=op,
            )
            if not form_upload:
                await authorize_request(s3req)
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


def _check_header_section(request: web.Request) -> None:
    """RequestHeaderSectionTooLarge when the headers (``Name: value\r\n`` each) exceed S3's
    8 KiB: checked first, so an oversized request costs no signature work and no echo."""
    size = 0
    for name, value in request.raw_headers:
        size += len(name) + len(value) + 4
    if size > MAX_HEADER_SECTION:
        raise S3Error(
            "RequestHeaderSectionTooLarge",
            f"Your request header section is {size} bytes; the maximum allowed is "
            f"{MAX_HEADER_SECTION} bytes.",
            extra={"MaxSizeAllowed": str(MAX_HEADER_SECTION)},
        )


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
    app = web.Application(
        handler_args={
            "max_field_size": MAX_HTTP_LINE,
            "max_line_size": MAX_HTTP_LINE,
            "max_headers": MAX_HEADERS,
        }
    )
    app[APP_CTX_KEY] = ctx
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def build_app(settings: Settings) -> web.Application:
    """Create the application plus its lifecycle: open storage, start KMS and its monitor.

    Runs inside each worker process (after fork), so SQLite connections and KMS sessions
    are never shared between processes (constructing the store opens nothing; ``open()``
    in the lifecycle does). ``kms.start()`` never raises because the KMS is down; the
    server starts, reports not-ready and heals (pitfall P10).
    """
    from sealstore.kms.factory import build_server_kms
    from sealstore.log import get_logger
    from sealstore.objects.service import ObjectService
    from sealstore.s3.policy.users import UsersReloader
    from sealstore.storage.factory import open_store

    assert settings.data_dir is not None
    ctx = AppContext(
        settings=settings, storage=open_store(settings.data_dir), kms=None, logger=get_logger()
    )
    ctx.users = UsersReloader(settings.users_file, settings.root_user, ctx.logger)
    app = create_app(ctx)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await ctx.storage.open()
        ctx.storage_open = True
        ctx.kms = build_server_kms(settings, ctx.kms_health)
        if ctx.kms is not None:
            await ctx.kms.start()
        ctx.objects = ObjectService(ctx.storage, ctx.kms, auto_encryption=settings.auto_encryption)
        monitor = health.start_monitor(ctx.kms, ctx.kms_health, ctx.logger)
        ctx.logger.info("sealstore ready to serve", extra={"pid": os.getpid()})
        try:
            yield
        finally:
            await health.stop_monitor(monitor)
            if ctx.kms is not None:
                await ctx.kms.close()
            await ctx.storage.close()
            ctx.storage_open = False
            ctx.logger.info("sealstore stopped", extra={"pid": os.getpid()})

    app.cleanup_ctx.append(lifecycle)
    return app
