"""Coalesce concurrent transit calls on one key into ``batch_input`` requests.

Why: with one HTTP round trip to Vault per object, OpenBao mode ran at 0.35x (GET) and 0.56x
(PUT) of master-key mode for 4 KiB objects (issue 11). Transit's ``encrypt``, ``decrypt`` and
``rewrap`` take a ``batch_input`` list, so one round trip can serve many objects.

How: there is no timer and no window. The first request for an (operation, key) pair goes out
at once, alone, so a lone request waits for nothing it did not wait for before. Requests that
arrive while that call is in flight queue up and leave together, as one batch, as soon as it
returns. Under load the batch size grows with the concurrency; idle, it is one.

What stays per object: each item keeps its own context and gets its own result. A bad
ciphertext fails only its own request (:class:`ItemFailed`). A failure of the whole call (an
outage, a denied policy, a missing key) fails every request of that batch with the same error
class, exactly as each would have failed alone. Data keys stay unique per object: batching
changes how many objects share a round trip, not what is generated or stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

Item = dict[str, str]
Result = dict[str, Any]
SendBatch = Callable[[list[Item]], Awaitable[list[Result]]]

DEFAULT_MAX_BATCH = 128


class ItemFailed(Exception):
    """Vault refused this one item of a batch (its ``error`` text); the others may have worked."""


def _copy(exc: BaseException) -> BaseException:
    """A fresh exception of the same class and message for each waiter: raising one instance in
    many tasks would chain every task's traceback onto it."""
    try:
        clone = type(exc)(*exc.args)
    except Exception:  # an exception class with an unusual constructor: share the original
        return exc
    clone.__cause__ = exc.__cause__
    return clone


class Batcher:
    """The queue of one (operation, key) pair; see the module docstring.

    ``send`` performs one transit call for a list of items and returns exactly one result per
    item, in order (a result with an ``error`` entry is that item's failure). ``calls`` and
    ``items`` count what was sent, for metrics and for tests that prove coalescing happened.
    """

    def __init__(self, send: SendBatch, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._send = send
        self._max = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None
        self.calls = 0
        self.items = 0

    async def submit(self, item: Item) -> Result:
        """Send ``item`` with whatever else is queued; its own result, or raise."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def close(self) -> None:
        """Stop the drain task (its waiters get ``CancelledError``)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()

    async def _drain(self) -> None:
        """Send queued items in batches until the queue is empty."""
        while self._pending:
            batch = [(i, f) for i, f in self._pending[: self._max] if not f.done()]
            del self._pending[: self._max]
            if batch:
                await self._flush(batch)

    async def _flush(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self.calls += 1
        self.items += len(batch)
        try:
            results = await self._send([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(_copy(exc))
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away (client disconnected)
                continue
            error = result.get("error") if isinstance(result, dict) else "malformed result"
            if error:
                future.set_exception(ItemFailed(str(error)))
            else:
                future.set_result(result)
