"""The XML and query side of versioning: VersioningConfiguration documents, version-id query
values, the ListObjectVersions query and its ``ListVersionsResult`` (pure functions, so the
exact S3 shapes are unit-tested without a server).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from sealstore.s3.context import iso8601
from sealstore.s3.errors import S3Error
from sealstore.s3.xml import MalformedXMLError, document, local_name, parse, tag, wrap
from sealstore.storage.base import ObjectMeta, Versioning, VersionList, is_version_id

DEFAULT_MAX_KEYS = 1000
INVALID_VERSION = "Invalid version id specified"


def parse_version_id(value: str | None) -> str | None:
    """A ``versionId`` query value: None when absent, else a well-formed id or ``null``;
    anything else is S3's 400 InvalidArgument (an unknown well-formed id is NoSuchVersion,
    found later)."""
    if value is None:
        return None
    if value == "":
        raise S3Error(
            "InvalidArgument",
            "Version id cannot be the empty string",
            extra={"ArgumentName": "versionId"},
        )
    if not is_version_id(value):
        raise S3Error(
            "InvalidArgument",
            INVALID_VERSION,
            extra={"ArgumentName": "versionId", "ArgumentValue": value},
        )
    return value


def parse_versioning(data: bytes) -> Versioning:
    """``<VersioningConfiguration><Status/>[<MfaDelete/>]</VersioningConfiguration>``.

    Not XML or another root: MalformedXML. A Status other than Enabled/Suspended (or none),
    or an MfaDelete other than Enabled/Disabled: IllegalVersioningConfigurationException.
    MfaDelete Enabled needs MFA devices this server does not have: NotImplemented.
    """
    root = parse(data, "VersioningConfiguration")
    status: str | None = None
    mfa: str | None = None
    for el in root:
        name = local_name(el)
        text = (el.text or "").strip()
        if name == "Status":
            status = text
        elif name == "MfaDelete":
            mfa = text
        else:
            raise MalformedXMLError(f"unexpected element {name} in VersioningConfiguration")
    if status not in (Versioning.ENABLED.value, Versioning.SUSPENDED.value) or mfa not in (
        None,
        "Enabled",
        "Disabled",
    ):
        raise S3Error("IllegalVersioningConfigurationException")
    if mfa == "Enabled":
        raise S3Error("NotImplemented", "MFA Delete is not supported by this server")
    return Versioning(status)


def render_versioning(state: Versioning) -> bytes:
    """GetBucketVersioning: an empty configuration until versioning was ever configured."""
    status = tag("Status", state.value) if state is not Versioning.UNVERSIONED else ""
    return document("VersioningConfiguration", status)


@dataclass(frozen=True)
class VersionsQuery:
    """Validated query of one ListObjectVersions request."""

    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    version_id_marker: str = ""
    max_keys: int = DEFAULT_MAX_KEYS
    encoding_url: bool = False


def _max_keys(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_MAX_KEYS
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > 2**31 - 1:
        raise S3Error("InvalidArgument", "max-keys must be an integer between 0 and 2147483647")
    return min(int(raw), DEFAULT_MAX_KEYS)


def parse_versions_query(query: Mapping[str, str]) -> VersionsQuery:
    """S3's rules: a version-id-marker needs a key-marker and must be a valid id."""
    encoding = query.get("encoding-type")
    if encoding not in (None, "", "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    key_marker = query.get("key-marker", "")
    version_marker = query.get("version-id-marker", "")
    if version_marker:
        if not key_marker:
            raise S3Error(
                "InvalidArgument", "A version-id marker cannot be specified without a key marker."
            )
        if not is_version_id(version_marker):
            raise S3Error("InvalidArgument", INVALID_VERSION)
    return VersionsQuery(
        prefix=query.get("prefix", ""),
        delimiter=query.get("delimiter", ""),
        key_marker=key_marker,
        version_id_marker=version_marker,
        max_keys=_max_keys(query.get("max-keys")),
        encoding_url=encoding == "url",
    )


def _enc(q: VersionsQuery, value: str) -> str:
    if not q.encoding_url:
        return value
    return quote(value, safe="/~", encoding="utf-8", errors="surrogatepass")


def _entry(q: VersionsQuery, meta: ObjectMeta, owner: str) -> str:
    common = [
        tag("Key", _enc(q, meta.key)),
        tag("VersionId", meta.version_label),
        tag("IsLatest", meta.is_latest),
        tag("LastModified", iso8601(meta.last_modified)),
    ]
    if meta.is_delete_marker:
        return wrap("DeleteMarker", [*common, owner])
    rest = [tag("ETag", f'"{meta.etag}"'), tag("Size", meta.size), owner]
    return wrap("Version", [*common, *rest, tag("StorageClass", "STANDARD")])


def render_versions(bucket: str, q: VersionsQuery, page: VersionList, owner: str) -> bytes:
    """``ListVersionsResult`` in AWS's element order; ``owner`` is a rendered ``<Owner>``."""
    head = [
        tag("Name", bucket),
        tag("Prefix", _enc(q, q.prefix)),
        tag("KeyMarker", _enc(q, q.key_marker)),
        tag("VersionIdMarker", q.version_id_marker),
        tag("NextKeyMarker", _enc(q, page.next_key_marker) if page.next_key_marker else None),
        tag("NextVersionIdMarker", page.next_version_id_marker),
        tag("MaxKeys", q.max_keys),
        tag("Delimiter", _enc(q, q.delimiter) if q.delimiter else None),
        tag("EncodingType", "url" if q.encoding_url else None),
        tag("IsTruncated", page.is_truncated),
    ]
    rows = [_entry(q, meta, owner) for meta in page.versions]
    rows.extend(wrap("CommonPrefixes", tag("Prefix", _enc(q, p))) for p in page.common_prefixes)
    return document("ListVersionsResult", head + rows)
