"""Contract: versioned writes are crash-safe like objects. A child process keeps adding
versions of one key in a versioned bucket (every third followed by a delete marker) and is
SIGKILLed at random moments, also while reopening the store. After every kill a fresh store
lists exactly the generations 1..n (n the last acknowledged one, or one more) newest first,
each whole with its checksum and its own id, delete markers only right above a generation
that wrote one, and the key's current version agrees with the listing's latest entry."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from sealstore.storage.base import DeleteMarkerCurrent
from sealstore.storage.contract import Store
from tests.contract.backends import StoreSite
from tests.contract.crash_plan import BUCKET, KEY, single_data
from tests.contract.support import read_all, sha256hex
from tests.contract.test_crash import run_child

SCHEDULE = [("committed ", 1), ("opening", 1), ("committed ", 4)]


async def check_versions(store: Store, lower: int) -> int:
    """The versions of KEY are generations 1..n, n in (lower, lower + 1); returns n."""
    listed = await store.list_versions(BUCKET)
    assert not listed.is_truncated and listed.common_prefixes == []
    assert {m.key for m in listed.versions} <= {KEY}
    ids = [m.version_id for m in listed.versions]
    assert len(set(ids)) == len(ids) and None not in ids
    assert [m.is_latest for m in listed.versions] == [True] + [False] * (len(ids) - 1)
    gens: list[int] = []
    for i, meta in enumerate(listed.versions):
        if meta.is_delete_marker:  # a marker sits right above a generation that wrote one
            below = listed.versions[i + 1]
            assert not below.is_delete_marker and int(below.user_meta["gen"]) % 3 == 0
            continue
        gen = int(meta.user_meta["gen"])
        data = await read_all(store, meta)
        assert data == single_data(gen) and sha256hex(data) == meta.user_meta["sha256"]
        gens.append(gen)
    n = len(gens)
    assert gens == list(range(n, 0, -1)), gens
    assert n in (lower, lower + 1), (n, lower)
    current = [m.key for m in (await store.list_objects(BUCKET)).objects]
    if listed.versions and listed.versions[0].is_delete_marker:
        with pytest.raises(DeleteMarkerCurrent):
            await store.head(BUCKET, KEY)
        assert current == []
    elif listed.versions:
        assert (await store.head(BUCKET, KEY)).version_id == ids[0]
        assert current == [KEY]
    return n


async def test_sigkill_never_loses_or_tears_a_version(fresh_site: StoreSite) -> None:
    rng = random.Random(f"versions-{os.getpid()}-{time.time_ns()}")
    n = 0
    for marker, count in SCHEDULE:
        child = await run_child(
            fresh_site,
            "versions",
            str(n + 1),
            kill_after=marker,
            count=count,
            delay=rng.uniform(0.0, 0.1 if marker == "opening" else 0.3),
        )
        assert child.returncode == -signal.SIGKILL, (child.returncode, child.stderr)
        async with fresh_site.opened() as store:
            n = await check_versions(store, max(n, child.acked))
    assert n >= 4
