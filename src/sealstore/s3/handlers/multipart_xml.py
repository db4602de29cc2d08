"""Multipart upload documents: strict parsing of request bodies and query parameters, and
rendering of the result documents (pure: no I/O, unit-tested with plain values)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sealstore.s3 import checksums
from sealstore.s3.context import iso8601
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.listing import owner_xml, s3_url_encode
from sealstore.s3.xml import MalformedXMLError, child_text, document, local_name, parse, tag, wrap
from sealstore.storage import base as st


@dataclass(frozen=True)
class CompletePart:
    """One ``<Part>`` of a CompleteMultipartUpload body."""

    number: int
    etag: str  # normalised: unquoted, lower-case


# --------------------------------------------------------------------------- pure helpers


def parse_part_number(raw: str | None) -> int:
    """``partNumber`` must be an integer 1..10000 (InvalidArgument otherwise, as S3)."""
    if (
        raw is None
        or not (raw.isascii() and raw.isdigit())
        or len(raw) > 5
        or not 1 <= int(raw) <= st.MAX_PART_NUMBER
    ):
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {st.MAX_PART_NUMBER}, inclusive",
        )
    return int(raw)


def parse_complete_request(data: bytes) -> list[CompletePart]:
    """Parse ``<CompleteMultipartUpload>`` strictly; enforce ascending part numbers.

    Structure errors are MalformedXML; a list that is not strictly ascending is
    InvalidPartOrder (checked here, before any storage access, like S3).
    """
    root = parse(data, "CompleteMultipartUpload")
    parts: list[CompletePart] = []
    for el in root:
        if local_name(el) != "Part":
            raise MalformedXMLError(f"unexpected element {local_name(el)}")
        number_text = child_text(el, "PartNumber")
        etag = child_text(el, "ETag")
        if number_text is None or etag is None:
            raise MalformedXMLError("each Part needs a PartNumber and an ETag")
        number_text = number_text.strip()
        if not (number_text.isascii() and number_text.isdigit()) or len(number_text) > 5:
            raise MalformedXMLError(f"PartNumber {number_text!r} is not a number")
        number = int(number_text)
        if not 1 <= number <= st.MAX_PART_NUMBER:
            raise S3Error(
                "InvalidArgument",
                f"Part number must be an integer between 1 and {st.MAX_PART_NUMBER}, inclusive",
            )
        parts.append(CompletePart(number, st.normalize_etag(etag)))
    if not parts:
        raise MalformedXMLError("CompleteMultipartUpload lists no Part")
    for prev, cur in itertools.pairwise(parts):
        if cur.number <= prev.number:
            raise S3Error("InvalidPartOrder")
    return parts


def parse_int(raw: str | None, name: str, default: int, maximum: int) -> int:
    """Non-negative integer query parameter, capped like S3 caps max-* values."""
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise S3Error("InvalidArgument", f"{name} must be a non-negative integer")
    return min(int(raw), maximum)


def render_initiate(bucket: str, key: str, upload_id: str) -> bytes:
    """``InitiateMultipartUploadResult``."""
    return document(
        "InitiateMultipartUploadResult",
        [tag("Bucket", bucket), tag("Key", key), tag("UploadId", upload_id)],
    )


def render_complete(
    location: str, bucket: str, key: str, etag: str, checksum_xml: Sequence[str] = ()
) -> bytes:
    """``CompleteMultipartUploadResult`` (``checksum_xml``: the object's checksum elements)."""
    return document(
        "CompleteMultipartUploadResult",
        [
            tag("Location", location),
            tag("Bucket", bucket),
            tag("Key", key),
            tag("ETag", f'"{etag}"'),
            *checksum_xml,
        ],
    )


def render_list_parts(
    upload: st.UploadMeta,
    parts: list[st.PartMeta],
    *,
    marker: int,
    max_parts: int,
    truncated: bool,
    access_key: str,
) -> bytes:
    """``ListPartsResult``; NextPartNumberMarker is the last part number returned."""
    owner = owner_xml(access_key)
    rows = [
        wrap(
            "Part",
            [
                tag("PartNumber", p.number),
                tag("LastModified", iso8601(p.last_modified)),
                tag("ETag", f'"{p.etag}"'),
                tag("Size", p.size),
                *checksums.part_xml(p.internal),
            ],
        )
        for p in parts
    ]
    head = [
        tag("Bucket", upload.bucket),
        tag("Key", upload.key),
        tag("UploadId", upload.upload_id),
        owner.replace("<Owner>", "<Initiator>").replace("</Owner>", "</Initiator>"),
        owner,
        tag("StorageClass", "STANDARD"),
        tag("PartNumberMarker", marker),
        tag("NextPartNumberMarker", parts[-1].number if parts else marker),
        tag("MaxParts", max_parts),
        tag("IsTruncated", truncated),
        *checksums.upload_xml(upload.meta.internal),
    ]
    return document("ListPartsResult", head + rows)


@dataclass(frozen=True)
class UploadsQuery:
    """Validated ListMultipartUploads parameters."""

    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    upload_id_marker: str = ""
    max_uploads: int = 1000
    encoding_url: bool = False


def parse_uploads_query(query: Mapping[str, str]) -> UploadsQuery:
    """Validate ListMultipartUploads query parameters."""
    encoding = query.get("encoding-type")
    if encoding not in (None, "", "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    key_marker = query.get("key-marker", "")
    upload_id_marker = query.get("upload-id-marker", "")
    if upload_id_marker and not key_marker:
        # S3 ignores upload-id-marker without key-marker.
        upload_id_marker = ""
    return UploadsQuery(
        prefix=query.get("prefix", ""),
        delimiter=query.get("delimiter", ""),
        key_marker=key_marker,
        upload_id_marker=upload_id_marker,
        max_uploads=parse_int(query.get("max-uploads"), "max-uploads", 1000, 1000),
        encoding_url=encoding == "url",
    )


def group_uploads(
    uploads: list[st.UploadMeta], prefix: str, delimiter: str
) -> tuple[list[st.UploadMeta], list[str]]:
    """Roll uploads whose key continues past ``delimiter`` after ``prefix`` into prefixes."""
    if not delimiter:
        return uploads, []
    kept: list[st.UploadMeta] = []
    prefixes: list[str] = []
    for u in uploads:
        rest = u.key[len(prefix) :]
        idx = rest.find(delimiter)
        if idx >= 0:
            cp = prefix + rest[: idx + len(delimiter)]
            if not prefixes or prefixes[-1] != cp:
                prefixes.append(cp)
        else:
            kept.append(u)
    return kept, prefixes


def render_list_uploads(
    bucket: str,
    q: UploadsQuery,
    uploads: list[st.UploadMeta],
    prefixes: list[str],
    truncated: bool,
    next_key: str,
    next_upload_id: str,
    access_key: str,
) -> bytes:
    """``ListMultipartUploadsResult``."""

    def enc(v: str) -> str:
        return s3_url_encode(v) if q.encoding_url else v

    owner = owner_xml(access_key)
    initiator = owner.replace("<Owner>", "<Initiator>").replace("</Owner>", "</Initiator>")
    head = [
        tag("Bucket", bucket),
        tag("KeyMarker", enc(q.key_marker)),
        tag("UploadIdMarker", q.upload_id_marker),
        tag("NextKeyMarker", enc(next_key)),
        tag("NextUploadIdMarker", next_upload_id),
        tag("Delimiter", enc(q.delimiter) if q.delimiter else None),
        tag("Prefix", enc(q.prefix)),
        tag("MaxUploads", q.max_uploads),
        tag("IsTruncated", truncated),
        tag("EncodingType", "url" if q.encoding_url else None),
    ]
    rows = [
        wrap(
            "Upload",
            [
                tag("Key", enc(u.key)),
                tag("UploadId", u.upload_id),
                initiator,
                owner,
                tag("StorageClass", "STANDARD"),
                tag("Initiated", iso8601(u.initiated)),
            ],
        )
        for u in uploads
    ]
    rows.extend(wrap("CommonPrefixes", tag("Prefix", enc(p))) for p in prefixes)
    return document("ListMultipartUploadsResult", head + rows)
