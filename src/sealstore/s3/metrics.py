"""Process-local request counters, rendered by the admin endpoints as Prometheus text.

Only what the HTTP layer sees lives here (requests by operation and status, body bytes,
uptime); KMS call counters belong to the KMS (``sealstore.kms.health.KMSHealth``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricsSnapshot:
    """A consistent copy of the counters, taken under the lock."""

    requests: list[tuple[tuple[str, int], int]]
    bytes_in: int
    bytes_out: int
    started: float


@dataclass
class Metrics:
    """Request counters of one worker process.

    Plain integers guarded by a lock, so a count taken from another thread is never torn.
    """

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    started: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_request(self, op: str, status: int, bytes_in: int, bytes_out: int) -> None:
        """Count one finished request under its operation name and HTTP status."""
        with self._lock:
            self.requests[(op, status)] += 1
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out

    def snapshot(self) -> MetricsSnapshot:
        """Copy the counters under the lock (sorted by operation, then status)."""
        with self._lock:
            return MetricsSnapshot(
                requests=sorted(self.requests.items()),
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                started=self.started,
            )
