"""What object-writing requests carry besides the body: metadata, stored headers, MD5, source.

Shared by the object and multipart handlers so PutObject, CopyObject (REPLACE) and
CreateMultipartUpload validate and store a new object's attributes identically.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

from sealstore.objects.service import NewObject
from sealstore.s3.context import S3Request
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.versioning_xml import parse_version_id

# Standard headers S3 stores with an object and returns on GET/HEAD.
STORED_HEADERS = (
    "Cache-Control",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Expires",
)
MAX_USER_METADATA = 2048  # S3: user-defined metadata is limited to 2 KB
DEFAULT_CONTENT_TYPE = "binary/octet-stream"

# GET query overrides (S3 "response-*" parameters) -> response header.
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
# What an HTTP header value cannot carry (RFC 9110 field-value): control characters but tab.
_NOT_IN_HEADER = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def require_key(req: S3Request) -> tuple[str, str]:
    """The routed bucket and key (object operations need both)."""
    if not req.bucket or req.key is None:
        raise S3Error("InvalidRequest", "A bucket and key are required for this operation")
    return req.bucket, req.key


def user_metadata(req: S3Request) -> dict[str, str]:
    """``x-amz-meta-*`` headers, refused above S3's 2 KB limit."""
    meta = req.user_metadata()
    size = sum(len(k) - len("x-amz-meta-") + len(v) for k, v in meta.items())
    if size > MAX_USER_METADATA:
        raise S3Error("MetadataTooLarge")
    return meta


def stored_headers(req: S3Request) -> dict[str, str]:
    """The standard headers S3 keeps with an object (aws-chunked framing removed)."""
    out: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = req.header(name)
        if value is None:
            continue
        if name == "Content-Encoding":
            # aws-chunked is transport framing, never part of the object (S3 strips it).
            parts = [p.strip() for p in value.split(",") if p.strip().lower() != "aws-chunked"]
            value = ",".join(p for p in parts if p)
            if not value:
                continue
        out[name] = value
    return out


def new_object(req: S3Request) -> NewObject:
    """The attributes a request sets on the object it creates."""
    return NewObject(
        content_type=req.header("Content-Type") or DEFAULT_CONTENT_TYPE,
        user_meta=user_metadata(req),
        headers=stored_headers(req),
    )


def content_md5(req: S3Request) -> str | None:
    """The request's Content-MD5 as hex, None when absent; InvalidDigest when malformed."""
    raw = req.header("Content-MD5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest") from None
    if len(digest) != 16:
        raise S3Error("InvalidDigest")
    return digest.hex()


def response_overrides(req: S3Request) -> dict[str, str]:
    """The response headers the ``response-*`` query parameters ask for.

    A value a header cannot carry (CR, LF or another control character: what a response
    splitting attempt sends) is refused with InvalidArgument before anything is read, instead
    of failing when the response head is written.
    """
    out: dict[str, str] = {}
    for param, header in RESPONSE_OVERRIDES.items():
        value = req.query.get(param)
        if value is None:
            continue
        if _NOT_IN_HEADER.search(value):
            raise S3Error(
                "InvalidArgument",
                f"The {param} parameter contains a character not allowed in a header value.",
                extra={"ArgumentName": param},
            )
        out[header] = value
    return out


def parse_copy_source(value: str) -> tuple[str, str]:
    """Parse ``x-amz-copy-source`` (``[/]bucket/key[?versionId=...]``, URL-encoded)."""
    bucket, key, _ = copy_source_version(value)
    return bucket, key


def copy_source_version(value: str) -> tuple[str, str, str | None]:
    """`parse_copy_source` plus the source's ``versionId`` (validated; None when absent)."""
    raw = value.strip()
    path, _, query = raw.partition("?")
    version = None
    if query:
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        version = parse_version_id(params.get("versionId"))
    bucket, key = _copy_path(path)
    return bucket, key, version


def _copy_path(path: str) -> tuple[str, str]:
    decoded = unquote(path)
    decoded = decoded.removeprefix("/")
    bucket, sep, key = decoded.partition("/")
    if not bucket or not sep or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key")
    return bucket, key
