"""Per-process application state and the per-request view every S3 handler receives.

Handlers (ours and the other engineers') take a single :class:`S3Request` so that the
routing layer can change without touching any handler signature: everything a handler
needs (settings, storage, KMS, parsed bucket/key, query, auth result, request id and the
streaming body) hangs off that one object.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDictProxy

from sealstore.kms.health import KMSHealth
from sealstore.s3.metrics import Metrics
from sealstore.s3.policy.users import UsersReloader

if TYPE_CHECKING:
    from sealstore.config import Settings
    from sealstore.kms.base import KMS
    from sealstore.objects.service import ObjectService
    from sealstore.s3.body import RequestBody
    from sealstore.s3.sigv4 import AuthResult
    from sealstore.storage.contract import Store

# Prefix for user metadata headers, lower-case as aiohttp normalises lookups anyway.
USER_META_PREFIX = "x-amz-meta-"


@dataclass
class AppContext:
    """Everything long-lived that one server process owns.

    ``storage`` is the store every handler sees only through the storage contract (the local
    implementation is ``storage/fs.py``); ``kms`` is None when no KMS is configured, else the
    observed KMS from ``kms.factory.build_server_kms``, which keeps ``kms_health`` current.
    ``storage_open`` and ``kms_health`` together are the readiness verdict.
    """

    settings: Settings
    storage: Store
    kms: KMS | None
    logger: logging.Logger
    metrics: Metrics = field(default_factory=Metrics)
    kms_health: KMSHealth = field(default_factory=KMSHealth)
    storage_open: bool = False
    # The object service over ``storage`` and ``kms``; build_app sets it once both are up,
    # before the first request, so handlers use it without a None check.
    objects: ObjectService = field(default=None, repr=False)  # type: ignore[assignment]
    # Users besides root (SEALSTORE_USERS_FILE), reloaded on SIGHUP; none by default.
    users: UsersReloader = field(default_factory=lambda: UsersReloader(None, ""), repr=False)


def new_request_id() -> str:
    """Return a MinIO-shaped (16 upper-case hex chars) unique request id."""
    return uuid.uuid4().hex[:16].upper()


def http_date(ts: float) -> str:
    """Format a POSIX timestamp as an RFC 7231 HTTP date (Last-Modified etc.)."""
    import datetime as _dt

    return format_datetime(_dt.datetime.fromtimestamp(ts, tz=_dt.UTC), usegmt=True)


def iso8601(ts: float) -> str:
    """Format a POSIX timestamp the way S3 XML bodies do (millisecond precision, Z)."""
    import datetime as _dt

    d = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


@dataclass
class S3Request:
    """One authenticated S3 request as seen by a handler.

    ``bucket`` and ``key`` are already URL-decoded from the path-style URL; ``key`` is None
    for bucket-level operations. ``auth`` is the ``AuthResult`` returned by
    ``sigv4.authenticate``; handlers hand it on only through :meth:`body`.
    """

    http: web.Request
    ctx: AppContext
    bucket: str | None
    key: str | None
    query: MultiDictProxy[str]
    auth: AuthResult
    request_id: str
    op: str = "Unknown"
    response_headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    _body: RequestBody | None = field(default=None, repr=False)
    # Set by start_stream(): once headers are on the wire, errors can only cut the connection.
    prepared: web.StreamResponse | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        """HTTP method, upper-case."""
        return self.http.method

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """Request headers (case-insensitive multidict)."""
        return self.http.headers

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return one request header (case-insensitive) or ``default``."""
        return self.http.headers.get(name, default)

    def body(self, *, checksum_headers: bool = True) -> RequestBody:
        """Return the verified streaming body (decoded aws-chunked, checksums checked).

        Created once per request: iterating it yields plaintext chunks whose signatures and
        checksums have been verified; ``md5_hex``, ``size`` and ``checksums`` are valid after
        the iteration ends.  A client silent for ``body_idle_timeout`` seconds mid-body gets
        ``RequestTimeout``. ``checksum_headers=False``: the ``x-amz-checksum-*`` headers are
        not about the body (CompleteMultipartUpload); call it so before anything reads it.
        """
        if self._body is None:
            from sealstore.s3.body import RequestBody

            self._body = RequestBody(
                self.http.content,
                self.auth,
                self.http.headers,
                idle_timeout=self.ctx.settings.body_idle_timeout,
                checksum_headers=checksum_headers,
            )
        return self._body

    def user_metadata(self) -> dict[str, str]:
        """Collect ``x-amz-meta-*`` headers, lower-cased names, as S3 stores them."""
        out: dict[str, str] = {}
        for name, value in self.http.headers.items():
            lname = name.lower()
            if lname.startswith(USER_META_PREFIX):
                out[lname] = value
        return out

    def make_response(
        self,
        status: int = 200,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> web.Response:
        """Build a response that already carries the common S3 headers.

        The app middleware also adds ``x-amz-request-id`` and ``Server``; adding them here
        keeps direct handler output correct even when a handler streams.
        """
        resp = web.Response(status=status, body=body)
        if content_type:
            resp.content_type = content_type
        resp.headers.extend(self.response_headers)
        self._stamp(resp)
        return resp

    def _stamp(self, resp: web.StreamResponse) -> None:
        resp.headers["x-amz-request-id"] = self.request_id
        resp.headers["Server"] = "sealstore"

    async def start_stream(self, resp: web.StreamResponse) -> web.StreamResponse:
        """Add the common headers, send the response head and remember that we did.

        Handlers that stream a body call this instead of ``resp.prepare`` so that a later
        failure is handled by closing the connection rather than by a second response.
        """
        resp.headers.extend(self.response_headers)
        self._stamp(resp)
        await resp.prepare(self.http)
        self.prepared = resp
        return resp

    def xml_response(self, body: bytes, status: int = 200) -> web.Response:
        """Return an ``application/xml`` response (S3's content type for every XML body)."""
        resp = web.Response(status=status, body=body, content_type="application/xml")
        resp.headers.extend(self.response_headers)
        self._stamp(resp)
        return resp
