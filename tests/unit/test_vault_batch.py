"""The transit batcher's queueing rules (sealstore.kms.vault_batch), with a real coroutine
standing in for the HTTP call so the interleavings are exact; the same paths against a real
OpenBao are in tests/integration/test_vault_batching.py."""

from __future__ import annotations

import asyncio

import pytest

from sealstore.kms.vault_batch import Batcher, Item, ItemFailed, Result


class Recorder:
    """A transit endpoint that answers each item with its own value after one loop turn,
    fails items whose value is "bad", and records every batch it was sent."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_with = fail_with
        self.release = asyncio.Event()
        self.release.set()

    async def send(self, items: list[Item]) -> list[Result]:
        self.batches.append([i["v"] for i in items])
        await self.release.wait()
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        return [
            {"error": "invalid ciphertext"} if i["v"] == "bad" else {"echo": i["v"]} for i in items
        ]


def test_a_lone_request_goes_out_alone_and_at_once() -> None:
    async def main() -> None:
        rec = Recorder()
        batcher = Batcher(rec.send)
        assert await batcher.submit({"v": "a"}) == {"echo": "a"}
        assert await batcher.submit({"v": "b"}) == {"echo": "b"}
        assert rec.batches == [["a"], ["b"]]
        assert (batcher.calls, batcher.items) == (2, 2)

    asyncio.run(main())


def test_requests_arriving_during_a_call_share_the_next_one() -> None:
    async def main() -> None:
        rec = Recorder()
        batcher = Batcher(rec.send)
        rec.release.clear()
        first = asyncio.create_task(batcher.submit({"v": "first"}))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert rec.batches == [["first"]]  # in flight, held
        rest = [asyncio.create_task(batcher.submit({"v": str(n)})) for n in range(50)]
        await asyncio.sleep(0)
        rec.release.set()
        assert await first == {"echo": "first"}
        assert [await t for t in rest] == [{"echo": str(n)} for n in range(50)]
        assert rec.batches == [["first"], [str(n) for n in range(50)]]

    asyncio.run(main())


def test_batches_are_capped() -> None:
    async def main() -> None:
        rec = Recorder()
        batcher = Batcher(rec.send, max_batch=8)
        got = await asyncio.gather(*(batcher.submit({"v": str(n)}) for n in range(20)))
        assert got == [{"echo": str(n)} for n in range(20)]
        assert [len(b) for b in rec.batches] == [8, 8, 4]

    asyncio.run(main())


def test_a_failed_item_fails_only_its_own_request() -> None:
    async def main() -> None:
        rec = Recorder()
        batcher = Batcher(rec.send)
        got = await asyncio.gather(
            batcher.submit({"v": "a"}),
            batcher.submit({"v": "bad"}),
            batcher.submit({"v": "c"}),
            return_exceptions=True,
        )
        assert got[0] == {"echo": "a"} and got[2] == {"echo": "c"}
        assert isinstance(got[1], ItemFailed) and str(got[1]) == "invalid ciphertext"

    asyncio.run(main())


def test_a_failed_call_fails_every_request_of_the_batch_with_its_own_copy() -> None:
    class Outage(Exception):
        pass

    async def main() -> None:
        rec = Recorder(fail_with=Outage("no Vault endpoint answered"))
        batcher = Batcher(rec.send)
        got = await asyncio.gather(
            *(batcher.submit({"v": str(n)}) for n in range(5)), return_exceptions=True
        )
        assert all(isinstance(e, Outage) and str(e) == "no Vault endpoint answered" for e in got)
        assert len({id(e) for e in got}) == 5  # one instance per waiter
        rec.fail_with = None
        assert await batcher.submit({"v": "healed"}) == {"echo": "healed"}

    asyncio.run(main())


def test_a_caller_that_goes_away_does_not_disturb_the_others() -> None:
    async def main() -> None:
        rec = Recorder()
        batcher = Batcher(rec.send)
        rec.release.clear()
        first = asyncio.create_task(batcher.submit({"v": "first"}))
        await asyncio.sleep(0)
        gone = asyncio.create_task(batcher.submit({"v": "gone"}))
        stays = asyncio.create_task(batcher.submit({"v": "stays"}))
        await asyncio.sleep(0)
        gone.cancel()
        rec.release.set()
        assert await first == {"echo": "first"}
        assert await stays == {"echo": "stays"}
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert rec.batches == [["first"], ["stays"]]  # the cancelled item was never sent

    asyncio.run(main())


def test_close_cancels_waiters_and_refuses_nothing_later() -> None:
    async def main() -> None:
        rec = Recorder()
        batcher = Batcher(rec.send)
        rec.release.clear()
        waiting = asyncio.create_task(batcher.submit({"v": "x"}))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await batcher.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        rec.release.set()
        assert await batcher.submit({"v": "after"}) == {"echo": "after"}

    asyncio.run(main())


def test_max_batch_must_be_positive() -> None:
    async def send(items: list[Item]) -> list[Result]:
        return []

    with pytest.raises(ValueError):
        Batcher(send, max_batch=0)
