"""Group commit: many threads' write transactions share one SQLite commit (one WAL fsync).

With `synchronous=FULL` every commit costs an fsync, and SQLite admits one writer at a time,
so committing each small PUT on its own caps a process at roughly one fsync per object. A
single committer thread instead takes every request that queued up while the previous commit
was in flight and runs them in one transaction, each inside its own SAVEPOINT so one request's
failure (say NoSuchBucket) rolls back only that request. An idle committer runs a lone
request immediately, so there is no added latency, only amortisation under load.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sealstore.storage.base import StorageFull

T = TypeVar("T")

MAX_BATCH = 128


def translate_sqlite_error(exc: BaseException) -> BaseException:
    """SQLITE_FULL becomes StorageFull; everything else passes unchanged."""
    if (
        isinstance(exc, sqlite3.Error)
        and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    ):
        full = StorageFull(f"data directory is full: {exc}")
        full.__cause__ = exc
        return full
    return exc


@dataclass
class _Request(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class GroupCommitter:
    """Owns one connection and one thread that executes queued write transactions."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[_Request[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # commits issued (for metrics and tests)
        self.requests = 0  # requests served

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                # daemon: a caller that never closes must not hang interpreter exit; every
                # request is synchronous with its caller, so nothing acknowledged is lost.
                self._thread = threading.Thread(
                    target=self._loop, name="sealstore-commit", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Execute `fn(conn)` inside a write transaction; blocks until it is durable."""
        if self._thread is None:
            raise RuntimeError("storage committer is not running")
        request: _Request[T] = _Request(fn)
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[no-any-return]

    # -- committer thread ----------------------------------------------------------------

    def _loop(self) -> None:
        conn = self._connect()
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch: list[_Request[Any]] = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self.batches += 1
            self.requests += len(batch)
            try:
                self._commit(conn, batch)
            except BaseException as exc:  # never leave a caller waiting forever
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                for request in batch:
                    request.error = translate_sqlite_error(exc)
            for request in batch:
                request.done.set()
        conn.close()

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[_Request[Any]]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            for request in batch:
                request.error = translate_sqlite_error(exc)
            return
        for request in batch:
            conn.execute("SAVEPOINT request")
            try:
                request.result = request.fn(conn)
            except BaseException as exc:
                request.error = translate_sqlite_error(exc)
                if not conn.in_transaction:
                    # SQLite aborted the whole transaction (e.g. disk full): nothing of this
                    # batch will be committed, so nobody may be told otherwise.
                    for other in batch:
                        if other.error is None:
                            other.error = request.error
                    return
                conn.execute("ROLLBACK TO request")
            conn.execute("RELEASE request")
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for request in batch:
                if request.error is None:
                    request.error = translate_sqlite_error(exc)
