"""Bucket versioning over HTTP: Get/PutBucketVersioning, ListObjectVersions, and the few
helpers the object handlers call to read ``versionId`` and to add version headers.

The object handlers stay version-agnostic apart from one call each: `requested_version`
(the validated ``versionId`` query value) and `version_headers` / `delete_headers` (what S3
answers about versions). A null version in a bucket that was never versioned carries no
``x-amz-version-id`` (as S3), so the unversioned hot path adds no lookup of the bucket's state:
the header is sent when the version has an id, or when the request named one.
"""

from __future__ import annotations

from aiohttp import web

from sealstore.s3.context import S3Request
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.delete_objects import read_xml_body
from sealstore.s3.handlers.listing import owner_xml, request_owner
from sealstore.s3.handlers.versioning_xml import (
    parse_version_id,
    parse_versioning,
    parse_versions_query,
    render_versioning,
    render_versions,
)
from sealstore.storage.base import NULL_VERSION, DeleteResult, ObjectMeta

__all__ = [
    "delete_headers",
    "get_bucket_versioning",
    "list_object_versions",
    "put_bucket_versioning",
    "requested_version",
    "version_headers",
]


MAX_CONFIG_BODY = 64 * 1024


def _bucket(req: S3Request) -> str:
    if not req.bucket:
        raise S3Error("InvalidRequest", "A bucket name is required for this operation")
    return req.bucket


def requested_version(req: S3Request) -> str | None:
    """The request's ``versionId`` (validated; ``null`` for the null version) or None."""
    return parse_version_id(req.query.get("versionId"))


def version_headers(meta: ObjectMeta, requested: str | None = None) -> dict[str, str]:
    """``x-amz-version-id`` for a version with an id, or when the request named one."""
    if meta.version_id is None and requested is None:
        return {}
    return {"x-amz-version-id": meta.version_label}


def delete_headers(result: DeleteResult) -> dict[str, str]:
    """DeleteObject's answer headers: the marker written or removed and the version."""
    headers: dict[str, str] = {}
    if result.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    if result.versioned:
        headers["x-amz-version-id"] = result.version_id or NULL_VERSION
    return headers


async def get_bucket_versioning(req: S3Request) -> web.StreamResponse:
    """GET /bucket?versioning: Enabled/Suspended, or an empty configuration (never set)."""
    state = await req.ctx.storage.get_versioning(_bucket(req))
    return req.xml_response(render_versioning(state))


async def put_bucket_versioning(req: S3Request) -> web.StreamResponse:
    """PUT /bucket?versioning: enable or suspend; existing versions stay as they are."""
    bucket = _bucket(req)
    state = parse_versioning(await read_xml_body(req, MAX_CONFIG_BODY))
    await req.ctx.storage.put_versioning(bucket, state)
    return req.make_response(200)


async def list_object_versions(req: S3Request) -> web.StreamResponse:
    """GET /bucket?versions: every version and delete marker, S3's order and paging."""
    bucket = _bucket(req)
    q = parse_versions_query(req.query)
    page = await req.ctx.storage.list_versions(
        bucket,
        prefix=q.prefix,
        key_marker=q.key_marker,
        version_id_marker=q.version_id_marker,
        delimiter=q.delimiter,
        max_keys=q.max_keys,
    )
    return req.xml_response(render_versions(bucket, q, page, owner_xml(request_owner(req))))
