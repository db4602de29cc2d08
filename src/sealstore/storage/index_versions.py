"""Versioned publish, delete and lookup in the SQLite index (pure functions over a connection).

Two tables hold a key's versions. `objects` holds its current version when that is not a
delete marker: exactly the row GET, HEAD and ListObjects read, so an unversioned bucket pays
nothing for versioning. `versions` holds every other version and every delete marker, keyed
``(bucket, key, seq DESC)``: ``seq`` is a per-key strictly increasing number (nanoseconds, or
one more than the key's newest when the clock is behind), so a key's versions come out
newest first from one index range. Invariant, kept by every function here inside one write
transaction: the `objects` row, when present, is the key's newest version; when absent, the
newest `versions` row (if any) is a delete marker. A key has at most one null version
(version_id ''), enforced by the unique index on ``(bucket, key, version_id)``.

A bucket that was never versioned has no `versions` rows, which is why its writes skip every
`versions` query (the state comes with the bucket check they make anyway).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from sealstore.storage.base import (
    NULL_VERSION,
    DeleteMarkerCurrent,
    DeleteResult,
    InvalidArgument,
    NoSuchKey,
    NoSuchVersion,
    ObjectMeta,
    Versioning,
    new_version_id,
)
from sealstore.storage.index_rows import (
    DATA_COLUMNS,
    OBJECT_COLUMNS,
    VERSION_COLUMNS,
    bucket_versioning,
    object_from_row,
    object_values,
    require_bucket,
)

_MOVE_TO_VERSIONS = (
    f"INSERT INTO versions(bucket, key, {DATA_COLUMNS}, version_id, seq, marker) "  # noqa: S608
    f"SELECT bucket, key, {DATA_COLUMNS}, version_id, seq, 0 FROM objects "
    "WHERE bucket=? AND key=?"
)
_PROMOTE = (
    f"INSERT INTO objects(bucket, key, {DATA_COLUMNS}, version_id, seq) "  # noqa: S608
    f"SELECT bucket, key, {DATA_COLUMNS}, version_id, seq FROM versions "
    "WHERE bucket=? AND key=? AND seq=?"
)


def stored_id(version_id: str | None) -> str:
    """The column value of a version id (the null version is '')."""
    return "" if version_id in (None, NULL_VERSION) else str(version_id)


def _trash(c: sqlite3.Connection, files: str, now: float, keep: list[str] | None = None) -> None:
    """Mark a row's data files (its JSON `files` value) as garbage, except ``keep``."""
    kept = set(keep or ())
    c.executemany(
        "UPDATE files SET deleted_at=? WHERE id=?",
        [(now, fid) for fid in json.loads(files) if fid not in kept],
    )


def _newest_version_seq(c: sqlite3.Connection, bucket: str, key: bytes) -> int:
    row = c.execute(
        "SELECT seq FROM versions WHERE bucket=? AND key=? ORDER BY seq DESC LIMIT 1",
        (bucket, key),
    ).fetchone()
    return 0 if row is None else int(row[0])


def _next_seq(newest: int) -> int:
    return max(time.time_ns(), newest + 1)


def _drop_null_version(c: sqlite3.Connection, bucket: str, key: bytes, now: float) -> None:
    """Remove a noncurrent null version or null marker (a null write replaces it)."""
    row = c.execute(
        "SELECT files FROM versions WHERE bucket=? AND key=? AND version_id=''", (bucket, key)
    ).fetchone()
    if row is not None:
        _trash(c, row[0], now)
        c.execute("DELETE FROM versions WHERE bucket=? AND key=? AND version_id=''", (bucket, key))


def _retire_current(
    c: sqlite3.Connection,
    state: Versioning,
    bucket: str,
    key: bytes,
    new_id: str,
    now: float,
    keep: list[str],
) -> int:
    """Make room for a new newest version ``new_id`` (a write or a marker): the current row
    is replaced (both null) or becomes noncurrent, and a null write drops the old null
    version. Returns the seq the new version gets. A replaced null row stays for the
    caller's INSERT OR REPLACE (the hot unversioned PUT: no extra statement)."""
    old = c.execute(
        "SELECT files, version_id, seq FROM objects WHERE bucket=? AND key=?", (bucket, key)
    ).fetchone()
    if old is not None:
        newest = int(old[2])
        if old[1] == new_id == "":
            _trash(c, old[0], now, keep)
        elif old[1] == new_id:
            raise InvalidArgument(f"version {new_id} already exists")
        else:
            c.execute(_MOVE_TO_VERSIONS, (bucket, key))
            c.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))
        if state is not Versioning.UNVERSIONED and new_id == "" and old[1] != "":
            _drop_null_version(c, bucket, key, now)
        return _next_seq(newest)
    if state is Versioning.UNVERSIONED:
        return _next_seq(0)
    newest = _newest_version_seq(c, bucket, key)
    if new_id == "":
        _drop_null_version(c, bucket, key, now)
    return _next_seq(newest)


def publish_version(c: sqlite3.Connection, meta: ObjectMeta, key: bytes, now: float) -> None:
    """Publish ``meta`` as the key's current version (null when ``meta.version_id`` is None),
    retiring the previous one; NoSuchBucket when the bucket is gone."""
    state = bucket_versioning(c, meta.bucket)
    new_id = stored_id(meta.version_id)
    seq = _retire_current(c, state, meta.bucket, key, new_id, now, meta.files)
    c.execute(
        f"INSERT OR REPLACE INTO objects({OBJECT_COLUMNS}, seq) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (meta.bucket, key, *object_values(meta), new_id, seq),
    )
    meta.is_latest = True


def _promote_newest(c: sqlite3.Connection, bucket: str, key: bytes) -> None:
    """After the current version went away: the newest remaining version becomes current
    (moves to `objects`) unless it is a delete marker (which then is the latest)."""
    row = c.execute(
        "SELECT seq, marker FROM versions WHERE bucket=? AND key=? ORDER BY seq DESC LIMIT 1",
        (bucket, key),
    ).fetchone()
    if row is None or row[1]:
        return
    c.execute(_PROMOTE, (bucket, key, row[0]))
    c.execute("DELETE FROM versions WHERE bucket=? AND key=? AND seq=?", (bucket, key, row[0]))


def delete_version(
    c: sqlite3.Connection, bucket: str, key: bytes, version_id: str | None, now: float
) -> DeleteResult:
    """S3 DeleteObject in one transaction: without ``version_id`` by the bucket's state
    (unversioned: remove; enabled: new marker; suspended: null marker replacing the null
    version); with one, remove exactly that version permanently (absent: no error)."""
    state = bucket_versioning(c, bucket)
    if version_id is None:
        if state is Versioning.UNVERSIONED:
            row = c.execute(
                "SELECT files FROM objects WHERE bucket=? AND key=?", (bucket, key)
            ).fetchone()
            if row is not None:
                _trash(c, row[0], now)
                c.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))
            return DeleteResult()
        marker_id = new_version_id() if state is Versioning.ENABLED else ""
        seq = _retire_current(c, state, bucket, key, marker_id, now, [])
        c.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))
        marker = ObjectMeta(bucket, key.decode("utf-8"), last_modified=now, etag="")
        c.execute(
            f"INSERT INTO versions({VERSION_COLUMNS}) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
            (bucket, key, *object_values(marker), marker_id, seq),
        )
        return DeleteResult(marker_id or None, delete_marker=True, versioned=True)
    wanted = stored_id(version_id)
    result_id = wanted or None
    current = c.execute(
        "SELECT files FROM objects WHERE bucket=? AND key=? AND version_id=?",
        (bucket, key, wanted),
    ).fetchone()
    if current is not None:
        _trash(c, current[0], now)
        c.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))
        _promote_newest(c, bucket, key)
        return DeleteResult(result_id, versioned=True)
    if state is Versioning.UNVERSIONED:
        return DeleteResult(result_id, versioned=True)
    row = c.execute(
        "SELECT files, marker FROM versions WHERE bucket=? AND key=? AND version_id=?",
        (bucket, key, wanted),
    ).fetchone()
    if row is None:
        return DeleteResult(result_id, versioned=True)
    _trash(c, row[0], now)
    c.execute(
        "DELETE FROM versions WHERE bucket=? AND key=? AND version_id=?", (bucket, key, wanted)
    )
    if (
        c.execute("SELECT 1 FROM objects WHERE bucket=? AND key=?", (bucket, key)).fetchone()
        is None
    ):
        _promote_newest(c, bucket, key)
    return DeleteResult(result_id, delete_marker=bool(row[1]), versioned=True)


def _latest_marker(conn: sqlite3.Connection, bucket: str, key: bytes) -> ObjectMeta | None:
    row = conn.execute(
        f"SELECT {VERSION_COLUMNS} FROM versions WHERE bucket=? AND key=? "  # noqa: S608
        "ORDER BY seq DESC LIMIT 1",
        (bucket, key),
    ).fetchone()
    if row is None or not row[13]:
        return None
    marker = object_from_row(row)
    marker.is_latest = True
    return marker


def head_version(
    conn: sqlite3.Connection, bucket: str, key: bytes, version_id: str | None
) -> ObjectMeta:
    """The current version (``version_id`` None) or the named one, markers included.

    Current: NoSuchKey, or DeleteMarkerCurrent when the latest version is a marker. Named:
    NoSuchVersion when the key has no such version."""
    if version_id is None:
        row = conn.execute(
            f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key=?",  # noqa: S608
            (bucket, key),
        ).fetchone()
        if row is not None:
            return object_from_row(row)
        if bucket_versioning(conn, bucket) is not Versioning.UNVERSIONED:
            marker = _latest_marker(conn, bucket, key)
            if marker is not None:
                raise DeleteMarkerCurrent(marker)
        raise NoSuchKey(key.decode("utf-8"))
    wanted = stored_id(version_id)
    row = conn.execute(
        f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key=? AND version_id=?",  # noqa: S608
        (bucket, key, wanted),
    ).fetchone()
    if row is not None:
        return object_from_row(row)
    row = conn.execute(
        f"SELECT {VERSION_COLUMNS} FROM versions WHERE bucket=? AND key=? AND version_id=?",  # noqa: S608
        (bucket, key, wanted),
    ).fetchone()
    if row is None:
        require_bucket(conn, bucket)
        raise NoSuchVersion(f"{key.decode('utf-8')} has no version {version_id}")
    meta = object_from_row(row)
    if meta.is_delete_marker:
        latest = _latest_marker(conn, bucket, key)
        meta.is_latest = latest is not None and latest.version_id == meta.version_id
    return meta


def find_row(c: sqlite3.Connection, meta: ObjectMeta, key: bytes) -> tuple[str, ObjectMeta] | None:
    """(table, stored meta) of the version ``meta`` names, None when it is gone."""
    wanted = stored_id(meta.version_id)
    for table, columns in (("objects", OBJECT_COLUMNS), ("versions", VERSION_COLUMNS)):
        row = c.execute(
            f"SELECT {columns} FROM {table} WHERE bucket=? AND key=? AND version_id=?",  # noqa: S608
            (meta.bucket, key, wanted),
        ).fetchone()
        if row is not None:
            return table, object_from_row(row)
    return None


def scan_rows(
    conn: sqlite3.Connection,
    bucket: str,
    lower: bytes,
    inclusive: bool,
    upper: bytes | None,
    limit: int,
    below_seq: int | None = None,
) -> list[tuple[ObjectMeta, int]]:
    """`versions` rows in (key ascending, seq descending) order from ``lower``: with
    ``below_seq``, only key ``lower``'s rows older than it. Pairs (meta, seq)."""
    if below_seq is not None:
        sql = f"SELECT {VERSION_COLUMNS} FROM versions WHERE bucket=? AND key=? AND seq<?"  # noqa: S608
        args: list[Any] = [bucket, lower, below_seq]
    else:
        op = ">=" if inclusive else ">"
        sql = f"SELECT {VERSION_COLUMNS} FROM versions WHERE bucket=? AND key {op} ?"  # noqa: S608
        args = [bucket, lower]
        if upper is not None:
            sql += " AND key < ?"
            args.append(upper)
    sql += " ORDER BY key, seq DESC LIMIT ?"
    args.append(limit)
    return [(object_from_row(r), int(r[14])) for r in conn.execute(sql, args)]


def version_seq(conn: sqlite3.Connection, bucket: str, key: bytes, version_id: str) -> int | None:
    """Where a version-id-marker sits among its key's `versions` rows: its seq; a value above
    every seq when it is the current `objects` row; None when the key has no such version."""
    wanted = stored_id(version_id)
    row = conn.execute(
        "SELECT 1 FROM objects WHERE bucket=? AND key=? AND version_id=?", (bucket, key, wanted)
    ).fetchone()
    if row is not None:
        return 1 << 62
    row = conn.execute(
        "SELECT seq FROM versions WHERE bucket=? AND key=? AND version_id=?",
        (bucket, key, wanted),
    ).fetchone()
    return None if row is None else int(row[0])
