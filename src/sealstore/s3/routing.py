"""Which S3 operation a request is, and which handler serves it.

Path-style addressing only: ``/bucket/key``. The operation follows from the method, whether
the path names a bucket and a key, the query "subresources" and (for PUTs) the copy-source
header. :data:`ROUTES` maps every operation name to its handler function directly, so a typo
or a missing handler fails at import time, not on the first request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Iterable
from urllib.parse import unquote

from aiohttp import web

from sealstore.s3.context import S3Request
from sealstore.s3.errors import S3Error
from sealstore.s3.form_data import header_params
from sealstore.s3.handlers import (
    attributes,
    bucket,
    bucket_encryption,
    bucket_policy,
    delete_objects,
    listing,
    multipart,
    post_object,
    tagging,
    versions,
)
from sealstore.s3.handlers import object as object_handlers
from sealstore.s3.query import query_multidict

Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]

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

# Operation name -> handler. Every name select_operation() can return is here.
ROUTES: dict[str, Handler] = {
    "ListBuckets": bucket.list_buckets,
    "CreateBucket": bucket.create_bucket,
    "HeadBucket": bucket.head_bucket,
    "DeleteBucket": bucket.delete_bucket,
    "GetBucketLocation": bucket.get_bucket_location,
    "GetBucketVersioning": versions.get_bucket_versioning,
    "PutBucketVersioning": versions.put_bucket_versioning,
    "ListObjectVersions": versions.list_object_versions,
    "GetBucketAcl": bucket.get_bucket_acl,
    "GetObjectAcl": bucket.get_object_acl,
    "ListObjectsV1": listing.list_objects_v1,
    "ListObjectsV2": listing.list_objects_v2,
    "PutBucketEncryption": bucket_encryption.put_bucket_encryption,
    "GetBucketEncryption": bucket_encryption.get_bucket_encryption,
    "DeleteBucketEncryption": bucket_encryption.delete_bucket_encryption,
    "PutBucketPolicy": bucket_policy.put_bucket_policy,
    "GetBucketPolicy": bucket_policy.get_bucket_policy,
    "DeleteBucketPolicy": bucket_policy.delete_bucket_policy,
    "GetBucketPolicyStatus": bucket_policy.get_bucket_policy_status,
    "DeleteObjects": delete_objects.delete_objects,
    "PostObject": post_object.post_object,
    "PutObject": object_handlers.put_object,
    "CopyObject": object_handlers.copy_object,
    "GetObject": object_handlers.get_object,
    "HeadObject": object_handlers.head_object,
    "GetObjectAttributes": attributes.get_object_attributes,
    "DeleteObject": object_handlers.delete_object,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
    "PutObjectTagging": tagging.put_object_tagging,
    "GetObjectTagging": tagging.get_object_tagging,
    "DeleteObjectTagging": tagging.delete_object_tagging,
    "PutBucketTagging": tagging.put_bucket_tagging,
    "GetBucketTagging": tagging.get_bucket_tagging,
    "DeleteBucketTagging": tagging.delete_bucket_tagging,
}


def handler_for(op: str) -> Handler:
    """The handler of ``op``; an operation without one answers NotImplemented."""
    fn = ROUTES.get(op)
    if fn is None:
        raise S3Error("NotImplemented", f"{op} is not implemented by this server")
    return fn


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
    bucket_name = unquote(bucket_raw, errors="strict")
    if not sep or key_raw == "":
        return bucket_name, None
    return bucket_name, unquote(key_raw, errors="surrogateescape")


def select_operation(
    method: str,
    bucket: str | None,
    key: str | None,
    query: Iterable[str],
    headers: Container[str] | None = None,
) -> str:
    """Map method + target + query subresources (+ copy-source header) to an operation.

    ``query`` is iterated for parameter names only; ``headers`` is only asked whether it holds
    ``x-amz-copy-source`` (pass aiohttp's case-insensitive headers).
    """
    subs = {name for name in query if name in KNOWN_SUBRESOURCES}
    if bucket is None:
        if method in ("GET", "HEAD") and not subs:
            return "ListBuckets"
        raise S3Error("MethodNotAllowed")
    if key is None:
        return _bucket_operation(method, subs)
    op = _object_operation(method, subs)
    if headers is not None and "x-amz-copy-source" in headers:
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
            ("versions", "ListObjectVersions"),
            ("acl", "GetBucketAcl"),
            ("tagging", "GetBucketTagging"),
            ("policy", "GetBucketPolicy"),
            ("policyStatus", "GetBucketPolicyStatus"),
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
        if subs == {"tagging"}:
            return "PutBucketTagging"
        if subs == {"policy"}:
            return "PutBucketPolicy"
        if subs == {"versioning"}:
            return "PutBucketVersioning"
        if not subs:
            return "CreateBucket"
    elif method == "HEAD":
        if not subs:
            return "HeadBucket"
    elif method == "DELETE":
        if subs == {"encryption"}:
            return "DeleteBucketEncryption"
        if subs == {"tagging"}:
            return "DeleteBucketTagging"
        if subs == {"policy"}:
            return "DeleteBucketPolicy"
        if not subs:
            return "DeleteBucket"
    elif method == "POST":
        if subs == {"delete"}:
            return "DeleteObjects"
        if not subs:  # a browser upload; the handler refuses non-form bodies as S3 does
            return "PostObject"
    else:
        raise S3Error("MethodNotAllowed")
    return _not_implemented(subs)


def _object_operation(method: str, subs: set[str]) -> str:
    if method == "PUT":
        if subs == {"partNumber", "uploadId"}:
            return "UploadPart"
        if subs == {"tagging"}:
            return "PutObjectTagging"
        if not subs:
            return "PutObject"
    elif method == "GET":
        if subs == {"uploadId"}:
            return "ListParts"
        if subs == {"acl"}:
            return "GetObjectAcl"
        if subs == {"tagging"}:
            return "GetObjectTagging"
        if subs == {"attributes"}:
            return "GetObjectAttributes"
        if not subs or subs == {"partNumber"}:
            return "GetObject"
    elif method == "HEAD":
        if not subs or subs == {"partNumber"}:
            return "HeadObject"
    elif method == "DELETE":
        if subs == {"uploadId"}:
            return "AbortMultipartUpload"
        if subs == {"tagging"}:
            return "DeleteObjectTagging"
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


def is_browser_post(method: str, raw_path: str, content_type: str | None) -> bool:
    """True when a request is a browser upload (PostObject with a multipart/form-data body).

    Such a request is authenticated by its form (policy and signature fields), not by its
    headers, so the dispatcher skips header authentication for it and only for it; the test
    is :func:`select_operation` itself, so the exception can never cover another operation.
    ``POST /bucket?delete`` stays DeleteObjects (a subresource) whatever its Content-Type.
    """
    if method != "POST" or header_params(content_type or "")[0] != "multipart/form-data":
        return False
    try:
        bucket_name, key = split_path(raw_path)
        query = query_multidict(raw_path.partition("?")[2])
        return select_operation(method, bucket_name, key, query) == "PostObject"
    except (S3Error, UnicodeDecodeError):
        return False


def _not_implemented(subs: set[str]) -> str:
    names = ", ".join(sorted(subs)) or "this request"
    raise S3Error("NotImplemented", f"The requested operation ({names}) is not implemented")
