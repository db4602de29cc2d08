"""Storage backend contract: the data types, errors and name rules every backend shares.

The S3 layer codes against these types only, so a backend (local disk today, an S3 gateway
later) can be swapped without touching request handling. Validation helpers live here, not in
a backend, so the HTTP layer can reject a bad name before it opens a stream.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
import secrets
import time
from dataclasses import dataclass, field

MAX_KEY_BYTES = 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3: every part but the last must carry at least 5 MiB
MAX_PART_NUMBER = 10000
# The version id S3 shows for the one version an unversioned or suspended write makes.
NULL_VERSION = "null"
_VERSION_ID = re.compile(r"[0-9a-f]{32}")


class Versioning(enum.StrEnum):
    """A bucket's versioning state; UNVERSIONED (never configured) cannot come back once a
    bucket was Enabled, as in S3."""

    UNVERSIONED = ""
    ENABLED = "Enabled"
    SUSPENDED = "Suspended"


def new_version_id() -> str:
    """A fresh version id: 32 hex digits, time-ordered then random (opaque to clients).

    Chosen by the caller of ``commit`` (the object service binds it into the authenticated
    layout before the data is published) and by a backend for the delete markers it writes.
    """
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"


def is_version_id(value: str) -> bool:
    """Whether ``value`` is a well-formed version id (``null`` or one `new_version_id` makes);
    a malformed one is S3's InvalidArgument, an unknown well-formed one NoSuchVersion."""
    return value == NULL_VERSION or _VERSION_ID.fullmatch(value) is not None


@dataclass
class BucketInfo:
    """One bucket as listed by ListBuckets."""

    name: str
    created: float


@dataclass
class PartMeta:
    """One stored part of a multipart upload (or of a completed multipart object).

    `size` is the client-visible (plaintext) size, `stored_size` the bytes on disk; they differ
    for encrypted parts. `internal` carries per-part SSE entries the SSE layer needs.
    """

    number: int
    etag: str
    size: int
    stored_size: int
    last_modified: float
    internal: dict[str, str] = field(default_factory=dict)


@dataclass
class ObjectMeta:
    """Everything the index knows about one object.

    `files` is owned by the backend: an opaque locator of the stored data (one entry per
    stored part, in order). Callers pass metadata from `head`/`commit` back to `read` unchanged;
    when building a new object they leave it empty.

    Versioning: `version_id` None is S3's ``null`` version (every object of an unversioned
    bucket, and what a suspended bucket writes); a delete marker is a version without data
    (`is_delete_marker`); `is_latest` says whether it is the key's current version (set by
    `head` and `list_versions`; always True for what `commit` returns).
    """

    bucket: str
    key: str
    size: int = 0
    stored_size: int = 0
    etag: str = ""
    last_modified: float = 0.0
    content_type: str = "application/octet-stream"
    user_meta: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    internal: dict[str, str] = field(default_factory=dict)
    parts: list[PartMeta] = field(default_factory=list)
    files: list[str] = field(default_factory=list, repr=False)
    version_id: str | None = None
    is_delete_marker: bool = False
    is_latest: bool = True

    @property
    def version_label(self) -> str:
        """The version id as S3 shows it (``null`` for the null version)."""
        return self.version_id or NULL_VERSION


@dataclass(frozen=True)
class DeleteResult:
    """What a delete did: ``delete_marker`` True when it wrote a marker (``version_id`` is the
    marker's, None = null) or removed one; both unset for an unversioned bucket's delete."""

    version_id: str | None = None
    delete_marker: bool = False
    versioned: bool = False  # the answer carries a version (header x-amz-version-id)


@dataclass(frozen=True)
class VersionList:
    """One page of ListObjectVersions: versions and markers (key ascending, newest first per
    key), common prefixes, and where the next page starts when truncated."""

    versions: list[ObjectMeta]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None = None
    next_version_id_marker: str | None = None


@dataclass
class UploadMeta:
    """An in-progress multipart upload; `meta` is the template of the final object
    (user metadata, headers and the sealed object key in `internal`)."""

    upload_id: str
    bucket: str
    key: str
    initiated: float
    meta: ObjectMeta


@dataclass
class ListResult:
    """One page of a ListObjects answer; `next_marker` is set only when `is_truncated`."""

    objects: list[ObjectMeta]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None


class StorageError(Exception):
    """Base of every storage failure; the S3 layer maps `code` to an S3 error response.

    Each subclass is named after, and carries as `code`, the S3 error code it stands for, so
    the HTTP layer needs no per-class table.
    """

    code = "InternalError"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = cls.__name__


class NoSuchBucket(StorageError):
    """The bucket does not exist."""


class BucketAlreadyOwnedByYou(StorageError):
    """CreateBucket on a bucket that already exists (single-tenant server: always ours)."""


class BucketNotEmpty(StorageError):
    """DeleteBucket while objects remain."""


class NoSuchKey(StorageError):
    """The object does not exist (or vanished before its data was opened)."""


class NoSuchVersion(StorageError):
    """The version id names no version of that key (it is well-formed)."""


class DeleteMarkerCurrent(NoSuchKey):
    """The key's current version is a delete marker: S3's 404 NoSuchKey, answered with the
    ``x-amz-delete-marker`` and ``x-amz-version-id`` headers of ``marker``."""

    def __init__(self, marker: ObjectMeta) -> None:
        super().__init__(marker.key)
        self.marker = marker


DeleteMarkerCurrent.code = "NoSuchKey"


class NoSuchUpload(StorageError):
    """The multipart upload id is unknown, completed or aborted."""


class InvalidPart(StorageError):
    """A listed part is missing or its ETag does not match."""


class InvalidPartOrder(StorageError):
    """Part numbers in CompleteMultipartUpload are not strictly ascending."""


class EntityTooSmall(StorageError):
    """A part other than the last is smaller than 5 MiB."""


class StorageFull(StorageError):
    """The data directory's filesystem is out of space or quota (MinIO: XMinioStorageFull,
    HTTP 507). Nothing was published."""


StorageFull.code = "XMinioStorageFull"


class ObjectChanged(StorageError):
    """A metadata-only update found the object (or upload) no longer the one it was given:
    replaced, deleted or updated meanwhile. Nothing was changed; re-read and decide again."""


ObjectChanged.code = "ConditionalRequestConflict"


class DataCorrupted(StorageError):
    """A data file disagrees with the index (e.g. shorter than indexed): changed at rest.
    Raised before the first byte where the backend can tell (when it opens the files)."""


DataCorrupted.code = "XMinioObjectTampered"


class InvalidArgument(StorageError):
    """A request argument is out of range (e.g. a part number outside 1..10000)."""


class InvalidObjectName(StorageError):
    """The object key breaks the key rules; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidBucketName(StorageError):
    """The bucket name breaks the S3 naming rules; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_BUCKET_CHARS = re.compile(r"[a-z0-9.-]+")


def validate_bucket_name(name: str) -> None:
    """Raise InvalidBucketName unless `name` follows the S3 rules (as MinIO enforces them).

    3-63 characters of lower-case letters, digits, '.' and '-', starting and ending with a
    letter or digit, no '..', '.-' or '-.', and not shaped like an IPv4 address.
    """
    if not 3 <= len(name) <= 63:
        raise InvalidBucketName("bucket name must be 3 to 63 characters long")
    if not _BUCKET_CHARS.fullmatch(name):
        raise InvalidBucketName(
            "bucket name may contain only lower-case letters, digits, '.' and '-'"
        )
    if not (name[0].isalnum() and name[-1].isalnum()):
        raise InvalidBucketName("bucket name must start and end with a letter or digit")
    if ".." in name or ".-" in name or "-." in name:
        raise InvalidBucketName("bucket name must not contain '..', '.-' or '-.'")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return
    raise InvalidBucketName("bucket name must not be formatted as an IP address")


def encode_key(key: str) -> bytes:
    """Validate an object key and return its UTF-8 bytes (the form the index sorts by).

    Keys are never file names here, but keys that *look* like path escapes are still refused
    (as MinIO does) so that no tool that maps keys to paths can be tricked later: '.' or '..'
    segments, a leading '/', and NUL. Lone surrogates (undecodable bytes) are not UTF-8.
    """
    if not isinstance(key, str):
        raise InvalidObjectName("object key must be a string")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidObjectName("object key must be valid UTF-8") from None
    if not raw:
        raise InvalidObjectName("object key must not be empty")
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidObjectName(f"object key must be at most {MAX_KEY_BYTES} bytes of UTF-8")
    if b"\x00" in raw:
        raise InvalidObjectName("object key must not contain NUL")
    if raw.startswith(b"/"):
        raise InvalidObjectName("object key must not start with '/'")
    if any(segment in (b".", b"..") for segment in raw.split(b"/")):
        raise InvalidObjectName("object key must not contain '.' or '..' path segments")
    return raw


def validate_object_key(key: str) -> None:
    """Raise InvalidObjectName unless `key` is acceptable (see `encode_key`)."""
    encode_key(key)


def normalize_etag(etag: str) -> str:
    """Strip the optional surrounding quotes and lower-case an ETag for comparison."""
    etag = etag.strip()
    if len(etag) >= 2 and etag[0] == etag[-1] == '"':
        etag = etag[1:-1]
    return etag.lower()


def multipart_etag(part_etags: list[str]) -> str:
    """S3's multipart ETag: hex(md5(concat of binary part MD5s)) + ``-N``.

    A listed ETag that is not 32 hex characters cannot belong to any part (parts always carry
    their plaintext MD5), so it raises InvalidPart.
    """
    digest = hashlib.md5(usedforsecurity=False)
    for etag in part_etags:
        try:
            raw = bytes.fromhex(normalize_etag(etag))
        except ValueError:
            raise InvalidPart(f"part ETag {etag!r} is not an MD5 digest") from None
        if len(raw) != 16:
            raise InvalidPart(f"part ETag {etag!r} is not an MD5 digest")
        digest.update(raw)
    return f"{digest.hexdigest()}-{len(part_etags)}"
