"""Child process of the contract crash tests: opens the store described on stdin (one JSON
line, see `backends.StoreSite.to_json`) and writes until the parent SIGKILLs it.

Usage (repo root on PYTHONPATH): ``python -m tests.contract.crash_child MODE FIRST_GEN``
with MODE one of `crash_plan.MODES`, ``versions`` (a versioned bucket: every generation a new
version, every third followed by a delete marker), or ``commit-then-die`` / ``uncommitted-then-die``
(deterministic: the child kills itself right after committing, or while holding uncommitted
data). It prints ``opening`` before it opens the store, ``ready`` once it is open, then
``begin G`` / ``committed G`` around every operation (flushed, so the parent knows what the
child had acknowledged when it died).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from sealstore.storage.base import BucketAlreadyOwnedByYou, ObjectMeta, Versioning, new_version_id
from sealstore.storage.contract import Store
from tests.contract.backends import StoreSite
from tests.contract.crash_plan import (
    BUCKET,
    KEY,
    part_numbers,
    part_variants,
    single_data,
)
from tests.contract.support import KIB, content, md5hex, put, put_part, sha256hex

CHUNK = 64 * KIB


def say(line: str) -> None:
    print(line, flush=True)


async def replace(store: Store, gen: int) -> None:
    data = single_data(gen)
    await put(
        store, BUCKET, KEY, data, step=CHUNK, user_meta={"gen": str(gen), "sha256": sha256hex(data)}
    )


async def new_version(store: Store, gen: int) -> None:
    """A new version of KEY (its id chosen as the object service does), then every third
    generation a delete marker on top of it."""
    data = single_data(gen)
    meta = ObjectMeta(
        BUCKET,
        KEY,
        size=len(data),
        etag=md5hex(data),
        user_meta={"gen": str(gen), "sha256": sha256hex(data)},
        version_id=new_version_id(),
    )
    async with await store.new_writer(BUCKET, KEY) as writer:
        for pos in range(0, len(data), CHUNK):
            await writer.write(data[pos : pos + CHUNK])
        await writer.commit(meta)
    say(f"committed {gen}")
    if gen % 3 == 0:
        await store.delete(BUCKET, KEY)


async def multipart(store: Store, mode: str, gen: int) -> None:
    template = ObjectMeta(BUCKET, KEY, user_meta={"gen": str(gen)})
    upload = await store.create_upload(BUCKET, KEY, template)
    etags: dict[int, str] = {}
    rounds = len(part_variants(mode, gen, 1))
    for variant in range(rounds):
        for number in part_numbers(mode):
            data = part_variants(mode, gen, number)[variant]
            etags[number] = (await put_part(store, upload, number, data, step=CHUNK)).etag
    whole = b"".join(part_variants(mode, gen, n)[-1] for n in part_numbers(mode))
    meta = ObjectMeta(BUCKET, KEY, user_meta={"gen": str(gen), "sha256": sha256hex(whole)})
    await store.complete_upload(upload, sorted(etags.items()), meta)


async def die_after(store: Store, committed: bool) -> None:
    """Leave committed (or only uncommitted) data behind, then SIGKILL this process."""
    if committed:
        for i in range(3):
            data = content(("durable", i), 300 * KIB * i + 1)
            await put(store, BUCKET, f"durable/{i}", data, user_meta={"sha256": sha256hex(data)})
        upload = await store.create_upload(BUCKET, "pending", ObjectMeta(BUCKET, "pending"))
        await put_part(store, upload, 1, content("pending", 100 * KIB))
        await store.put_bucket_config(BUCKET, "policy", "durable")
        say("committed")
    else:
        writer = await store.new_writer(BUCKET, "uncommitted")
        upload = await store.create_upload(BUCKET, "pending", ObjectMeta(BUCKET, "pending"))
        part_writer = await store.new_part_writer(upload, 1)
        data = content("uncommitted", 3 * 1024 * KIB)
        for pos in range(0, len(data), CHUNK):
            await writer.write(data[pos : pos + CHUNK])
            await part_writer.write(data[pos : pos + CHUNK])
        say(f"written {md5hex(data)}")
    os.kill(os.getpid(), signal.SIGKILL)


async def main(mode: str, gen: int) -> None:
    site = StoreSite.from_stdin()
    say("opening")
    async with site.opened() as store:
        with contextlib.suppress(BucketAlreadyOwnedByYou):
            await store.create_bucket(BUCKET)
        say("ready")
        if mode in ("commit-then-die", "uncommitted-then-die"):
            await die_after(store, committed=mode == "commit-then-die")
        if mode == "versions":
            await store.put_versioning(BUCKET, Versioning.ENABLED)
        while True:
            say(f"begin {gen}")
            if mode == "versions":
                await new_version(store, gen)
                gen += 1
                continue
            if mode == "replace":
                await replace(store, gen)
            else:
                await multipart(store, mode, gen)
            say(f"committed {gen}")
            gen += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
