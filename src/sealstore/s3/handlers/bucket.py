"""Bucket operations: CreateBucket, HeadBucket, DeleteBucket, ListBuckets, GetBucketLocation,
and the read-only ACL answers (single owner, FULL_CONTROL) that some clients ask for.
(Versioning lives in `versions.py`.)
"""

from __future__ import annotations

from aiohttp import web

from sealstore.s3.context import S3Request, iso8601
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.versions import requested_version
from sealstore.s3.xml import child_text, document, parse, tag, wrap
from sealstore.storage.base import validate_bucket_name

# Names MinIO reserves for its own admin/API paths.
RESERVED_BUCKETS = frozenset({"minio", ".minio.sys"})
MAX_CONFIG_BODY = 64 * 1024


def _bucket(req: S3Request) -> str:
    if not req.bucket:
        raise S3Error("InvalidRequest", "A bucket name is required for this operation")
    return req.bucket


def _owner(req: S3Request) -> str:
    user = req.ctx.settings.root_user
    return wrap("Owner", [tag("ID", user), tag("DisplayName", user)])


async def _read_small_body(req: S3Request, limit: int) -> bytes:
    """Read a small configuration body through the verified RequestBody."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in req.body():
        total += len(chunk)
        if total > limit:
            raise S3Error("MalformedXML", "The configuration document is too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def list_buckets(req: S3Request) -> web.StreamResponse:
    """GET /: every bucket with its creation date, sorted by name."""
    buckets = await req.ctx.storage.list_buckets()
    items = [
        wrap("Bucket", [tag("Name", b.name), tag("CreationDate", iso8601(b.created))])
        for b in sorted(buckets, key=lambda b: b.name)
    ]
    return req.xml_response(
        document("ListAllMyBucketsResult", [_owner(req), wrap("Buckets", items)])
    )


async def create_bucket(req: S3Request) -> web.StreamResponse:
    """PUT /bucket with an optional CreateBucketConfiguration (LocationConstraint).

    A LocationConstraint other than this server's region is refused, as S3 does, so a
    client cannot believe its data lives somewhere it does not.
    """
    bucket = _bucket(req)
    validate_bucket_name(bucket)  # InvalidBucketName -> 400 via the error table
    if bucket in RESERVED_BUCKETS:
        raise S3Error("InvalidBucketName", f"The bucket name {bucket} is reserved")
    data = await _read_small_body(req, MAX_CONFIG_BODY)
    if data.strip():
        root = parse(data, "CreateBucketConfiguration")
        location = child_text(root, "LocationConstraint")
        region = req.ctx.settings.region
        if location and location != region:
            raise S3Error(
                "InvalidLocationConstraint",
                f"The specified location-constraint {location!r} is not valid; "
                f"this server's region is {region}",
            )
    await req.ctx.storage.create_bucket(bucket)
    resp = req.make_response(200)
    resp.headers["Location"] = f"/{bucket}"
    return resp


async def head_bucket(req: S3Request) -> web.StreamResponse:
    """HEAD /bucket: 200 with the region header, 404 when missing."""
    bucket = _bucket(req)
    if not await req.ctx.storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    resp = req.make_response(200)
    resp.headers["x-amz-bucket-region"] = req.ctx.settings.region
    return resp


async def delete_bucket(req: S3Request) -> web.StreamResponse:
    """DELETE /bucket: 204; 409 BucketNotEmpty while objects remain (storage raises)."""
    bucket = _bucket(req)
    await req.ctx.storage.delete_bucket(bucket)
    return req.make_response(204)


async def get_bucket_location(req: S3Request) -> web.StreamResponse:
    """GET /bucket?location: the server region (empty for us-east-1, as S3 answers)."""
    bucket = _bucket(req)
    if not await req.ctx.storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    region = req.ctx.settings.region
    body = document("LocationConstraint", "" if region == "us-east-1" else _escape(region))
    return req.xml_response(body)


def _escape(text: str) -> str:
    from sealstore.s3.xml import escape

    return escape(text)


def _acl_document(req: S3Request) -> bytes:
    user = req.ctx.settings.root_user
    grantee = (
        '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:type="CanonicalUser">' + tag("ID", user) + tag("DisplayName", user) + "</Grantee>"
    )
    grant = wrap("Grant", [grantee, tag("Permission", "FULL_CONTROL")])
    return document("AccessControlPolicy", [_owner(req), wrap("AccessControlList", grant)])


async def get_bucket_acl(req: S3Request) -> web.StreamResponse:
    """GET /bucket?acl: this single-user server grants its owner FULL_CONTROL, nothing else."""
    bucket = _bucket(req)
    if not await req.ctx.storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    return req.xml_response(_acl_document(req))


async def get_object_acl(req: S3Request) -> web.StreamResponse:
    """GET /bucket/key?acl[&versionId]: same fixed policy, for an existing object version."""
    bucket = _bucket(req)
    if req.key is None:
        raise S3Error("InvalidRequest", "An object key is required for this operation")
    await req.ctx.objects.head(bucket, req.key, requested_version(req))
    return req.xml_response(_acl_document(req))
