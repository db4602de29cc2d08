"""storage.factory.open_store: a directory path gives the FS backend (which then really stores),
an unknown ``scheme://`` location is a clear ValueError instead of a directory named ``s3:``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sealstore.storage.contract import Store
from sealstore.storage.factory import open_store
from sealstore.storage.fs import FSBackend


@pytest.mark.parametrize("as_str", [True, False])
def test_directory_path_gives_a_working_fs_backend(tmp_path: Path, as_str: bool) -> None:
    store = open_store(str(tmp_path / "d") if as_str else tmp_path / "d")
    assert isinstance(store, FSBackend) and isinstance(store, Store)

    async def main() -> list[str]:
        await store.open()
        try:
            await store.create_bucket("bkt")
            return [b.name for b in await store.list_buckets()]
        finally:
            await store.close()

    assert asyncio.run(main()) == ["bkt"]
    assert (tmp_path / "d" / "sealstore.sqlite3").is_file()


@pytest.mark.parametrize("location", ["s3://bucket/prefix", "file:///srv/data", "weed+s3://x"])
def test_unknown_scheme_is_refused(tmp_path: Path, location: str) -> None:
    with pytest.raises(ValueError, match="unknown storage location scheme"):
        open_store(location)
