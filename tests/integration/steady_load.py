"""A steady, bounded SSE-S3 client load for fault tests: fixed-rate PUT + GET with sha256 checks.

``SteadyLoad`` starts one operation every ``1/rate`` seconds on a small thread pool (so one slow
request never delays the schedule, and the load stays fixed instead of backing off when the
server slows down): PUT a fresh random object with ``x-amz-server-side-encryption: AES256``,
then GET it and compare the SHA-256 of the body. Every outcome is recorded with its start and
end times, so a test can count client-visible errors per fault window and measure how long
after a fault the first request succeeded. The load is bounded by ``max_ops`` as well as by
``stop()``: a test that forgets to stop it cannot run away.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    """One PUT+GET round trip as the client saw it."""

    key: str
    started: float
    put_done: float | None = None
    ended: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.ended is not None


class SteadyLoad:
    """Fixed-rate PUT+GET round trips against one bucket; see the module docstring."""

    def __init__(
        self,
        make_client: Callable[[], Any],
        bucket: str,
        *,
        rate: float = 5.0,
        size: int = 16 * 1024,
        workers: int = 8,
        max_ops: int = 2000,
    ) -> None:
        self._make_client = make_client
        self.bucket = bucket
        self.rate = rate
        self.size = size
        self.max_ops = max_ops
        self.outcomes: list[Outcome] = []
        self.written: dict[str, str] = {}  # key -> sha256 of objects whose PUT succeeded
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="steady-load")
        self._ticker: threading.Thread | None = None
        self._seq = 0

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._make_client()
            self._local.client = client
        return client

    def start(self) -> SteadyLoad:
        self._ticker = threading.Thread(target=self._tick, name="steady-load-ticker", daemon=True)
        self._ticker.start()
        return self

    def _tick(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set() and self._seq < self.max_ops:
            now = time.monotonic()
            if now < next_at:
                self._stop.wait(next_at - now)
                continue
            self._seq += 1
            outcome = Outcome(key=f"load/{self._seq:06d}", started=time.monotonic())
            with self._lock:
                self.outcomes.append(outcome)
            self._pool.submit(self._round_trip, outcome)
            next_at += interval

    def _round_trip(self, outcome: Outcome) -> None:
        body = os.urandom(self.size)
        digest = hashlib.sha256(body).hexdigest()
        s3 = self._client()
        try:
            s3.put_object(
                Bucket=self.bucket, Key=outcome.key, Body=body, ServerSideEncryption="AES256"
            )
            outcome.put_done = time.monotonic()
            with self._lock:
                self.written[outcome.key] = digest
            got = s3.get_object(Bucket=self.bucket, Key=outcome.key)
            data = got["Body"].read()
            if got.get("ServerSideEncryption") != "AES256":
                raise AssertionError("GET did not report SSE-S3")
            if hashlib.sha256(data).hexdigest() != digest:
                raise AssertionError("GET returned different bytes (sha256 mismatch)")
            outcome.ended = time.monotonic()
        except Exception as exc:  # every failure is a client-visible error, recorded
            outcome.error = f"{type(exc).__name__}: {exc}"[:300]
            outcome.ended = time.monotonic()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop scheduling and wait for every started round trip to finish."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout)
        self._pool.shutdown(wait=True)

    # ------------------------------------------------------------------ reports

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def window(self, start: float, end: float) -> list[Outcome]:
        """Round trips that were in flight at any moment of [start, end]."""
        return [
            o for o in self.snapshot() if o.started <= end and (o.ended is None or o.ended >= start)
        ]

    def errors(self, start: float = 0.0, end: float = float("inf")) -> list[Outcome]:
        return [o for o in self.window(start, end) if o.ended is not None and not o.ok]

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first PUT (a KMS data-key call) that completed after
        it; PUTs started before the fault count too: they may have been retried across nodes."""
        done = [o.put_done for o in self.snapshot() if o.put_done is not None]
        after = [t for t in done if t >= moment]
        return min(after) - moment if after else None

    def max_latency(self, start: float, end: float) -> float:
        spans = [o.ended - o.started for o in self.window(start, end) if o.ended is not None]
        return max(spans, default=0.0)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Wait until ``count`` more round trips have finished (load is actually flowing)."""
        target = sum(1 for o in self.snapshot() if o.ended is not None) + count
        deadline = time.monotonic() + timeout
        while sum(1 for o in self.snapshot() if o.ended is not None) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load made no progress in {timeout}s")
            time.sleep(0.05)
