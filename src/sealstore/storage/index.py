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
    DeleteResult,
    InvalidArgument,
    ObjectChanged,
    ObjectMeta,
    StorageError,
    Versioning,
)
from sealstore.storage.committer import GroupCommitter
from sealstore.storage.conditions import WriteCondition
from sealstore.storage.files import Layout, unlink_blobs
from sealstore.storage.index_rows import (
    OBJECT_COLUMNS,
    SCHEMA,
    VERSIONING_KIND,
    bucket_versioning,
    dump,
    migrate,
    object_from_row,
    require_bucket,
    require_condition,
)
from sealstore.storage.index_uploads import UploadsIndex
from sealstore.storage.index_versions import (
    delete_version,
    find_row,
    head_version,
    publish_version,
    scan_rows,
    version_seq,
)

T = TypeVar("T")

SCHEMA_VERSION = 2  # 2: versioning (`versions`; objects.version_id, objects.seq)
BUSY_TIMEOUT_S = 60.0


class Index(UploadsIndex):
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
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            migrate(c)
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

    def bucket_exists(self, bucket: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM buckets WHERE name=?", (bucket,)).fetchone()
        return row is not None

    def require_bucket(self, bucket: str) -> None:
        require_bucket(self.conn, bucket)

    def create_bucket(self, bucket: str, now: float) -> None:
        def tx(c: sqlite3.Connection) -> Any:
            if c.execute("SELECT 1 FROM buckets WHERE name=?", (bucket,)).fetchone():
                raise BucketAlreadyOwnedByYou(bucket)
            c.execute("INSERT INTO buckets(name, created) VALUES(?, ?)", (bucket, now))

        self.write(tx)

    def delete_bucket(self, bucket: str, now: float) -> None:
        """Remove an empty bucket; pending uploads in it are aborted with it."""

        def tx(c: sqlite3.Connection) -> Any:
            require_bucket(c, bucket)
            for table in ("objects", "versions"):
                sql = f"SELECT 1 FROM {table} WHERE bucket=? LIMIT 1"  # noqa: S608 - constant
                if c.execute(sql, (bucket,)).fetchone():
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
        require_bucket(conn, bucket)
        row = conn.execute(
            "SELECT value FROM bucket_config WHERE bucket=? AND kind=?", (bucket, kind)
        ).fetchone()
        return None if row is None else str(row[0])

    def put_bucket_config(self, bucket: str, kind: str, value: str | None) -> None:
        def tx(c: sqlite3.Connection) -> Any:
            require_bucket(c, bucket)
            if value is None:
                c.execute("DELETE FROM bucket_config WHERE bucket=? AND kind=?", (bucket, kind))
            else:
                c.execute(
                    "INSERT OR REPLACE INTO bucket_config(bucket, kind, value) VALUES(?, ?, ?)",
                    (bucket, kind, value),
                )

        self.write(tx)

    # -- objects -----------------------------------------------------------------------

    def head(self, bucket: str, key: bytes, version_id: str | None = None) -> ObjectMeta:
        return head_version(self.conn, bucket, key, version_id)

    def versioning(self, bucket: str) -> Versioning:
        """The bucket's versioning state (NoSuchBucket): also the writers' bucket check."""
        return bucket_versioning(self.conn, bucket)

    def set_versioning(self, bucket: str, state: Versioning) -> None:
        if state is Versioning.UNVERSIONED:
            raise InvalidArgument("a bucket's versioning can only be Enabled or Suspended")

        def tx(c: sqlite3.Connection) -> Any:
            require_bucket(c, bucket)
            c.execute(
                "INSERT OR REPLACE INTO bucket_config(bucket, kind, value) VALUES(?, ?, ?)",
                (bucket, VERSIONING_KIND, state.value),
            )

        self.write(tx)

    def publish_object(
        self,
        meta: ObjectMeta,
        key: bytes,
        file_id: str,
        now: float,
        condition: WriteCondition | None = None,
    ) -> None:
        """One transaction: check ``condition``, register the new data file and make the
        object visible."""

        def tx(c: sqlite3.Connection) -> Any:
            require_condition(c, meta.bucket, key, condition)
            c.execute("INSERT INTO files(id, deleted_at) VALUES(?, NULL)", (file_id,))
            publish_version(c, meta, key, now)  # checks the bucket (rolled back if gone)

        self.write(tx)

    def update_internal(self, meta: ObjectMeta, key: bytes, internal: dict[str, str]) -> ObjectMeta:
        """Compare-and-swap the `internal` column of one row in one transaction: only if the
        row still has the files and entries `meta` was read with (see Store.update_internal).
        One UPDATE in a synchronous=FULL WAL transaction: atomic and durable, data untouched."""

        def tx(c: sqlite3.Connection) -> ObjectMeta:
            found = find_row(c, meta, key)
            if found is None:
                require_bucket(c, meta.bucket)
                raise ObjectChanged(f"{meta.bucket}/{meta.key} was deleted")
            table, current = found
            if current.files != meta.files or current.internal != meta.internal:
                raise ObjectChanged(f"{meta.bucket}/{meta.key} changed meanwhile")
            c.execute(
                f"UPDATE {table} SET internal=? WHERE bucket=? AND key=? AND version_id=?",  # noqa: S608
                (dump(internal), meta.bucket, key, meta.version_id or ""),
            )
            current.internal = dict(internal)
            return current

        return self.write(tx)

    def delete_object(
        self, bucket: str, key: bytes, version_id: str | None, now: float
    ) -> DeleteResult:
        return self.write(lambda c: delete_version(c, bucket, key, version_id, now))

    def scan_objects(
        self, bucket: str, lower: bytes, inclusive: bool, upper: bytes | None, limit: int
    ) -> list[ObjectMeta]:
        """Objects with lower <(=) key < upper in byte order: one index seek, `limit` rows."""
        op = ">=" if inclusive else ">"
        # Only constants are interpolated; every value is a bound parameter.
        sql = f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key {op} ?"  # noqa: S608
        args: list[Any] = [bucket, lower]
        if upper is not None:
            sql += " AND key < ?"
            args.append(upper)
        sql += " ORDER BY key LIMIT ?"
        args.append(limit)
        return [object_from_row(r) for r in self.conn.execute(sql, args)]

    def scan_versions(
        self,
        bucket: str,
        lower: bytes,
        inclusive: bool,
        upper: bytes | None,
        limit: int,
        below_seq: int | None = None,
    ) -> list[tuple[ObjectMeta, int]]:
        """Noncurrent versions and markers in (key, newest first) order; see `scan_rows`."""
        return scan_rows(self.conn, bucket, lower, inclusive, upper, limit, below_seq)

    def version_seq(self, bucket: str, key: bytes, version_id: str) -> int | None:
        return version_seq(self.conn, bucket, key, version_id)

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


def reap_garbage(index: Index, layout: Layout, older_than: float) -> None:
    """Unlink every garbage file that expired before ``older_than`` (rows first, see
    `Index.claim_garbage`); the check is a read, so an idle store commits nothing."""
    if not index.has_garbage(older_than):
        return
    while True:
        ids = index.claim_garbage(older_than)
        unlink_blobs(layout, ids)
        if len(ids) < 1000:
            break
