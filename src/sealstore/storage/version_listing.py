"""ListObjectVersions paging over the two version tables (pure logic over blocking scans).

S3's order: keys in UTF-8 byte order, each key's versions newest first (delete markers
included); with a delimiter, keys rolled up into common prefixes exactly as ListObjects does
(`listing.py`), a prefix counting one entry and reported only after the key marker. A key's
current version comes from the `objects` scan and is always its newest; its older versions
come from the `versions` scan, ordered (key, seq descending). Both scans are merged lazily
in growing batches, so a page costs a few index seeks however many versions a key has.

Markers: ``key_marker`` alone continues after every version of that key; with
``version_id_marker`` too, after that version of that key (an unknown version id continues
after the key, as if only the key marker was given).
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sealstore.storage.base import NULL_VERSION, ObjectMeta, VersionList
from sealstore.storage.index_rows import prefix_end

if TYPE_CHECKING:
    from sealstore.storage.index import Index

# scan_current(lower, inclusive, upper, limit) -> current versions in key order
ScanCurrent = Callable[[bytes, bool, "bytes | None", int], list[ObjectMeta]]
# scan_older(lower, inclusive, upper, limit, below_seq) -> (meta, seq) in (key, seq desc) order
ScanOlder = Callable[[bytes, bool, "bytes | None", int, "int | None"], list[tuple[ObjectMeta, int]]]
# version_seq(key, version id) -> the marker's position (see Index.version_seq), None if unknown
VersionSeq = Callable[[bytes, str], "int | None"]

_BATCH = 1000
_FIRST_BATCH = 8


def _current(scan: ScanCurrent, lower: bytes, inclusive: bool, upper: bytes | None) -> Iterator:
    batch = _FIRST_BATCH
    while True:
        rows = scan(lower, inclusive, upper, batch)
        for meta in rows:
            yield (meta.key.encode("utf-8"), 0, 0, meta)
        if len(rows) < batch:
            return
        lower, inclusive = rows[-1].key.encode("utf-8"), False
        batch = min(batch * 4, _BATCH)


def _older(
    scan: ScanOlder, lower: bytes, inclusive: bool, upper: bytes | None, below: int | None
) -> Iterator:
    """`versions` rows from ``lower`` (with ``below``: key ``lower``'s rows older than it
    first), paged by a (key, seq) cursor so no key's versions are skipped or repeated."""
    batch = _FIRST_BATCH
    cursor = None if below is None else (lower, below)
    while True:
        if cursor is None:
            rows = scan(lower, inclusive, upper, batch, None)
        else:  # the rest of the cursor's key, then the keys after it
            rows = scan(cursor[0], True, upper, batch, cursor[1])
            if len(rows) < batch:
                rows += scan(cursor[0], False, upper, batch - len(rows), None)
        for meta, seq in rows:
            yield (meta.key.encode("utf-8"), 1, -seq, meta)
        if len(rows) < batch:
            return
        cursor = (rows[-1][0].key.encode("utf-8"), rows[-1][1])
        batch = min(batch * 4, _BATCH)


def _stream(
    scan_current: ScanCurrent,
    scan_older: ScanOlder,
    lower: bytes,
    inclusive: bool,
    upper: bytes | None,
    below: int | None,
) -> Iterator:
    """Every version from ``lower`` in S3 order; with ``below`` the key ``lower``'s current
    version was already listed (the version-id-marker is it or older)."""
    current = _current(scan_current, lower, inclusive and below is None, upper)
    return heapq.merge(current, _older(scan_older, lower, inclusive, upper, below))


def list_versions_page(
    scan_current: ScanCurrent,
    scan_older: ScanOlder,
    version_seq: VersionSeq,
    *,
    prefix: str,
    key_marker: str,
    version_id_marker: str,
    delimiter: str,
    max_keys: int,
) -> VersionList:
    """Compute one page; blocking (runs in a worker thread with the index scans)."""
    if max_keys <= 0:
        return VersionList([], [], False)
    p = prefix.encode("utf-8")
    marker = key_marker.encode("utf-8")
    delim = delimiter.encode("utf-8")
    upper = prefix_end(p) if p else None
    below: int | None = None
    if marker and version_id_marker and marker >= p:
        below = version_seq(marker, version_id_marker)
    if marker >= p and marker:
        lower, inclusive = marker, False
    else:
        lower, inclusive, below = p, True, None

    entries: list[tuple[bytes, ObjectMeta | None]] = []
    want = max_keys + 1
    merged = _stream(scan_current, scan_older, lower, inclusive, upper, below)
    previous = marker if below is not None else None  # mid-key: its newest was listed
    while len(entries) < want:
        item = next(merged, None)
        if item is None:
            break
        key, _, _, meta = item
        cut = key.find(delim, len(p)) if delim else -1
        if cut < 0:
            # A key's first entry is its newest: the current version, or a latest marker.
            meta.is_latest = key != previous
            previous = key
            entries.append((key, meta))
            continue
        common = key[: cut + len(delim)]
        if common > marker:
            entries.append((common, None))
        following = prefix_end(common)
        if following is None or (upper is not None and following >= upper):
            break
        merged = _stream(scan_current, scan_older, following, True, upper, None)

    truncated = len(entries) > max_keys
    page = entries[:max_keys]
    next_key = next_version = None
    if truncated and page:
        last_key, last_meta = page[-1]
        next_key = last_key.decode("utf-8")
        if last_meta is not None:
            next_version = last_meta.version_id or NULL_VERSION
    return VersionList(
        versions=[meta for _, meta in page if meta is not None],
        common_prefixes=[k.decode("utf-8") for k, meta in page if meta is None],
        is_truncated=truncated,
        next_key_marker=next_key,
        next_version_id_marker=next_version,
    )


def versions_of_bucket(index: Index, bucket: str, **query: object) -> VersionList:
    """`list_versions_page` over the index's two version tables (NoSuchBucket first)."""
    index.require_bucket(bucket)
    return list_versions_page(
        functools.partial(index.scan_objects, bucket),
        functools.partial(index.scan_versions, bucket),
        functools.partial(index.version_seq, bucket),
        **query,  # type: ignore[arg-type]
    )
