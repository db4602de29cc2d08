"""KMS health beside the KMS: readiness state, call counters, the self-test monitor, and
:class:`ObservedKMS`, the wrapper that keeps both up to date from live traffic.

Readiness is the honest signal for orchestration (systemd health waits, the Ansible role): it
fails until the KMS's last self-test passed. A background monitor re-runs the self-test (every
~10 s while failing, ~30 s while healthy) so the server heals on its own when Vault comes back,
without a restart. A live request that finds the KMS unreachable does not wait for the next
self-test: :class:`ObservedKMS` drops readiness at once, so load balancers stop sending SSE
traffic immediately.

This module knows nothing about HTTP or the app: the admin endpoints only *read*
:class:`KMSHealth`, and whoever builds the KMS (``kms.factory.build_server_kms``) wraps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from sealstore.kms.base import KMS, DataKey, KMSStatus, KMSUnavailableError

T = TypeVar("T")

RETRY_NOT_READY_S = 10.0
RECHECK_READY_S = 30.0

# Readiness detail: ``asdict(KMSStatus)`` (whatever fields the back-end's status carries), or
# the error that made the KMS unusable. Rendered as JSON by the readiness endpoint.
HealthDetail = dict[str, object]


@dataclass
class KMSHealth:
    """The KMS's readiness verdict and its call counters, shared by every request of a process.

    ``calls`` counts KMS calls by (call, outcome): "generate"/"decrypt" from live traffic (via
    :class:`ObservedKMS`) and "status" from the self-test. The lock makes the counters safe to
    bump from worker threads as well as from the event loop.
    """

    ok: bool = False
    checked_at: float = 0.0
    detail: HealthDetail = field(default_factory=dict)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, call: str, outcome: str) -> None:
        """Count one KMS call ("generate"/"decrypt"/"status") by outcome ("ok"/"error")."""
        with self._lock:
            self.calls[(call, outcome)] += 1

    def call_counts(self) -> list[tuple[tuple[str, str], int]]:
        """A sorted, consistent copy of the call counters (for the metrics endpoint)."""
        with self._lock:
            return sorted(self.calls.items())

    def mark_failed(self, error: str) -> None:
        """A live request saw the KMS unreachable: readiness drops immediately."""
        self.ok = False
        self.detail = {**self.detail, "ok": False, "error": error}


async def run_self_test(kms: KMS | None, health: KMSHealth, logger: logging.Logger) -> bool:
    """Run ``kms.status()`` once, store the outcome in ``health``, return whether it passed.

    With no KMS configured there is nothing to test and the KMS part of readiness passes.
    A change of verdict is logged, and so is every failure (an operator watching the log sees
    the outage as long as it lasts).
    """
    if kms is None:
        health.ok = True
        health.detail = {}
        health.checked_at = time.time()
        return True
    detail: HealthDetail
    try:
        st: KMSStatus = await kms.status()
        detail = asdict(st)
        ok = bool(st.ok)
    except Exception as exc:
        detail = {"kind": kms.kind, "key_id": kms.default_key_id, "ok": False, "error": str(exc)}
        ok = False
    was_ok = health.ok
    health.ok = ok
    health.detail = detail
    health.checked_at = time.time()
    health.record("status", "ok" if ok else "error")
    if ok != was_ok or not ok:
        log = logger.info if ok else logger.warning
        log(
            "kms self-test " + ("passed" if ok else "failed"),
            extra={"kms_kind": kms.kind, "kms_error": detail.get("error")},
        )
    return ok


async def monitor(kms: KMS | None, health: KMSHealth, logger: logging.Logger) -> None:
    """Background task: self-test now, then every 10 s while failing, 30 s while healthy."""
    while True:
        ok = await run_self_test(kms, health, logger)
        if kms is None:
            return
        await asyncio.sleep(RECHECK_READY_S if ok else RETRY_NOT_READY_S)


def start_monitor(kms: KMS | None, health: KMSHealth, logger: logging.Logger) -> asyncio.Task[None]:
    """Start the background KMS monitor task (call from inside the running event loop)."""
    return asyncio.create_task(monitor(kms, health, logger), name="kms-monitor")


async def stop_monitor(task: asyncio.Task[None] | None) -> None:
    """Cancel the monitor and wait for it."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class ObservedKMS:
    """A KMS that counts every ``generate_key``/``decrypt_key`` outcome in :class:`KMSHealth`
    and drops readiness at once when the KMS is unavailable.

    It wraps whatever the server calls (``build_server_kms`` puts it outermost, around the
    optional data-key cache, so a cache hit counts as a successful "decrypt" exactly as the
    handlers counted it before this wrapper existed). ``status()`` is not counted here: the
    self-test records its own "status" outcome, and its inner generate/decrypt calls happen
    inside the back-end, never through this wrapper.
    """

    def __init__(self, inner: KMS, health: KMSHealth) -> None:
        self.inner = inner
        self.health = health
        self.kind = inner.kind
        self.default_key_id = inner.default_key_id

    def __repr__(self) -> str:
        return f"ObservedKMS({self.inner!r})"

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def status(self) -> KMSStatus:
        return await self.inner.status()

    def ready(self) -> bool:
        return self.inner.ready()

    async def generate_key(self, key_id: str, context: dict[str, str]) -> DataKey:
        return await self._observe("generate", self.inner.generate_key(key_id, context))

    async def decrypt_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        return await self._observe("decrypt", self.inner.decrypt_key(key_id, ciphertext, context))

    async def _observe(self, call: str, pending: Awaitable[T]) -> T:
        """Await one KMS call and count its outcome (cancellation is no outcome: not counted)."""
        try:
            result = await pending
        except KMSUnavailableError as exc:
            self.health.record(call, "error")
            self.health.mark_failed(str(exc))
            raise
        except Exception:
            self.health.record(call, "error")
            raise
        self.health.record(call, "ok")
        return result

    def __getattr__(self, name: str) -> object:
        # Back-end extras (VaultKMS.last_error, logins; CachingKMS.hits) stay visible.
        if name == "inner":  # not set yet (failed __init__): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
