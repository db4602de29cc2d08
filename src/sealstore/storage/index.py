"""SQLite index of buckets, objects, uploads, parts and data files (blocking; run in threads).

Why SQLite: one file, WAL mode lets readers proceed during a write, and every publish (new
object, replaced object, completed upload) is one transaction, which is what makes a crash
leave "old or new, never a mix". Several server processes may share one data directory: they
serialize writers through SQLite's own locking (`BEGIN IMMEDIATE` + busy timeout).

Keys are stored as BLOBs of UTF-8 so that the primary-key order is memcmp order, exactly S3's
UTF-8 byte order, with no collation in between.

Every data file the index knows is a row of `files`. A file whose `deleted_at` is set is
garbage kept for a grace period so that a reader holding metadata from just before a replace
or delete can still open it; `reap` removes it afterwards. Files on disk without a row are
orphans of a crash and are swept when the backend opens.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sealstore.storage.base import (
    BucketAlreadyOwnedByYou,
    BucketInfo,
    BucketNotEmpty,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    ObjectMeta,
    PartMeta,
    StorageError,
    UploadMeta,
    multipart_etag,
    normalize_etag,
)
from sealstore.storage.committer import GroupCommitter

T = TypeVar("T")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
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
    PRIMARY KEY(bucket, key)
) WITHOUT ROWID;
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

_OBJECT_COLUMNS = (
    "bucket, key, size, stored_size, etag, last_modified, content_type, "
    "user_meta, headers, internal, parts, files"
)


def _dump(value: Any) -> str:
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


def object_from_row(row: sqlite3.Row | tuple[Any, ...]) -> ObjectMeta:
    """Build ObjectMeta from a row selected with `_OBJECT_COLUMNS`."""
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
    )


def template_to_json(meta: ObjectMeta) -> str:
    """Serialize the object template stored with a multipart upload."""
    return _dump(
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


class Index:
    """Blocking access to the SQLite index with one connection per worker thread.

    sqlite3 connections must not be shared between threads concurrently; a thread-local
    connection avoids a global lock so reads run in parallel under WAL.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._committer = GroupCommitter(self._connect)

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,  # explicit BEGIN/COMMIT only
            check_same_thread=False,  # closed from close(); otherwise used by one thread
        )
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA synchronous=FULL")  # a committed publish survives power loss
        conn.execute("PRAGMA foreign_keys=OFF")
        with self._all_lock:
            self._all.append(conn)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection, created on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def initialize(self) -> None:
        """Create the schema and switch the database to WAL (persistent per database)."""
        conn = self.conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL journal mode (got {mode!r})")
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path}: index format {found} was written by a newer sealstore "
                f"(this one understands format {SCHEMA_VERSION})"
            )
        with self.transaction() as c:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._committer.start()

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in a write transaction, group-committed with concurrent writers."""
        return self._committer.run(fn)

    def close(self) -> None:
        """Stop the committer and close every connection (call after the executor stopped)."""
        self._committer.stop()
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection, outside group commit (schema).

        BEGIN IMMEDIATE takes the write lock up front, so no read-to-write upgrade can
        deadlock against another process.
        """
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- buckets -----------------------------------------------------------------------

    @staticmethod
    def _require_bucket(conn: sqlite3.Connection, bucket: str) -> None:
        if conn.execute("SELECT 1 FROM buckets WHERE name=?", (bucket,)).fetchone() is None:
            raise NoSuchBucket(bucket)

    def bucket_exists(self, bucket: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM buckets WHERE name=?", (bucket,)).fetchone()
        return row is not None

    def require_bucket(self, bucket: str) -> None:
        self._require_bucket(self.conn, bucket)

    def create_bucket(self, bucket: str, now: float) -> None:
        def tx(c: sqlite3.Connection) -> Any:
            if c.execute("SELECT 1 FROM buckets WHERE name=?", (bucket,)).fetchone():
                raise BucketAlreadyOwnedByYou(bucket)
            c.execute("INSERT INTO buckets(name, created) VALUES(?, ?)", (bucket, now))

        self.write(tx)

    def delete_bucket(self, bucket: str, now: float) -> None:
        """Remove an empty bucket; pending uploads in it are aborted with it."""

        def tx(c: sqlite3.Connection) -> Any:
            self._require_bucket(c, bucket)
            if c.execute("SELECT 1 FROM objects WHERE bucket=? LIMIT 1", (bucket,)).fetchone():
                raise BucketNotEmpty(bucket)
            ids = [
                r[0] for r in c.execute("SELECT upload_id FROM uploads WHERE bucket=?", (bucket,))
            ]
            for upload_id in ids:
                self._drop_upload(c, upload_id, now)
            c.execute("DELETE FROM bucket_config WHERE bucket=?", (bucket,))
            c.execute("DELETE FROM buckets WHERE name=?", (bucket,))

        self.write(tx)

    def list_buckets(self) -> list[BucketInfo]:
        rows = self.conn.execute("SELECT name, created FROM buckets ORDER BY name")
        return [BucketInfo(name=r[0], created=r[1]) for r in rows]

    def get_bucket_config(self, bucket: str, kind: str) -> str | None:
        conn = self.conn
        self._require_bucket(conn, bucket)
        row = conn.execute(
            "SELECT value FROM bucket_config WHERE bucket=? AND kind=?", (bucket, kind)
        ).fetchone()
        return None if row is None else str(row[0])

    def put_bucket_config(self, bucket: str, kind: str, value: str | None) -> None:
        def tx(c: sqlite3.Connection) -> Any:
            self._require_bucket(c, bucket)
            if value is None:
                c.execute("DELETE FROM bucket_config WHERE bucket=? AND kind=?", (bucket, kind))
            else:
                c.execute(
                    "INSERT OR REPLACE INTO bucket_config(bucket, kind, value) VALUES(?, ?, ?)",
                    (bucket, kind, value),
                )

        self.write(tx)

    # -- objects -----------------------------------------------------------------------

    def head(self, bucket: str, key: bytes) -> ObjectMeta:
        conn = self.conn
        row = conn.execute(
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key=?",  # noqa: S608 - constant
            (bucket, key),
        ).fetchone()
        if row is None:
            self._require_bucket(conn, bucket)
            raise NoSuchKey(key.decode("utf-8"))
        return object_from_row(row)

    @staticmethod
    def _insert_object(c: sqlite3.Connection, meta: ObjectMeta, key: bytes, now: float) -> None:
        """Publish `meta` (replacing any old row) and mark the old row's files as garbage."""
        old = c.execute("SELECT files FROM objects WHERE bucket=? AND key=?", (meta.bucket, key))
        row = old.fetchone()
        if row is not None:
            c.executemany(
                "UPDATE files SET deleted_at=? WHERE id=?",
                [(now, fid) for fid in json.loads(row[0]) if fid not in meta.files],
            )
        c.execute(
            f"INSERT OR REPLACE INTO objects({_OBJECT_COLUMNS}) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                meta.bucket,
                key,
                meta.size,
                meta.stored_size,
                meta.etag,
                meta.last_modified,
                meta.content_type,
                _dump(meta.user_meta),
                _dump(meta.headers),
                _dump(meta.internal),
                _dump([part_to_json(p) for p in meta.parts]),
                _dump(meta.files),
            ),
        )

    def publish_object(self, meta: ObjectMeta, key: bytes, file_id: str, now: float) -> None:
        """One transaction: register the new data file and make the object visible."""

        def tx(c: sqlite3.Connection) -> Any:
            self._require_bucket(c, meta.bucket)
            c.execute("INSERT INTO files(id, deleted_at) VALUES(?, NULL)", (file_id,))
            self._insert_object(c, meta, key, now)

        self.write(tx)

    def delete_object(self, bucket: str, key: bytes, now: float) -> None:
        def tx(c: sqlite3.Connection) -> Any:
            row = c.execute(
                "SELECT files FROM objects WHERE bucket=? AND key=?", (bucket, key)
            ).fetchone()
            if row is None:
                self._require_bucket(c, bucket)
                return
            c.executemany(
                "UPDATE files SET deleted_at=? WHERE id=?",
                [(now, fid) for fid in json.loads(row[0])],
            )
            c.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))

        self.write(tx)

    def scan_objects(
        self, bucket: str, lower: bytes, inclusive: bool, upper: bytes | None, limit: int
    ) -> list[ObjectMeta]:
        """Objects with lower <(=) key < upper in byte order: one index seek, `limit` rows."""
        op = ">=" if inclusive else ">"
        # Only constants are interpolated; every value is a bound parameter.
        sql = f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key {op} ?"  # noqa: S608
        args: list[Any] = [bucket, lower]
        if upper is not None:
            sql += " AND key < ?"
            args.append(upper)
        sql += " ORDER BY key LIMIT ?"
        args.append(limit)
        return [object_from_row(r) for r in self.conn.execute(sql, args)]

    # -- uploads -----------------------------------------------------------------------

    def create_upload(self, upload: UploadMeta, key: bytes) -> None:
        def tx(c: sqlite3.Connection) -> Any:
            self._require_bucket(c, upload.bucket)
            c.execute(
                "INSERT INTO uploads(upload_id, bucket, key, initiated, meta) "
                "VALUES(?, ?, ?, ?, ?)",
                (
                    upload.upload_id,
                    upload.bucket,
                    key,
                    upload.initiated,
                    template_to_json(upload.meta),
                ),
            )

        self.write(tx)

    @staticmethod
    def _upload_from_row(row: tuple[Any, ...]) -> UploadMeta:
        bucket, key = row[1], bytes(row[2]).decode("utf-8")
        return UploadMeta(
            upload_id=row[0],
            bucket=bucket,
            key=key,
            initiated=row[3],
            meta=template_from_json(bucket, key, row[4]),
        )

    def get_upload(self, bucket: str, key: bytes, upload_id: str) -> UploadMeta:
        conn = self.conn
        row = conn.execute(
            "SELECT upload_id, bucket, key, initiated, meta FROM uploads "
            "WHERE upload_id=? AND bucket=? AND key=?",
            (upload_id, bucket, key),
        ).fetchone()
        if row is None:
            self._require_bucket(conn, bucket)
            raise NoSuchUpload(upload_id)
        return self._upload_from_row(row)

    def list_uploads(
        self, bucket: str, prefix: bytes, key_marker: bytes, upload_id_marker: str, limit: int
    ) -> list[UploadMeta]:
        conn = self.conn
        self._require_bucket(conn, bucket)
        sql = "SELECT upload_id, bucket, key, initiated, meta FROM uploads WHERE bucket=?"
        args: list[Any] = [bucket]
        if key_marker and upload_id_marker:
            sql += " AND (key > ? OR (key = ? AND upload_id > ?))"
            args += [key_marker, key_marker, upload_id_marker]
        elif key_marker:
            sql += " AND key > ?"
            args.append(key_marker)
        if prefix:
            sql += " AND key >= ?"
            args.append(prefix)
            upper = prefix_end(prefix)
            if upper is not None:
                sql += " AND key < ?"
                args.append(upper)
        sql += " ORDER BY key, upload_id LIMIT ?"
        args.append(limit)
        return [self._upload_from_row(r) for r in conn.execute(sql, args)]

    @staticmethod
    def _require_upload(c: sqlite3.Connection, upload_id: str) -> None:
        row = c.execute("SELECT 1 FROM uploads WHERE upload_id=?", (upload_id,)).fetchone()
        if row is None:
            raise NoSuchUpload(upload_id)

    def publish_part(self, upload_id: str, part: PartMeta, file_id: str, now: float) -> None:
        """Register a part file, replacing (and garbage-marking) the same part number."""

        def tx(c: sqlite3.Connection) -> Any:
            self._require_upload(c, upload_id)
            old = c.execute(
                "SELECT file FROM parts WHERE upload_id=? AND number=?", (upload_id, part.number)
            ).fetchone()
            if old is not None:
                c.execute("UPDATE files SET deleted_at=? WHERE id=?", (now, old[0]))
            c.execute("INSERT INTO files(id, deleted_at) VALUES(?, NULL)", (file_id,))
            c.execute(
                "INSERT OR REPLACE INTO parts(upload_id, number, etag, size, stored_size, "
                "last_modified, internal, file) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    upload_id,
                    part.number,
                    part.etag,
                    part.size,
                    part.stored_size,
                    part.last_modified,
                    _dump(part.internal),
                    file_id,
                ),
            )

        self.write(tx)

    @staticmethod
    def _parts(
        c: sqlite3.Connection, upload_id: str, marker: int, limit: int
    ) -> list[tuple[PartMeta, str]]:
        rows = c.execute(
            "SELECT number, etag, size, stored_size, last_modified, internal, file FROM parts "
            "WHERE upload_id=? AND number>? ORDER BY number LIMIT ?",
            (upload_id, marker, limit),
        )
        return [
            (
                PartMeta(
                    number=r[0],
                    etag=r[1],
                    size=r[2],
                    stored_size=r[3],
                    last_modified=r[4],
                    internal=json.loads(r[5]),
                ),
                r[6],
            )
            for r in rows
        ]

    def list_parts(self, upload_id: str, marker: int, limit: int) -> list[PartMeta]:
        conn = self.conn
        self._require_upload(conn, upload_id)
        return [p for p, _ in self._parts(conn, upload_id, marker, limit)]

    @staticmethod
    def _drop_upload(c: sqlite3.Connection, upload_id: str, now: float) -> None:
        c.execute(
            "UPDATE files SET deleted_at=? WHERE id IN (SELECT file FROM parts WHERE upload_id=?)",
            (now, upload_id),
        )
        c.execute("DELETE FROM parts WHERE upload_id=?", (upload_id,))
        c.execute("DELETE FROM uploads WHERE upload_id=?", (upload_id,))

    def abort_upload(self, upload_id: str, now: float) -> None:
        def tx(c: sqlite3.Connection) -> Any:
            self._require_upload(c, upload_id)
            self._drop_upload(c, upload_id, now)

        self.write(tx)

    def complete_upload(
        self,
        upload: UploadMeta,
        chosen: list[tuple[int, str]],
        meta: ObjectMeta,
        key: bytes,
        now: float,
        min_part_size: int,
    ) -> ObjectMeta:
        """Validate the client's part list and publish the object in one transaction.

        The object row references the chosen part files in order (no data is copied); the
        upload and its part rows disappear in the same transaction and unchosen part files
        become garbage. Returns the published metadata.
        """

        def tx(c: sqlite3.Connection) -> Any:
            self._require_upload(c, upload.upload_id)
            stored = {p.number: (p, f) for p, f in self._parts(c, upload.upload_id, 0, 1 << 30)}
            if not chosen:
                raise InvalidPart("the part list is empty")
            previous = 0
            for number, _ in chosen:
                if number <= previous:
                    raise InvalidPartOrder(f"part {number} follows part {previous}")
                previous = number
            parts: list[PartMeta] = []
            files: list[str] = []
            for number, etag in chosen:
                found = stored.get(number)
                if found is None or normalize_etag(found[0].etag) != normalize_etag(etag):
                    raise InvalidPart(f"part {number} with ETag {etag} was not uploaded")
                parts.append(found[0])
                files.append(found[1])
            for part in parts[:-1]:
                if part.size < min_part_size:
                    raise EntityTooSmall(
                        f"part {part.number} has {part.size} bytes; all but the last part "
                        f"need at least {min_part_size}"
                    )
            meta.bucket, meta.key = upload.bucket, upload.key
            meta.parts = parts
            meta.files = files
            meta.size = sum(p.size for p in parts)
            meta.stored_size = sum(p.stored_size for p in parts)
            meta.last_modified = now
            if not meta.etag:
                # Only defined when every part ETag is an MD5 digest; otherwise the caller
                # must supply the object ETag, and an empty one results.
                with contextlib.suppress(InvalidPart):
                    meta.etag = multipart_etag([p.etag for p in parts])
            chosen_files = set(files)
            c.executemany(
                "UPDATE files SET deleted_at=? WHERE id=?",
                [(now, f) for _, f in stored.values() if f not in chosen_files],
            )
            c.execute("DELETE FROM parts WHERE upload_id=?", (upload.upload_id,))
            c.execute("DELETE FROM uploads WHERE upload_id=?", (upload.upload_id,))
            self._insert_object(c, meta, key, now)
            return meta

        return self.write(tx)  # type: ignore[no-any-return]

    # -- files -------------------------------------------------------------------------

    def known_file_ids(self) -> set[str]:
        """Every file id the index references (live or garbage in its grace period)."""
        return {r[0] for r in self.conn.execute("SELECT id FROM files")}

    def live_file_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT id FROM files WHERE deleted_at IS NULL")}

    def file_known(self, file_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM files WHERE id=?", (file_id,)).fetchone()
        return row is not None

    def has_garbage(self, older_than: float) -> bool:
        """Whether any garbage file expired (an indexed read on this thread's connection)."""
        row = self.conn.execute(
            "SELECT 1 FROM files WHERE deleted_at IS NOT NULL AND deleted_at <= ? LIMIT 1",
            (older_than,),
        ).fetchone()
        return row is not None

    def claim_garbage(self, older_than: float, limit: int = 1000) -> list[str]:
        """Remove up to `limit` expired garbage rows and return their ids for unlinking.

        Rows go first: if the process dies before the unlink, the files become orphans that
        the next sweep removes; the reverse order could leave rows pointing at nothing.
        """

        def tx(c: sqlite3.Connection) -> Any:
            ids = [
                r[0]
                for r in c.execute(
                    "SELECT id FROM files WHERE deleted_at IS NOT NULL AND deleted_at <= ? LIMIT ?",
                    (older_than, limit),
                )
            ]
            c.executemany("DELETE FROM files WHERE id=?", [(i,) for i in ids])
            return ids

        return self.write(tx)  # type: ignore[no-any-return]


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest byte string greater than every string starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
