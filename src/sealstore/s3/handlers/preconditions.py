"""Byte ranges and conditional headers of object requests (pure: headers + metadata in).

GET's ``Range`` (a single ``bytes=`` range, S3 semantics for what is ignored and what is
416), CopyObject/UploadPartCopy's stricter ``x-amz-copy-source-range``, the ``If-*`` read
preconditions in RFC 7232 order, and the write conditions of PutObject and
CompleteMultipartUpload (`write_condition`). No I/O: unit tests drive these with plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from sealstore.s3.errors import S3Error
from sealstore.storage.base import ObjectMeta, normalize_etag
from sealstore.storage.conditions import WriteCondition

COPY_RANGE_FORM = (
    "The x-amz-copy-source-range value must be of the form bytes=first-last where first and "
    "last are the zero-based offsets of the first and last bytes to copy"
)


@dataclass(frozen=True)
class ByteRange:
    """A satisfiable single byte range [start, start+length)."""

    start: int
    length: int


def invalid_range(size: int) -> S3Error:
    """416 InvalidRange naming the object's size, as S3 does."""
    return S3Error("InvalidRange", headers={"Content-Range": f"bytes */{size}"})


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Parse a single ``bytes=`` range; None = whole object; raises 416 when unsatisfiable.

    Syntactically invalid or multi-range headers are ignored (the whole object is sent),
    which is what S3 does.
    """
    if header is None:
        return None
    value = header.strip()
    if not value.startswith("bytes="):
        return None
    spec = value[len("bytes=") :].strip()
    if "," in spec or "-" not in spec:
        return None
    first, _, last = spec.partition("-")
    first, last = first.strip(), last.strip()
    if first == "":
        if not (last.isascii() and last.isdigit()):
            return None
        n = int(last)
        if n == 0:
            raise invalid_range(size)
        n = min(n, size)
        if size == 0:
            raise invalid_range(size)
        return ByteRange(size - n, n)
    if not (first.isascii() and first.isdigit()) or (
        last and not (last.isascii() and last.isdigit())
    ):
        return None
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise invalid_range(size)
    end = min(end, size - 1)
    return ByteRange(start, end - start + 1)


def part_range(raw: str | None, range_header: str | None, meta: ObjectMeta) -> ByteRange | None:
    """The plaintext range of ``?partNumber=N`` (None when absent); 416 for a missing part."""
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 10000:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000")
    if range_header is not None:
        raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber")
    n = int(raw)
    if not meta.parts:
        if n != 1:
            raise invalid_range(meta.size)
        return ByteRange(0, meta.size)
    offset = 0
    for p in meta.parts:
        if p.number == n:
            return ByteRange(offset, p.size)
        offset += p.size
    raise invalid_range(meta.size)


def parse_copy_range(value: str | None, size: int) -> tuple[int, int]:
    """``x-amz-copy-source-range: bytes=first-last`` -> (offset, length) within ``size``.

    Unlike GET ranges, S3 accepts only the explicit ``first-last`` form here (anything else,
    ``first > last`` included, is 400 InvalidArgument), and a range reaching past the source
    is 416 InvalidRange rather than being clipped.
    """
    if value is None:
        return 0, size
    spec = value.strip()
    if not spec.startswith("bytes="):
        raise S3Error("InvalidArgument", COPY_RANGE_FORM)
    first_s, sep, last_s = spec[len("bytes=") :].partition("-")
    if (
        not sep
        or not (first_s.isascii() and first_s.isdigit())
        or not (last_s.isascii() and last_s.isdigit())
        or int(first_s) > int(last_s)
    ):
        raise S3Error("InvalidArgument", COPY_RANGE_FORM)
    first, last = int(first_s), int(last_s)
    if last >= size:
        raise S3Error("InvalidRange")
    return first, last - first + 1


def write_condition(headers: Mapping[str, str]) -> WriteCondition | None:
    """The conditional write PutObject / CompleteMultipartUpload asks for, or None.

    ``If-None-Match`` must be ``*`` (S3 implements no other value: 501 NotImplemented);
    ``If-Match`` names the ETag the current object must have. The object service checks it
    before the upload and the store again when publishing (`objects.conditional`).
    """
    none_match = headers.get("if-none-match")
    if_match = headers.get("if-match")
    if none_match is None and if_match is None:
        return None
    if none_match is not None and none_match.strip() != "*":
        raise S3Error(
            "NotImplemented",
            "A header you provided implies functionality that is not implemented",
            extra={"Header": "If-None-Match"},
        )
    return WriteCondition(
        absent=none_match is not None,
        etag=None if if_match is None else if_match.strip(),
    )


def _parse_http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _etag_matches(header: str, etag: str) -> bool:
    want = normalize_etag(etag)
    for candidate in header.split(","):
        c = candidate.strip()
        if c == "*" or normalize_etag(c.removeprefix("W/")) == want:
            return True
    return False


def check_conditions(
    headers: Mapping[str, str], meta: ObjectMeta, *, prefix: str = "", copy: bool = False
) -> int | None:
    """Evaluate If-* preconditions (RFC 7232 order, S3 semantics).

    Returns None to proceed, 304 (not modified) or 412 (precondition failed). For copy
    sources (``prefix="x-amz-copy-source-"``) every failure is 412.
    """
    mtime = datetime.fromtimestamp(int(meta.last_modified), tz=UTC)
    if_match = headers.get(prefix + "if-match")
    if_none_match = headers.get(prefix + "if-none-match")
    if_unmod = _parse_http_date(headers.get(prefix + "if-unmodified-since"))
    if_mod = _parse_http_date(headers.get(prefix + "if-modified-since"))
    if if_match is not None:
        if not _etag_matches(if_match, meta.etag):
            return 412
    elif if_unmod is not None and mtime > if_unmod:
        return 412
    not_modified = 412 if copy else 304
    if if_none_match is not None:
        if _etag_matches(if_none_match, meta.etag):
            return not_modified
    elif if_mod is not None and mtime <= if_mod:
        return not_modified
    return None


def require_copy_source_conditions(headers: Mapping[str, str], src: ObjectMeta) -> None:
    """PreconditionFailed unless the ``x-amz-copy-source-if-*`` headers hold for ``src``."""
    if check_conditions(headers, src, prefix="x-amz-copy-source-", copy=True) is not None:
        raise S3Error("PreconditionFailed")
