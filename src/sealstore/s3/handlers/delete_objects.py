"""DeleteObjects (POST /bucket?delete): delete up to 1000 keys in one request.

S3 requires an integrity header on this request (Content-MD5 or a flexible x-amz-checksum-*),
because a corrupted body could name the wrong keys; the streamed body verifies whichever was
sent before the handler sees the complete document. Per-key failures are reported inside a 200
``DeleteResult`` instead of failing the whole request, exactly as S3 does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from sealstore.s3.context import S3Request
from sealstore.s3.errors import S3Error, s3_error_for
from sealstore.s3.handlers.versioning_xml import parse_version_id
from sealstore.s3.policy.authorize import key_checker
from sealstore.s3.xml import (
    MAX_XML_BODY,
    MalformedXMLError,
    child_text,
    document,
    local_name,
    parse,
    tag,
    wrap,
)
from sealstore.storage import base as st

__all__ = [
    "MAX_DELETE_KEYS",
    "DeleteRequest",
    "delete_objects",
    "has_integrity_header",
    "parse_delete_request",
    "read_xml_body",
    "render_delete_result",
]

MAX_DELETE_KEYS = 1000
CHECKSUM_HEADERS = (
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
)


@dataclass(frozen=True)
class DeleteRequest:
    """The parsed ``<Delete>`` document: keys in request order, the Quiet flag, and each
    key's ``VersionId`` as sent (None when absent; validated per key when deleting)."""

    keys: list[str]
    quiet: bool
    versions: list[str | None] = field(default_factory=list)

    def objects(self) -> list[tuple[str, str | None]]:
        """(key, version id or None) pairs in request order."""
        versions = self.versions or [None] * len(self.keys)
        return list(zip(self.keys, versions, strict=True))


@dataclass(frozen=True)
class Deleted:
    """One ``<Deleted>`` entry: the key, the version id the request named, and the delete
    marker written or removed (S3's DeleteMarker / DeleteMarkerVersionId)."""

    key: str
    version_id: str | None = None
    delete_marker: bool = False
    marker_version_id: str | None = None


@dataclass(frozen=True)
class DeleteFailure:
    """One key S3 could not delete, reported as an ``<Error>`` entry."""

    key: str
    code: str
    message: str


async def read_xml_body(req: S3Request, limit: int = MAX_XML_BODY) -> bytes:
    """Read a small, verified XML request body into memory, refusing oversized ones.

    Only configuration-sized documents are read this way (all object data is streamed); the
    limit (checked against Content-Length first) stops a client from making the server
    buffer an arbitrary amount of memory. An empty body is MissingRequestBodyError.
    """
    data = await req.body().read(limit)
    if not data:
        raise S3Error("MissingRequestBodyError")
    return data


def has_integrity_header(headers: Mapping[str, str]) -> bool:
    """True when the request carries Content-MD5 or a flexible checksum (header or trailer).

    ``headers`` must be a case-insensitive mapping (aiohttp's CIMultiDictProxy).
    """
    get = headers.get
    if get("Content-MD5"):
        return True
    if any(get(h) for h in CHECKSUM_HEADERS):
        return True
    trailer = (get("x-amz-trailer") or "").lower()
    return any(h in trailer for h in CHECKSUM_HEADERS)


def parse_delete_request(data: bytes) -> DeleteRequest:
    """Parse ``<Delete><Quiet/><Object><Key/><VersionId/></Object>...</Delete>`` strictly."""
    root = parse(data, "Delete")
    keys: list[str] = []
    versions: list[str | None] = []
    quiet = False
    for el in root:
        name = local_name(el)
        if name == "Quiet":
            text = (el.text or "").strip().lower()
            if text not in ("true", "false"):
                raise MalformedXMLError("Quiet must be true or false")
            quiet = text == "true"
        elif name == "Object":
            key = child_text(el, "Key")
            if key is None:
                raise MalformedXMLError("Object without Key")
            for sub in el:
                if local_name(sub) not in ("Key", "VersionId", "ETag", "LastModifiedTime", "Size"):
                    raise MalformedXMLError(f"unexpected element {local_name(sub)} in Object")
            keys.append(key)
            versions.append(child_text(el, "VersionId"))
        else:
            raise MalformedXMLError(f"unexpected element {name} in Delete")
    if not keys:
        raise MalformedXMLError("Delete names no Object")
    if len(keys) > MAX_DELETE_KEYS:
        raise S3Error(
            "MalformedXML", f"Delete may name at most {MAX_DELETE_KEYS} objects, got {len(keys)}"
        )
    return DeleteRequest(keys=keys, quiet=quiet, versions=versions)


def _deleted_xml(entry: str | Deleted) -> str:
    if isinstance(entry, str):
        return wrap("Deleted", tag("Key", entry))
    marker = entry.marker_version_id if entry.delete_marker else None
    return wrap(
        "Deleted",
        [
            tag("Key", entry.key),
            tag("VersionId", entry.version_id),
            tag("DeleteMarker", True if entry.delete_marker else None),
            tag("DeleteMarkerVersionId", marker),
        ],
    )


def render_delete_result(
    deleted: list[str] | list[Deleted], failures: list[DeleteFailure], quiet: bool
) -> bytes:
    """Render ``DeleteResult``; Quiet mode lists only the failures, as S3 does."""
    parts: list[str] = []
    if not quiet:
        parts.extend(_deleted_xml(entry) for entry in deleted)
    parts.extend(
        wrap("Error", [tag("Key", f.key), tag("Code", f.code), tag("Message", f.message)])
        for f in failures
    )
    return document("DeleteResult", parts)


def _key_problem(key: str) -> DeleteFailure | None:
    """Reject keys storage could never hold, per key, without touching the index."""
    try:
        st.validate_object_key(key)
    except st.InvalidObjectName as exc:
        if len(key.encode("utf-8", "surrogatepass")) > st.MAX_KEY_BYTES:
            return DeleteFailure(key, "KeyTooLongError", "Your key is too long.")
        return _failure(key, exc)
    return None


def _failure(key: str, exc: Exception) -> DeleteFailure:
    """One key's ``<Error>`` entry, with the code and message the error table gives."""
    err = s3_error_for(exc) or S3Error("InternalError", "We encountered an internal error")
    return DeleteFailure(key, err.code, err.message)


def _deleted(key: str, version: str | None, result: st.DeleteResult) -> Deleted:
    marker_id = (result.version_id or st.NULL_VERSION) if result.delete_marker else None
    return Deleted(key, version, result.delete_marker, marker_id)


async def delete_objects(req: S3Request) -> web.StreamResponse:
    """POST /bucket?delete."""
    bucket = req.bucket
    if not bucket:
        raise S3Error("InvalidRequest", "A bucket name is required for this operation")
    if not has_integrity_header(req.headers):
        raise S3Error(
            "InvalidRequest",
            "Missing required header for this request: Content-MD5 or x-amz-checksum-*",
        )
    storage = req.ctx.storage
    if not await storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    request = parse_delete_request(await read_xml_body(req))
    may_delete = await key_checker(req)  # s3:DeleteObject per key (policies)
    deleted: list[Deleted] = []
    failures: list[DeleteFailure] = []
    for key, version in request.objects():
        problem = _key_problem(key)
        if problem is None and not may_delete(key, version):
            problem = DeleteFailure(key, "AccessDenied", "Access Denied.")
        if problem is not None:
            failures.append(problem)
            continue
        try:
            result = await req.ctx.objects.delete(bucket, key, parse_version_id(version))
        except Exception as exc:  # one bad key must not hide the results for the others
            if s3_error_for(exc) is None:
                req.ctx.logger.warning(
                    "delete_objects: key failed", extra={"request_id": req.request_id}, exc_info=exc
                )
            failures.append(_failure(key, exc))
        else:
            deleted.append(_deleted(key, version, result))
    return req.xml_response(render_delete_result(deleted, failures, request.quiet))
