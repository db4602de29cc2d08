"""GetObjectAttributes: ``GET /bucket/key?attributes`` with ``x-amz-object-attributes``.

One request answers what would otherwise take a HEAD and a ListParts: the ETag (without
quotes, unlike every other S3 response: AWS does so on purpose), the stored checksum (its
value *without* the ``-N`` of a composite checksum, and its type), the part list of a
multipart object (with per-part checksums and paging only when the checksum is COMPOSITE;
otherwise just the part count, as AWS), the storage class and the size. Only the attributes
asked for are returned; ``Last-Modified`` is a header.

The object's key is opened and its layout checked exactly as for HEAD, so attributes of an
object that would fail to read (tampered layout or checksum, unreadable key) are not served.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from sealstore.objects import checksum as ck
from sealstore.s3 import checksums, sse_headers
from sealstore.s3.context import S3Request, http_date
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.object_request import require_key
from sealstore.s3.xml import document, tag, wrap
from sealstore.storage.base import ObjectMeta

__all__ = ["ATTRIBUTES", "get_object_attributes", "parse_attributes", "render_attributes"]

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_INT = 2147483647
DEFAULT_MAX_PARTS = 1000


def parse_attributes(values: list[str]) -> set[str]:
    """The names in every ``x-amz-object-attributes`` header (comma-separated), checked."""
    names = {n.strip() for v in values for n in v.split(",") if n.strip()}
    if not names:
        raise S3Error(
            "InvalidRequest",
            "The x-amz-object-attributes header specifying the attributes to be retrieved is "
            "either missing or empty",
        )
    if not names <= set(ATTRIBUTES):
        raise S3Error("InvalidArgument", "Invalid attribute name specified.")
    return names


def _int_header(headers: Mapping[str, str], name: str, arg: str, default: int) -> int:
    raw = headers.get(name)
    if raw is None or raw.strip() == "":
        return default
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_INT:
        raise S3Error(
            "InvalidArgument", f"Argument {arg} must be an integer between 0 and {MAX_INT}"
        )
    return int(raw)


def _object_parts(meta: ObjectMeta, marker: int, max_parts: int) -> str | None:
    if not meta.parts:
        return None
    count = tag("PartsCount", len(meta.parts))
    cs = ck.stored(meta.internal)
    if cs is None or cs.type != ck.COMPOSITE:
        return wrap("ObjectParts", [count])
    after = [p for p in meta.parts if p.number > marker]
    page = after[:max_parts]
    truncated = len(after) > len(page)
    rows = [
        wrap(
            "Part",
            [tag("PartNumber", p.number), tag("Size", p.size), *checksums.part_xml(p.internal)],
        )
        for p in page
    ]
    head = [
        count,
        tag("PartNumberMarker", marker),
        tag("NextPartNumberMarker", page[-1].number if page else marker),
        tag("MaxParts", max_parts),
        tag("IsTruncated", truncated),
    ]
    return wrap("ObjectParts", head + rows)


def render_attributes(meta: ObjectMeta, names: set[str], marker: int, max_parts: int) -> bytes:
    """``GetObjectAttributesResponse`` with the asked-for attributes, in S3's order."""
    children: list[str] = []
    if "ETag" in names:
        children.append(tag("ETag", meta.etag))
    cs = ck.stored(meta.internal)
    if "Checksum" in names and cs is not None:
        children.append(wrap("Checksum", checksums.xml_tags(cs, shown=False)))
    if "ObjectParts" in names:
        parts = _object_parts(meta, marker, max_parts)
        if parts is not None:
            children.append(parts)
    if "StorageClass" in names:
        children.append(tag("StorageClass", "STANDARD"))
    if "ObjectSize" in names:
        children.append(tag("ObjectSize", meta.size))
    return document("GetObjectAttributesResponse", children)


async def get_object_attributes(req: S3Request) -> web.StreamResponse:
    """GET /bucket/key?attributes."""
    bucket, key = require_key(req)
    sse_headers.reject_sse_on_read(req.headers)
    names = parse_attributes(req.headers.getall("x-amz-object-attributes", []))
    max_parts = _int_header(req.headers, "x-amz-max-parts", "max-parts", DEFAULT_MAX_PARTS)
    marker = _int_header(req.headers, "x-amz-part-number-marker", "part-number-marker", 0)
    objects = req.ctx.objects
    meta = await objects.head(bucket, key)
    await objects.verify(meta)  # the key opens and the layout (checksum included) holds
    req.response_headers["Last-Modified"] = http_date(meta.last_modified)
    return req.xml_response(render_attributes(meta, names, marker, max_parts))
