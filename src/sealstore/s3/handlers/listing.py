"""ListObjectsV2 (``GET /bucket?list-type=2``) and ListObjects V1 (``GET /bucket``).

Parsing and rendering are pure functions so the exact S3 XML can be unit-tested; the handler
only asks storage for one page. Storage returns objects with client-visible values (plaintext
size, plaintext-MD5 or multipart ETag), so listing never needs the KMS.

Pagination: a V2 continuation token is the base64 of the last key or common prefix returned
(opaque to clients, validated on the way back in); an empty one lists from the start (and is
echoed), as S3 does. S3 never returns a common prefix that sorts at or before the marker, so
paging with a delimiter cannot repeat a prefix.

``encoding-type=url`` encodes exactly the elements S3 encodes, which differ by version
(`ENCODED_V1`, `ENCODED_V2`): V1 leaves the top-level ``Prefix`` as sent, V2 encodes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from sealstore.s3.context import S3Request, iso8601
from sealstore.s3.errors import S3Error
from sealstore.s3.xml import document, tag, wrap

__all__ = [
    "DEFAULT_MAX_KEYS",
    "ListEntry",
    "ListPage",
    "ListParams",
    "decode_continuation_token",
    "encode_continuation_token",
    "fetch_page",
    "list_objects",
    "list_objects_v1",
    "list_objects_v2",
    "owner_id",
    "owner_xml",
    "parse_list_params",
    "render_v1",
    "render_v2",
    "request_owner",
    "s3_url_encode",
]

DEFAULT_MAX_KEYS = 1000
# The elements S3 URL-encodes under encoding-type=url (what botocore decodes, per version);
# "CommonPrefixes/Prefix" and "Contents/Key" are the nested ones.
ENCODED_V1 = frozenset(
    {"Delimiter", "Marker", "NextMarker", "Contents/Key", "CommonPrefixes/Prefix"}
)
ENCODED_V2 = frozenset(
    {"Delimiter", "Prefix", "StartAfter", "Contents/Key", "CommonPrefixes/Prefix"}
)


@dataclass(frozen=True)
class ListParams:
    """Validated query parameters of one ListObjects request (V1 or V2)."""

    v2: bool
    prefix: str = ""
    delimiter: str = ""
    max_keys: int = DEFAULT_MAX_KEYS
    encoding_url: bool = False
    fetch_owner: bool = False
    continuation_token: str | None = None  # V2, as sent (echoed back verbatim)
    start_after: str = ""  # V2 start-after, as sent
    marker: str = ""  # V1 marker, as sent

    @property
    def effective_marker(self) -> str:
        """The key after which the page starts (token beats start-after, as in S3)."""
        if self.v2:
            if self.continuation_token:  # an empty token lists from the start
                return decode_continuation_token(self.continuation_token)
            return self.start_after
        return self.marker


@dataclass(frozen=True)
class ListEntry:
    """One ``<Contents>`` row: client-visible values only."""

    key: str
    last_modified: float
    etag: str  # unquoted
    size: int
    storage_class: str = "STANDARD"


@dataclass
class ListPage:
    """One page of results, merged from storage in S3 (UTF-8 byte) order."""

    contents: list[ListEntry] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)
    is_truncated: bool = False
    next_marker: str | None = None  # last key or prefix returned when truncated


def encode_continuation_token(marker: str) -> str:
    """Opaque V2 token for "continue after ``marker``"."""
    return base64.b64encode(marker.encode("utf-8")).decode("ascii")


def decode_continuation_token(token: str) -> str:
    """Reverse :func:`encode_continuation_token`; anything else is InvalidArgument."""
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
        marker = raw.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from None
    if not marker or base64.b64encode(raw).decode("ascii") != token:
        # Only tokens this server issued (canonical padding, non-empty marker) are accepted.
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect")
    return marker


def _parse_max_keys(raw: str | None) -> int:
    """S3 accepts 0..2^31-1 and silently caps at 1000; non-numbers and negatives are errors."""
    if raw is None or raw == "":
        return DEFAULT_MAX_KEYS
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise S3Error("InvalidArgument", "max-keys must be an integer between 0 and 2147483647")
    value = int(raw)
    if value > 2**31 - 1:
        raise S3Error("InvalidArgument", "max-keys must be an integer between 0 and 2147483647")
    return min(value, DEFAULT_MAX_KEYS)


def parse_list_params(query: Mapping[str, str]) -> ListParams:
    """Validate the query of a ListObjects request (V2 when ``list-type=2``)."""
    list_type = query.get("list-type")
    if list_type not in (None, "1", "2"):
        raise S3Error("InvalidArgument", "list-type must be 1 or 2")
    v2 = list_type == "2"
    encoding = query.get("encoding-type")
    if encoding not in (None, "", "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    fetch_owner_raw = query.get("fetch-owner")
    if fetch_owner_raw not in (None, "", "true", "false"):
        raise S3Error("InvalidArgument", "fetch-owner must be true or false")
    params = ListParams(
        v2=v2,
        prefix=query.get("prefix", ""),
        delimiter=query.get("delimiter", ""),
        max_keys=_parse_max_keys(query.get("max-keys")),
        encoding_url=encoding == "url",
        fetch_owner=fetch_owner_raw == "true",
        continuation_token=query.get("continuation-token") if v2 else None,
        start_after=query.get("start-after", "") if v2 else "",
        marker="" if v2 else query.get("marker", ""),
    )
    if params.continuation_token:
        decode_continuation_token(params.continuation_token)
    return params


def s3_url_encode(value: str) -> str:
    """Encode a name the way S3 does for ``encoding-type=url`` (``/`` stays literal).

    Clients decode with unquote_plus, so a literal ``+`` must be sent as ``%2B`` and spaces
    as ``%20`` -- which is what percent-encoding everything except unreserved chars gives.
    """
    return quote(value, safe="/~", encoding="utf-8", errors="surrogatepass")


def owner_id(access_key: str) -> str:
    """A stable canonical-user-shaped owner id (64 hex) derived from the access key.

    The access key itself is shown as DisplayName by S3-compatible servers; the id is a hash
    so it has the shape SDKs expect without exposing anything but that.
    """
    return hashlib.sha256(b"sealstore-owner:" + access_key.encode()).hexdigest()


def owner_xml(access_key: str) -> str:
    """Render an ``<Owner>`` element for listing responses."""
    return wrap("Owner", [tag("ID", owner_id(access_key)), tag("DisplayName", access_key)])


def _enc(params: ListParams, element: str, value: str) -> str:
    """``value`` as S3 sends ``element`` (a name in `ENCODED_V1` / `ENCODED_V2` is
    URL-encoded under encoding-type=url)."""
    encoded = ENCODED_V2 if params.v2 else ENCODED_V1
    return s3_url_encode(value) if params.encoding_url and element in encoded else value


def _contents_xml(params: ListParams, page: ListPage, owner: str | None) -> list[str]:
    rows = []
    for e in page.contents:
        rows.append(
            wrap(
                "Contents",
                [
                    tag("Key", _enc(params, "Contents/Key", e.key)),
                    tag("LastModified", iso8601(e.last_modified)),
                    tag("ETag", f'"{e.etag}"'),
                    tag("Size", e.size),
                    owner or "",
                    tag("StorageClass", e.storage_class),
                ],
            )
        )
    rows.extend(
        wrap("CommonPrefixes", tag("Prefix", _enc(params, "CommonPrefixes/Prefix", p)))
        for p in page.common_prefixes
    )
    return rows


def render_v2(bucket: str, params: ListParams, page: ListPage, access_key: str) -> bytes:
    """Render a ListObjectsV2 ``ListBucketResult`` (element order as AWS sends it)."""
    next_token = (
        encode_continuation_token(page.next_marker)
        if page.is_truncated and page.next_marker
        else None
    )
    owner = owner_xml(access_key) if params.fetch_owner else None
    head = [
        tag("Name", bucket),
        tag("Prefix", _enc(params, "Prefix", params.prefix)),
        tag("ContinuationToken", params.continuation_token),
        tag("StartAfter", _enc(params, "StartAfter", params.start_after) or None),
        tag("KeyCount", len(page.contents) + len(page.common_prefixes)),
        tag("MaxKeys", params.max_keys),
        tag("Delimiter", _enc(params, "Delimiter", params.delimiter) or None),
        tag("EncodingType", "url" if params.encoding_url else None),
        tag("IsTruncated", page.is_truncated),
        tag("NextContinuationToken", next_token),
    ]
    return document("ListBucketResult", head + _contents_xml(params, page, owner))


def render_v1(bucket: str, params: ListParams, page: ListPage, access_key: str) -> bytes:
    """Render a ListObjects (V1) ``ListBucketResult``.

    NextMarker is sent only when truncated *and* a delimiter was given, as S3 does; without a
    delimiter clients use the last Key as the next marker.
    """
    next_marker = page.next_marker if page.is_truncated and params.delimiter else None
    head = [
        tag("Name", bucket),
        tag("Prefix", _enc(params, "Prefix", params.prefix)),
        tag("Marker", _enc(params, "Marker", params.marker)),
        tag("NextMarker", _enc(params, "NextMarker", next_marker) if next_marker else None),
        tag("MaxKeys", params.max_keys),
        tag("Delimiter", _enc(params, "Delimiter", params.delimiter) or None),
        tag("EncodingType", "url" if params.encoding_url else None),
        tag("IsTruncated", page.is_truncated),
    ]
    return document("ListBucketResult", head + _contents_xml(params, page, owner_xml(access_key)))


def _entry(obj: Any) -> ListEntry:
    """Convert a storage ObjectMeta into the row a client sees."""
    return ListEntry(
        key=obj.key,
        last_modified=float(obj.last_modified),
        etag=obj.etag,
        size=int(obj.size),
    )


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


async def fetch_page(storage: Any, bucket: str, params: ListParams) -> ListPage:
    """Ask storage for one page, enforcing S3's marker rules on common prefixes.

    A common prefix that sorts at or before the marker was already returned on an earlier
    page (or precedes start-after), so it is dropped; storage is asked again when that left
    the page short, so pages stay full and ``is_truncated`` stays truthful.
    """
    page = ListPage()
    if params.max_keys == 0:
        return page
    marker = params.effective_marker
    after = marker
    want = params.max_keys
    for _ in range(want + 2):  # each round makes progress past at least one entry
        res = await storage.list_objects(
            bucket,
            prefix=params.prefix,
            start_after=after,
            delimiter=params.delimiter,
            max_keys=want - len(page.contents) - len(page.common_prefixes),
        )
        for obj in res.objects:
            page.contents.append(_entry(obj))
        for p in res.common_prefixes:
            if marker and _utf8(p) <= _utf8(marker):
                continue
            page.common_prefixes.append(p)
        got = len(page.contents) + len(page.common_prefixes)
        if not res.is_truncated:
            page.is_truncated = False
            break
        nxt = res.next_marker
        if got >= want or not nxt or nxt == after:
            page.is_truncated = True
            break
        after = nxt
    _finish(page)
    return page


def _finish(page: ListPage) -> None:
    """Sort rows into S3 order and set the next marker to the last row returned."""
    page.contents.sort(key=lambda e: _utf8(e.key))
    page.common_prefixes.sort(key=_utf8)
    if not page.is_truncated:
        page.next_marker = None
        return
    last_key = _utf8(page.contents[-1].key) if page.contents else b""
    last_prefix = _utf8(page.common_prefixes[-1]) if page.common_prefixes else b""
    page.next_marker = max(last_key, last_prefix).decode("utf-8", "surrogatepass") or None


def request_owner(req: S3Request) -> str:
    """Access key the request was signed with (shown as the owner in listings)."""
    ak = getattr(req.auth, "access_key", None)
    return ak if isinstance(ak, str) and ak else req.ctx.settings.root_user


async def list_objects(req: S3Request) -> web.StreamResponse:
    """GET /bucket: ListObjectsV2 when ``list-type=2`` is present, V1 otherwise.

    The query alone decides the version (``list-type=1`` is an explicit V1), so the router
    may send either operation name here.
    """
    bucket = req.bucket
    if not bucket:
        raise S3Error("InvalidRequest", "A bucket name is required for this operation")
    params = parse_list_params(req.query)
    storage = req.ctx.storage
    if not await storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    page = await fetch_page(storage, bucket, params)
    render = render_v2 if params.v2 else render_v1
    return req.xml_response(render(bucket, params, page, request_owner(req)))


# The router names both operations; the query decides the version either way.
list_objects_v2 = list_objects
list_objects_v1 = list_objects
