"""Contract: crash consistency, for real. A child process opens the same store (through the
registry's JSON description, on stdin) and replaces an object, completes uploads of it, or
replaces parts, and is SIGKILLed at a random moment (sometimes while still opening the
store), four times per mode. After every kill a fresh store instance must show the old
complete object or the new complete one (never older than the child's last acknowledged
commit), every object a listing shows must read back whole with its checksum, and every
part a pending upload lists must be a whole variant the child wrote (checked by completing
the upload and reading it back). Deterministic variants: data committed right before a
SIGKILL survives; data written but not committed is invisible and does not block the store.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import sealstore
from sealstore.storage.base import NoSuchKey, ObjectMeta
from sealstore.storage.contract import Store
from tests.contract.backends import StoreSite
from tests.contract.crash_plan import BUCKET, KEY, MODES, final_parts, match_part, single_data
from tests.contract.support import KIB, content, md5hex, put, read_all, sha256hex

CHILD_TIMEOUT_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    src = Path(sealstore.__file__).resolve().parents[1]
    env = dict(os.environ)
    paths = [str(REPO_ROOT), str(src), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


@dataclass
class ChildRun:
    lines: list[str]
    returncode: int
    stderr: str

    @property
    def acked(self) -> int:
        """The last generation the child reported committed (0: none)."""
        gens = [int(x.split()[1]) for x in self.lines if x.startswith("committed ")]
        return max(gens, default=0)

    @property
    def mid_operation(self) -> bool:
        return bool(self.lines) and self.lines[-1].startswith("begin ")


async def run_child(
    site: StoreSite, *args: str, kill_after: str | None, count: int = 1, delay: float = 0.0
) -> ChildRun:
    """Start the crash child; once it has printed ``count`` lines starting with
    ``kill_after``, wait ``delay`` seconds and SIGKILL it (``None``: let it end itself)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.contract.crash_child",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    try:
        proc.stdin.write(site.to_json().encode() + b"\n")
        await proc.stdin.drain()
        proc.stdin.close()
        if kill_after is not None:
            while sum(line.startswith(kill_after) for line in lines) < count:
                raw = await asyncio.wait_for(proc.stdout.readline(), CHILD_TIMEOUT_S)
                if not raw:
                    err = await proc.stderr.read()
                    pytest.fail(f"crash child ended early: {lines}\n{err.decode()}")
                lines.append(raw.decode().rstrip("\n"))
            await asyncio.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        out, err = await asyncio.wait_for(
            asyncio.gather(proc.stdout.read(), proc.stderr.read()), CHILD_TIMEOUT_S
        )
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return ChildRun(lines + out.decode().splitlines(), proc.returncode, err.decode())


# When each run's kill comes: after the n-th line starting with the marker, plus a random
# delay. "opening" kills land in the child's open() (recovery of the previous crash).
SCHEDULE = [("ready", 1), ("committed ", 1), ("opening", 1), ("committed ", 2)]


@dataclass
class Seen:
    """What the parent knows is at KEY: its generation (0: nothing) and content digest."""

    gen: int = 0
    sha: str = ""


async def check_object(store: Store, mode: str, seen: Seen, lower: int) -> Seen:
    """The object at KEY is the old one or the in-flight one, whole."""
    listed = await store.list_objects(BUCKET)
    assert [m.key for m in listed.objects] in ([], [KEY]), "a listing shows a stray object"
    try:
        meta = await store.head(BUCKET, KEY)
    except NoSuchKey:
        assert lower == 0, "a committed object disappeared"
        assert listed.objects == []
        return Seen()
    gen = int(meta.user_meta["gen"])
    assert gen in (lower, lower + 1), f"generation {gen}, expected {lower} or {lower + 1}"
    data = await read_all(store, meta)
    assert len(data) == meta.size
    assert sha256hex(data) == meta.user_meta["sha256"]
    if meta.user_meta.get("by") == "parent":  # completed by a previous check_uploads
        assert gen == seen.gen and sha256hex(data) == seen.sha
    elif mode == "replace":
        assert data == single_data(gen) and meta.parts == []
        assert meta.etag == md5hex(data) and meta.stored_size == len(data)
    else:
        parts = final_parts(mode, gen)
        assert data == b"".join(parts)
        assert [p.size for p in meta.parts] == [len(p) for p in parts]
    if gen == seen.gen:
        assert sha256hex(data) == seen.sha, "the old generation changed its bytes"
    assert [(m.size, m.user_meta["gen"]) for m in listed.objects] == [(meta.size, str(gen))]
    return Seen(gen, sha256hex(data))


async def check_uploads(store: Store, mode: str, seen: Seen) -> Seen:
    """A pending upload (at most the in-flight one) lists only whole parts; prove their
    bytes by completing it with them, which makes it the object at KEY."""
    uploads, truncated = await store.list_uploads(BUCKET)
    assert not truncated
    if mode == "replace":
        assert uploads == []
        return seen
    assert len(uploads) <= 1, [u.upload_id for u in uploads]
    for upload in uploads:
        gen = int(upload.meta.user_meta["gen"])
        assert gen == seen.gen + 1, f"upload of generation {gen} next to object {seen.gen}"
        parts, more = await store.list_parts(upload)
        assert not more
        datas = [match_part(mode, gen, p.number, p.etag, p.size) for p in parts]
        assert all(p.stored_size == p.size for p in parts)
        if not parts:
            await store.abort_upload(upload)
            continue
        whole = b"".join(datas)
        meta = ObjectMeta(
            BUCKET, KEY, user_meta={"gen": str(gen), "sha256": sha256hex(whole), "by": "parent"}
        )
        done = await store.complete_upload(upload, [(p.number, p.etag) for p in parts], meta)
        assert await read_all(store, done) == whole
        seen = Seen(gen, sha256hex(whole))
    assert await store.list_uploads(BUCKET) == ([], False)
    return seen


@pytest.mark.parametrize("mode", MODES)
async def test_sigkill_leaves_old_or_new_never_partial(fresh_site: StoreSite, mode: str) -> None:
    rng = random.Random(f"{mode}-{os.getpid()}-{time.time_ns()}")
    seen = Seen()
    mid_operation = acked = 0
    for marker, count in SCHEDULE:
        child = await run_child(
            fresh_site,
            mode,
            str(seen.gen + 1),
            kill_after=marker,
            count=count,
            delay=rng.uniform(0.0, 0.1 if marker == "opening" else 0.3),
        )
        assert child.returncode == -signal.SIGKILL, (child.returncode, child.stderr)
        mid_operation += child.mid_operation
        acked = max(acked, child.acked)
        lower = max(seen.gen, child.acked)
        async with fresh_site.opened() as store:
            seen = await check_object(store, mode, seen, lower)
            seen = await check_uploads(store, mode, seen)
    # kills landed mid-write and the child made progress, so the checks above had teeth
    assert mid_operation >= 1
    assert acked >= 2


async def test_committed_data_survives_sigkill(fresh_site: StoreSite) -> None:
    child = await run_child(fresh_site, "commit-then-die", "0", kill_after=None)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.lines == ["opening", "ready", "committed"]
    async with fresh_site.opened() as store:
        listed = await store.list_objects(BUCKET)
        assert [m.key for m in listed.objects] == ["durable/0", "durable/1", "durable/2"]
        for i, meta in enumerate(listed.objects):
            data = await read_all(store, meta)
            assert data == content(("durable", i), 300 * KIB * i + 1)
            assert sha256hex(data) == meta.user_meta["sha256"]
        assert await store.get_bucket_config(BUCKET, "policy") == "durable"
        uploads, _ = await store.list_uploads(BUCKET)
        assert [u.key for u in uploads] == ["pending"]
        parts, _ = await store.list_parts(uploads[0])
        part_data = content("pending", 100 * KIB)
        assert [(p.number, p.etag, p.size) for p in parts] == [
            (1, md5hex(part_data), len(part_data))
        ]
        meta = await store.complete_upload(
            uploads[0], [(1, parts[0].etag)], ObjectMeta(BUCKET, "pending")
        )
        assert await read_all(store, meta) == part_data


async def test_uncommitted_data_is_invisible_after_sigkill(fresh_site: StoreSite) -> None:
    child = await run_child(fresh_site, "uncommitted-then-die", "0", kill_after=None)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.lines[:2] == ["opening", "ready"] and child.lines[2].startswith("written ")
    async with fresh_site.opened() as store:
        assert (await store.list_objects(BUCKET)).objects == []
        with pytest.raises(NoSuchKey):
            await store.head(BUCKET, "uncommitted")
        uploads, _ = await store.list_uploads(BUCKET)
        assert [u.key for u in uploads] == ["pending"]
        assert await store.list_parts(uploads[0]) == ([], False)
        # the store is fully usable at the same key afterwards
        await put(store, BUCKET, "uncommitted", b"now committed")
        assert await read_all(store, await store.head(BUCKET, "uncommitted")) == b"now committed"
