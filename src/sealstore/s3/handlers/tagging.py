"""Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, and
the tag hooks of PutObject, CreateMultipartUpload, CopyObject, GetObject and HeadObject.

The rules (limits, characters, AWS's codes) and the stored form live in `objects/tagging.py`;
this module only translates HTTP: the ``<Tagging><TagSet><Tag>`` document (parsed with the
safe parser of `s3/xml.py`, strictly: an unknown element or a Tag without Key or Value is
MalformedXML, as S3 answers), the ``x-amz-tagging`` header (URL-encoded query form), the
``x-amz-tagging-directive`` of CopyObject and the ``x-amz-tagging-count`` response header,
which S3 sends on GET and HEAD of an object with at least one tag.

A ``versionId`` query parameter reaches `objects.tagging.tagged_object` unchanged, the one
place versions are resolved (absent or ``null``: the current object).
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from sealstore.objects import tagging as rules
from sealstore.objects.service import NewObject
from sealstore.objects.tagging import Tag
from sealstore.s3.context import S3Request
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.delete_objects import has_integrity_header
from sealstore.s3.handlers.object_request import require_key
from sealstore.s3.handlers.versions import requested_version
from sealstore.s3.xml import MalformedXMLError, document, local_name, parse, tag, wrap
from sealstore.storage.base import ObjectMeta

# 50 tags of 128 + 256 characters, each up to 4 UTF-8 bytes or a 6-byte character reference,
# fit in well under this; anything larger is not a tag document.
MAX_TAGGING_BODY = 256 * 1024
COUNT_HEADER = "x-amz-tagging-count"
DIRECTIVES = ("COPY", "REPLACE")


def parse_tagging(data: bytes) -> list[Tag]:
    """The (unvalidated) tags of a ``<Tagging><TagSet><Tag><Key/><Value/></Tag>...`` body."""
    root = parse(data, "Tagging")
    sets = list(root)
    if len(sets) != 1 or local_name(sets[0]) != "TagSet":
        raise MalformedXMLError("Tagging must contain exactly one TagSet")
    tags: list[Tag] = []
    for el in sets[0]:
        if local_name(el) != "Tag":
            raise MalformedXMLError(f"unexpected element {local_name(el)} in TagSet")
        fields: dict[str, str] = {}
        for part in el:
            name = local_name(part)
            if name not in ("Key", "Value") or name in fields or len(part):
                raise MalformedXMLError(f"unexpected element {name} in Tag")
            fields[name] = part.text or ""
        if len(fields) != 2:
            raise MalformedXMLError("a Tag needs one Key and one Value")
        tags.append((fields["Key"], fields["Value"]))
    return tags


def render_tagging(tags: tuple[Tag, ...]) -> bytes:
    """The GetObjectTagging / GetBucketTagging document (an empty TagSet when untagged)."""
    items = [wrap("Tag", [tag("Key", k), tag("Value", v)]) for k, v in tags]
    return document("Tagging", wrap("TagSet", items))


async def _read_tagging(req: S3Request, *, bucket: bool) -> tuple[Tag, ...]:
    data = await req.body().read(MAX_TAGGING_BODY)
    if not data:
        raise MalformedXMLError("the request has no Tagging document")
    return rules.validate(parse_tagging(data), bucket=bucket)


def _version(req: S3Request) -> str | None:
    return requested_version(req)


# ----------------------------------------------------------------------------- object tags


async def put_object_tagging(req: S3Request) -> web.StreamResponse:
    """PUT /bucket/key?tagging: replace the object's tag set (metadata only, no data copy)."""
    bucket, key = require_key(req)
    tags = await _read_tagging(req, bucket=False)
    await rules.set_object_tags(req.ctx.storage, bucket, key, tags, version_id=_version(req))
    return req.make_response(200)


async def get_object_tagging(req: S3Request) -> web.StreamResponse:
    """GET /bucket/key?tagging: the tag set; an untagged object answers an empty TagSet."""
    bucket, key = require_key(req)
    meta = await rules.tagged_object(req.ctx.storage, bucket, key, _version(req))
    return req.xml_response(render_tagging(rules.tags_of(meta)))


async def delete_object_tagging(req: S3Request) -> web.StreamResponse:
    """DELETE /bucket/key?tagging: remove every tag (204, also when there were none)."""
    bucket, key = require_key(req)
    await rules.set_object_tags(req.ctx.storage, bucket, key, (), version_id=_version(req))
    return req.make_response(204)


# ----------------------------------------------------------------------------- bucket tags


def _bucket(req: S3Request) -> str:
    if not req.bucket:
        raise S3Error("InvalidRequest", "A bucket name is required for this operation")
    return req.bucket


async def put_bucket_tagging(req: S3Request) -> web.StreamResponse:
    """PUT /bucket?tagging: S3 requires Content-MD5 or a flexible checksum; answers 204.
    An empty TagSet leaves the bucket untagged (GetBucketTagging: NoSuchTagSet)."""
    bucket = _bucket(req)
    if not has_integrity_header(req.headers):
        raise S3Error(
            "InvalidRequest",
            "Missing required header for this request: Content-MD5 OR x-amz-checksum-*",
        )
    storage = req.ctx.storage
    if not await storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    tags = await _read_tagging(req, bucket=True)
    await storage.put_bucket_config(bucket, rules.BUCKET_TAGGING_CONFIG, rules.encode(tags) or None)
    return req.make_response(204)


async def get_bucket_tagging(req: S3Request) -> web.StreamResponse:
    """GET /bucket?tagging: the tag set, or 404 NoSuchTagSet when the bucket has none."""
    bucket = _bucket(req)
    text = await req.ctx.storage.get_bucket_config(bucket, rules.BUCKET_TAGGING_CONFIG)
    if not text:
        raise S3Error("NoSuchTagSet", resource=bucket)
    return req.xml_response(render_tagging(rules.decode(text)))


async def delete_bucket_tagging(req: S3Request) -> web.StreamResponse:
    """DELETE /bucket?tagging: 204, also when the bucket had no tags."""
    bucket = _bucket(req)
    storage = req.ctx.storage
    if not await storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    await storage.put_bucket_config(bucket, rules.BUCKET_TAGGING_CONFIG, None)
    return req.make_response(204)


# ----------------------------------------------------------------------------- hooks


def request_tagging(req: S3Request) -> str:
    """The canonical tag text a PutObject / CreateMultipartUpload request sets through
    ``x-amz-tagging`` ("" for none); refused with AWS's code before any body is read."""
    return rules.encode(rules.parse_header(req.header("x-amz-tagging")))


def with_request_tags(req: S3Request, attrs: NewObject) -> NewObject:
    """``attrs`` with the tags of the request's ``x-amz-tagging`` (PutObject and
    CreateMultipartUpload; an upload's tags apply when it completes)."""
    return replace(attrs, tagging=request_tagging(req))


def tagging_directive(req: S3Request) -> str:
    """CopyObject's ``x-amz-tagging-directive``: COPY (the default) or REPLACE; another value
    is InvalidArgument, as for the metadata directive."""
    directive = (req.header("x-amz-tagging-directive") or "COPY").upper()
    if directive not in DIRECTIVES:
        raise S3Error(
            "InvalidArgument",
            "Unknown tagging directive.",
            extra={"ArgumentName": "x-amz-tagging-directive"},
        )
    return directive


def copy_attributes(
    req: S3Request, src: ObjectMeta, attrs: NewObject | None, directive: str
) -> NewObject | None:
    """The attributes a CopyObject gives its destination, tags included.

    ``attrs`` is what the metadata directive chose (None: COPY, everything from the source,
    which the service takes whole, tags too, and refuses as a copy onto itself). The tagging
    directive then picks the tags: COPY keeps the source's, REPLACE takes the request's
    ``x-amz-tagging`` (none when absent); a REPLACE is a change, so it may copy an object
    onto itself, as metadata REPLACE may."""
    if directive == "COPY":
        if attrs is None:
            return None
        return replace(attrs, tagging=rules.stored_tagging(src.internal))
    base = attrs or NewObject(src.content_type, dict(src.user_meta), dict(src.headers))
    return replace(base, tagging=request_tagging(req))


def count_header(meta: ObjectMeta) -> dict[str, str]:
    """``x-amz-tagging-count`` for GET and HEAD: only when the object has tags (as S3)."""
    count = rules.tag_count(meta.internal)
    return {COUNT_HEADER: str(count)} if count else {}
