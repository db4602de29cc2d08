"""FSBackend opens an index written before versioning (format 1: no `versions` table, no
version columns): the upgrade happens on open, every existing object becomes its key's null
version with its data intact, and versioning then works on top of it (the old object stays
as the noncurrent null version)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sealstore.storage import FSBackend, ObjectMeta, Versioning
from sealstore.storage.base import new_version_id

FORMAT_1_OBJECTS = """CREATE TABLE objects(
    bucket TEXT NOT NULL, key BLOB NOT NULL, size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified REAL NOT NULL,
    content_type TEXT NOT NULL, user_meta TEXT NOT NULL, headers TEXT NOT NULL,
    internal TEXT NOT NULL, parts TEXT NOT NULL, files TEXT NOT NULL,
    PRIMARY KEY(bucket, key)) WITHOUT ROWID"""
COLUMNS = (
    "bucket, key, size, stored_size, etag, last_modified, content_type, user_meta, headers, "
    "internal, parts, files"
)


async def put(store: FSBackend, key: str, data: bytes, version: str | None = None) -> None:
    async with await store.new_writer("bkt", key) as writer:
        await writer.write(data)
        await writer.commit(ObjectMeta("bkt", key, size=len(data), version_id=version))


async def read(store: FSBackend, meta: ObjectMeta) -> bytes:
    return b"".join([chunk async for chunk in store.read(meta)])


def downgrade_to_format_1(index: Path) -> None:
    """Rewrite the index as format 1 had it (same rows, old columns, no versions table)."""
    conn = sqlite3.connect(index, isolation_level=None)
    conn.executescript(
        f"""BEGIN;
        ALTER TABLE objects RENAME TO objects_v2;
        {FORMAT_1_OBJECTS};
        INSERT INTO objects({COLUMNS}) SELECT {COLUMNS} FROM objects_v2;
        DROP TABLE objects_v2;
        DROP TABLE versions;
        PRAGMA user_version=1;
        COMMIT;"""
    )
    assert "version_id" not in {r[1] for r in conn.execute("PRAGMA table_info(objects)")}
    conn.close()


def test_format_1_index_is_upgraded_on_open(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with FSBackend(tmp_path, gc_grace=0.0) as store:
            await store.create_bucket("bkt")
            await put(store, "old", b"written by format 1")
            await put(store, "dir/other", b"another")
        downgrade_to_format_1(store.layout.index)

        async with FSBackend(tmp_path, gc_grace=0.0) as store:
            meta = await store.head("bkt", "old")
            assert meta.version_id is None and meta.is_latest
            assert await read(store, meta) == b"written by format 1"
            listed = await store.list_versions("bkt")
            assert [(m.key, m.version_label, m.is_latest) for m in listed.versions] == [
                ("dir/other", "null", True),
                ("old", "null", True),
            ]
            await store.put_versioning("bkt", Versioning.ENABLED)
            new = new_version_id()
            await put(store, "old", b"first version", new)
            assert (await store.head("bkt", "old")).version_id == new
            kept = await store.head("bkt", "old", "null")
            assert not kept.is_latest and await read(store, kept) == b"written by format 1"

        conn = sqlite3.connect(store.layout.index)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        conn.close()

    asyncio.run(scenario())
