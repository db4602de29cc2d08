"""The SQLite index's schema and row codecs (pure functions over one connection).

Shared by the object and bucket half (`index.py`) and the multipart half (`index_uploads.py`)
of the index, so both write and read rows in exactly one way.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sealstore.storage.base import NoSuchBucket, ObjectChanged, ObjectMeta, PartMeta, Versioning
from sealstore.storage.conditions import WriteCondition

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets(
    name TEXT PRIMARY KEY,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bucket_config(
    bucket TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY(bucket, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects(
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    content_type TEXT NOT NULL,
    user_meta TEXT NOT NULL,
    headers TEXT NOT NULL,
    internal TEXT NOT NULL,
    parts TEXT NOT NULL,
    files TEXT NOT NULL,
    version_id TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions(
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    content_type TEXT NOT NULL,
    user_meta TEXT NOT NULL,
    headers TEXT NOT NULL,
    internal TEXT NOT NULL,
    parts TEXT NOT NULL,
    files TEXT NOT NULL,
    version_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    marker INTEGER NOT NULL,
    PRIMARY KEY(bucket, key, seq DESC)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS versions_by_id ON versions(bucket, key, version_id);
CREATE TABLE IF NOT EXISTS uploads(
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    initiated REAL NOT NULL,
    meta TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads(bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS parts(
    upload_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    last_modified REAL NOT NULL,
    internal TEXT NOT NULL,
    file TEXT NOT NULL,
    PRIMARY KEY(upload_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files(
    id TEXT PRIMARY KEY,
    deleted_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_garbage ON files(deleted_at) WHERE deleted_at IS NOT NULL;
"""

# Columns added to `objects` by format 2 (versioning); `migrate` adds them to older indexes,
# whose rows thereby become null versions (version_id '') older than any later write (seq 0).
MIGRATIONS = (
    ("objects", "version_id", "TEXT NOT NULL DEFAULT ''"),
    ("objects", "seq", "INTEGER NOT NULL DEFAULT 0"),
)
DATA_COLUMNS = (
    "size, stored_size, etag, last_modified, content_type, user_meta, headers, internal, "
    "parts, files"
)
OBJECT_COLUMNS = f"bucket, key, {DATA_COLUMNS}, version_id"
# A `versions` row: noncurrent versions and delete markers (the current version of a key,
# when it is no marker, is its `objects` row: the only row GET and ListObjects read).
VERSION_COLUMNS = f"{OBJECT_COLUMNS}, marker, seq"
# The bucket's versioning state lives in bucket_config under a kind no S3 API can name.
VERSIONING_KIND = "sealstore:versioning"


def dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def part_to_json(part: PartMeta) -> dict[str, Any]:
    """Serialize a PartMeta for the `parts` JSON column of an object."""
    return {
        "n": part.number,
        "e": part.etag,
        "s": part.size,
        "ss": part.stored_size,
        "t": part.last_modified,
        "i": part.internal,
    }


def part_from_json(raw: dict[str, Any]) -> PartMeta:
    """Inverse of `part_to_json`."""
    return PartMeta(
        number=int(raw["n"]),
        etag=str(raw["e"]),
        size=int(raw["s"]),
        stored_size=int(raw["ss"]),
        last_modified=float(raw["t"]),
        internal=dict(raw["i"]),
    )


def migrate(c: sqlite3.Connection) -> None:
    """Bring an older index's tables up to the current columns (inside the schema
    transaction; ALTER TABLE ADD COLUMN rewrites nothing, so this is quick on any size)."""
    for table, column, decl in MIGRATIONS:
        have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
        if have and column not in have:
            c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


def object_from_row(row: sqlite3.Row | tuple[Any, ...]) -> ObjectMeta:
    """Build ObjectMeta from a row selected with `OBJECT_COLUMNS` (or `VERSION_COLUMNS`:
    a versions row, never the current version unless the caller says so)."""
    return ObjectMeta(
        bucket=row[0],
        key=bytes(row[1]).decode("utf-8"),
        size=row[2],
        stored_size=row[3],
        etag=row[4],
        last_modified=row[5],
        content_type=row[6],
        user_meta=json.loads(row[7]),
        headers=json.loads(row[8]),
        internal=json.loads(row[9]),
        parts=[part_from_json(p) for p in json.loads(row[10])],
        files=list(json.loads(row[11])),
        version_id=row[12] or None,
        is_delete_marker=len(row) > 13 and bool(row[13]),
        is_latest=len(row) <= 13,
    )


def template_to_json(meta: ObjectMeta) -> str:
    """Serialize the object template stored with a multipart upload."""
    return dump(
        {
            "content_type": meta.content_type,
            "user_meta": meta.user_meta,
            "headers": meta.headers,
            "internal": meta.internal,
        }
    )


def template_from_json(bucket: str, key: str, raw: str) -> ObjectMeta:
    """Inverse of `template_to_json`."""
    data = json.loads(raw)
    return ObjectMeta(
        bucket=bucket,
        key=key,
        content_type=data["content_type"],
        user_meta=data["user_meta"],
        headers=data["headers"],
        internal=data["internal"],
    )


def require_bucket(conn: sqlite3.Connection, bucket: str) -> None:
    """NoSuchBucket unless ``bucket`` has a row."""
    if conn.execute("SELECT 1 FROM buckets WHERE name=?", (bucket,)).fetchone() is None:
        raise NoSuchBucket(bucket)


def require_condition(
    c: sqlite3.Connection, bucket: str, key: bytes, condition: WriteCondition | None
) -> None:
    """Inside a publishing transaction: ``ObjectChanged`` unless ``condition`` holds for
    the key's current row (see `storage.conditions`); nothing to do without a condition."""
    if condition is None:
        return
    row = c.execute("SELECT etag FROM objects WHERE bucket=? AND key=?", (bucket, key)).fetchone()
    if not condition.holds(None if row is None else str(row[0])):
        raise ObjectChanged(f"{bucket}/{key.decode('utf-8', 'replace')} changed meanwhile")


def bucket_versioning(conn: sqlite3.Connection, bucket: str) -> Versioning:
    """The bucket's versioning state, NoSuchBucket if it has no row: one query, so callers
    that must check the bucket anyway learn its state for free."""
    row = conn.execute(
        "SELECT c.value FROM buckets b LEFT JOIN bucket_config c "
        "ON c.bucket = b.name AND c.kind = ? WHERE b.name = ?",
        (VERSIONING_KIND, bucket),
    ).fetchone()
    if row is None:
        raise NoSuchBucket(bucket)
    return Versioning(row[0] or "")


def object_values(meta: ObjectMeta) -> tuple[Any, ...]:
    """The `DATA_COLUMNS` values of ``meta``, in order."""
    return (
        meta.size,
        meta.stored_size,
        meta.etag,
        meta.last_modified,
        meta.content_type,
        dump(meta.user_meta),
        dump(meta.headers),
        dump(meta.internal),
        dump([part_to_json(p) for p in meta.parts]),
        dump(meta.files),
    )


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest byte string greater than every string starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
