"""ListObjects paging over an ordered key index (pure logic over a blocking scan callback).

S3 semantics, in UTF-8 byte order: keys after `start_after` that begin with `prefix`; with a
delimiter, every key whose remainder (after the prefix) contains the delimiter is rolled up
into the common prefix ending at its first delimiter. A common prefix counts as one entry
against max_keys and is reported only if it sorts after `start_after` (so paging with the
returned marker never repeats it). After a common prefix the scan seeks straight past every
key under it, so a prefix holding a million keys costs one index seek, not a million rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from sealstore.storage.base import ListResult, ObjectMeta
from sealstore.storage.index_rows import prefix_end

if TYPE_CHECKING:
    from sealstore.storage.index import Index

# scan(lower, lower_inclusive, upper_exclusive, limit) -> objects in key byte order
Scan = Callable[[bytes, bool, "bytes | None", int], list[ObjectMeta]]

_BATCH = 1000
_FIRST_BATCH = 8


def list_page(
    scan: Scan, *, prefix: str, start_after: str, delimiter: str, max_keys: int
) -> ListResult:
    """Compute one page; blocking (runs in a worker thread with the index scan)."""
    if max_keys <= 0:
        return ListResult(objects=[], common_prefixes=[], is_truncated=False, next_marker=None)
    p = prefix.encode("utf-8")
    after = start_after.encode("utf-8")
    delim = delimiter.encode("utf-8")
    upper = prefix_end(p) if p else None
    if after >= p:
        lower, inclusive = after, False
    else:
        lower, inclusive = p, True

    # entries: (sort key bytes, object or None for a common prefix)
    entries: list[tuple[bytes, ObjectMeta | None]] = []
    want = max_keys + 1  # one extra entry tells us whether the page is truncated
    # With a delimiter, rows right after a seek may all roll up into one common prefix, so
    # start with small batches and grow them while no prefix shows up.
    batch = min(want, _FIRST_BATCH if delim else _BATCH)
    exhausted = False
    while len(entries) < want and not exhausted:
        if upper is not None and lower >= upper:
            break
        rows = scan(lower, inclusive, upper, min(batch, want - len(entries)))
        if len(rows) < min(batch, want - len(entries)):
            exhausted = True
        batch = min(batch * 4, _BATCH)
        for meta in rows:
            key = meta.key.encode("utf-8")
            cut = key.find(delim, len(p)) if delim else -1
            if cut >= 0:
                common = key[: cut + len(delim)]
                if common > after:
                    entries.append((common, None))
                following = prefix_end(common)
                if following is None:  # nothing can sort after this prefix
                    exhausted = True
                else:
                    lower, inclusive = following, True
                    exhausted = False  # rows past the prefix were not fetched yet
                    batch = _FIRST_BATCH
                break
            entries.append((key, meta))
            lower, inclusive = key, False
            if len(entries) >= want:
                break

    truncated = len(entries) > max_keys
    page = entries[:max_keys]
    return ListResult(
        objects=[meta for _, meta in page if meta is not None],
        common_prefixes=[k.decode("utf-8") for k, meta in page if meta is None],
        is_truncated=truncated,
        next_marker=page[-1][0].decode("utf-8") if truncated and page else None,
    )


def objects_of_bucket(
    index: Index, bucket: str, *, prefix: str, start_after: str, delimiter: str, max_keys: int
) -> ListResult:
    """`list_page` over the index's current versions of ``bucket`` (NoSuchBucket first)."""
    index.require_bucket(bucket)
    return list_page(
        functools.partial(index.scan_objects, bucket),
        prefix=prefix,
        start_after=start_after,
        delimiter=delimiter,
        max_keys=max_keys,
    )
