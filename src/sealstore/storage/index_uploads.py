"""The multipart half of the SQLite index: uploads and their parts (blocking; run in threads).

Mixed into `index.Index`, which provides the connections (``conn``) and group-committed write
transactions (``write``); rows are encoded by `index_rows` exactly as objects are.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sealstore.storage.base import (
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
    ObjectChanged,
    ObjectMeta,
    PartMeta,
    UploadMeta,
    multipart_etag,
    normalize_etag,
)
from sealstore.storage.conditions import WriteCondition
from sealstore.storage.index_rows import (
    dump,
    prefix_end,
    require_bucket,
    require_condition,
    template_from_json,
    template_to_json,
)
from sealstore.storage.index_versions import publish_version

T = TypeVar("T")


class UploadsIndex:
    """Multipart uploads and parts; see `index.Index` for connections and transactions."""

    if TYPE_CHECKING:

        @property
        def conn(self) -> sqlite3.Connection: ...

        def write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    def create_upload(self, upload: UploadMeta, key: bytes) -> None:
        def tx(c: sqlite3.Connection) -> Any:
            require_bucket(c, upload.bucket)
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
            require_bucket(conn, bucket)
            raise NoSuchUpload(upload_id)
        return self._upload_from_row(row)

    def update_upload_internal(self, upload: UploadMeta, internal: dict[str, str]) -> UploadMeta:
        """Compare-and-swap the template's internal entries (see Store.update_upload_internal)."""

        def tx(c: sqlite3.Connection) -> UploadMeta:
            row = c.execute(
                "SELECT upload_id, bucket, key, initiated, meta FROM uploads WHERE upload_id=?",
                (upload.upload_id,),
            ).fetchone()
            if row is None:
                raise ObjectChanged(f"upload {upload.upload_id} is gone")
            current = self._upload_from_row(row)
            if current.meta.internal != upload.meta.internal:
                raise ObjectChanged(f"upload {upload.upload_id} changed meanwhile")
            current.meta.internal = dict(internal)
            c.execute(
                "UPDATE uploads SET meta=? WHERE upload_id=?",
                (template_to_json(current.meta), upload.upload_id),
            )
            return current

        return self.write(tx)

    def list_uploads(
        self, bucket: str, prefix: bytes, key_marker: bytes, upload_id_marker: str, limit: int
    ) -> list[UploadMeta]:
        conn = self.conn
        require_bucket(conn, bucket)
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

    def list_uploads_page(
        self, bucket: str, prefix: bytes, key_marker: bytes, upload_id_marker: str, limit: int
    ) -> tuple[list[UploadMeta], bool]:
        """`list_uploads` as one page of at most ``limit`` and whether more follow."""
        if limit <= 0:
            require_bucket(self.conn, bucket)
            return [], False
        uploads = self.list_uploads(bucket, prefix, key_marker, upload_id_marker, limit + 1)
        return uploads[:limit], len(uploads) > limit

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
                    dump(part.internal),
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
        condition: WriteCondition | None = None,
    ) -> ObjectMeta:
        """Validate the client's part list and publish the object in one transaction.

        The object row references the chosen part files in order (no data is copied); the
        upload and its part rows disappear in the same transaction and unchosen part files
        become garbage. Returns the published metadata.
        """

        def tx(c: sqlite3.Connection) -> Any:
            self._require_upload(c, upload.upload_id)
            require_condition(c, upload.bucket, key, condition)
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
            publish_version(c, meta, key, now)
            return meta

        return self.write(tx)  # type: ignore[no-any-return]
