"""HTTP to a Vault/OpenBao cluster: one connection pool, per-call failover, health probes.

``VaultTransport.request`` is the only way the KMS layer talks to Vault. With one endpoint it
behaves exactly like a plain client (one attempt, ``request_timeout``, a clear
:class:`KMSUnavailableError`). With several (the nodes of a Raft cluster) one call may try
every node, in the order :class:`~sealstore.kms.vault_endpoints.EndpointPool` gives, within a
bounded budget (``failover_timeout``, 10 s by default):

* a node that is down (refused, TLS failure, sealed, a plain HTTP 500) is skipped at once;
  when *every* node is down the call fails immediately: an outage answers 503 fast instead
  of hanging clients;
* a node that cannot serve *now* (timeout, reset, 502/503/504, 429, a standby without a
  leader or redirecting) is worth another pass: during a leader election no node can serve
  writes (logins, renewals) for a few seconds, and standbys may redirect transit calls to the
  lost leader, so the call pauses briefly (0.1 s doubling to 1 s) and tries again until the
  budget ends. That is what makes losing the leader invisible to S3 clients;
* each attempt gets at most a third of the budget (and never more than ``request_timeout``),
  so a frozen node (SIGSTOP: connects, never answers) costs one slice, not the whole call, and
  a node that timed out is not asked again within the same call;
* redirects are never followed (the token would go to whatever host a ``Location`` names);
  a redirect to a configured node moves that node to the front and the call goes there at
  once. Standbys redirect instead of forwarding when ``request_forwarding=False`` (the
  ``X-Vault-No-Request-Forwarding`` header): one hop less per call, at the price of
  depending on the client to find the active node, which this transport does.

Everything sent is idempotent for the KMS (a second data key, a second login token or a
repeated renew are harmless), so retrying a call whose answer was lost is safe. Answers that
are the caller's business (2xx, 4xx such as a refused AppRole login) are returned as they are
and never retried elsewhere: the AppRole lockout protection lives in the KMS layer and depends
on that. A background task probes ``sys/health`` of every node (every 5 s, failed nodes after
their backoff) so readiness shows which node is active and a recovered node is used again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from sealstore.kms.base import EndpointHealth, KMSUnavailableError
from sealstore.kms.vault_endpoints import (
    EndpointPool,
    EndpointState,
    Verdict,
    classify,
    error_text,
)

log = logging.getLogger("sealstore.kms.vault")

PROBE_TIMEOUT = 2.0
RETRY_PAUSE_MIN = 0.1
RETRY_PAUSE_MAX = 1.0


def describe(exc: BaseException) -> str:
    """One line for a network failure (no secrets can be in it: we never put any in URLs)."""
    if isinstance(exc, asyncio.TimeoutError):
        return "request timed out"
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")


@dataclass
class _Failure:
    verdict: Verdict
    message: str
    timed_out: bool = False
    redirected: bool = False


class VaultTransport:
    """Requests to ``/v1/<path>`` on the best available node; see the module docstring."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        ssl_context: ssl.SSLContext | None,
        namespace: str | None,
        request_timeout: float,
        connect_timeout: float,
        failover_timeout: float = 10.0,
        probe_interval: float = 5.0,
        request_forwarding: bool = True,
    ) -> None:
        self.pool = EndpointPool(urls, probe_interval=probe_interval)
        self.namespace = namespace
        self._forwarding = request_forwarding
        self._ssl = ssl_context
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._failover_timeout = failover_timeout
        self._attempt_timeout = min(request_timeout, max(1.0, failover_timeout / 3))
        self._session: aiohttp.ClientSession | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._closed = False
        self.retries = 0

    @property
    def multi(self) -> bool:
        return len(self.pool) > 1

    @property
    def failovers(self) -> int:
        return self.pool.failovers

    def health(self) -> list[EndpointHealth]:
        return self.pool.health()

    # ------------------------------------------------------------------ lifecycle

    def session(self) -> aiohttp.ClientSession:
        """The shared keep-alive pool (created lazily, inside the running loop)."""
        if self._closed:
            raise KMSUnavailableError("Vault KMS client is closed")
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else False,
                limit=64,
                keepalive_timeout=30.0,
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def start_probes(self) -> None:
        """Probe every node in the background (only with several nodes: one has no choice)."""
        if self.multi and self._probe_task is None and not self._closed:
            self._probe_task = asyncio.create_task(self._probe_loop(), name="sealstore-vault-probe")

    async def close(self) -> None:
        self._closed = True
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
            self._probe_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ requests

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None, token: str | None
    ) -> tuple[int, dict[str, Any]]:
        """One Vault call with failover; raises :class:`KMSUnavailableError` when no node
        could answer within the budget (the message lists what each node said)."""
        session = self.session()
        headers = {}
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        if token is not None:
            headers["X-Vault-Token"] = token
        if not self._forwarding:
            headers["X-Vault-No-Request-Forwarding"] = "true"
        end = time.monotonic() + self._failover_timeout
        slow: set[str] = set()
        failures: dict[str, str] = {}
        pause = RETRY_PAUSE_MIN
        attempts = 0
        redirects = 0
        while True:
            transient = replan = False
            for ep in self.pool.plan(skip=slow):
                remaining = end - time.monotonic()
                if self.multi and remaining <= 0.05:
                    break
                budget = min(self._attempt_timeout, remaining) if self.multi else None
                attempts += 1
                if attempts > 1:
                    self.retries += 1
                result = await self._attempt(session, ep, method, path, body, headers, budget)
                if not isinstance(result, _Failure):
                    return result
                failures[ep.url] = result.message
                if result.timed_out:
                    slow.add(ep.url)
                transient = transient or result.verdict is Verdict.RETRY
                if result.redirected and redirects < len(self.pool):
                    redirects += 1
                    replan = True  # straight to the node the standby named
                    break
            if replan:
                continue
            if not self.multi:
                raise KMSUnavailableError(next(iter(failures.values())))
            if not transient or time.monotonic() + pause >= end:
                raise KMSUnavailableError(self._summary(failures))
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_PAUSE_MAX)

    def _summary(self, failures: dict[str, str]) -> str:
        if not failures:
            return f"no Vault endpoint answered within {self._failover_timeout:g}s"
        return f"all {len(self.pool)} Vault endpoints failed: " + "; ".join(
            failures[url] for url in failures
        )

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        ep: EndpointState,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
        budget: float | None,
    ) -> tuple[int, dict[str, Any]] | _Failure:
        """One request to one node: the answer, or a :class:`_Failure` already recorded."""
        total = self._request_timeout if budget is None else budget
        client_timeout = aiohttp.ClientTimeout(
            total=total,
            connect=min(self._connect_timeout, total),
            sock_connect=min(self._connect_timeout, total),
        )
        started = time.monotonic()
        location = ""
        try:
            payload = body if method == "POST" else None
            async with session.request(
                method,
                f"{ep.url}/v1/{path}",
                json=payload,
                headers=headers,
                timeout=client_timeout,
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                location = resp.headers.get("Location", "")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            verdict = Verdict.RETRY
            if isinstance(exc, aiohttp.ClientConnectorError | ssl.SSLError):
                verdict = Verdict.DOWN  # refused, unresolvable, bad certificate
            failure = _Failure(
                verdict,
                f"Vault at {ep.url} is unreachable: {describe(exc)}",
                timed_out=isinstance(exc, asyncio.TimeoutError),
            )
            self._record_failure(ep, failure.message)
            return failure
        latency = (time.monotonic() - started) * 1000.0
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        detail = error_text(data)
        verdict, reason = classify(status, detail)
        if verdict is Verdict.ANSWER:
            if self.pool.succeeded(ep, latency):
                log.warning("Vault failover: KMS calls now go to %s", ep.url)
            return status, data
        hinted = status in (307, 308) and bool(location) and self.pool.hint(location)
        message = f"Vault at {ep.url} is {reason} (HTTP {status}): {detail}"
        self._record_failure(ep, message)
        return _Failure(verdict, message, redirected=hinted)

    def _record_failure(self, ep: EndpointState, message: str) -> None:
        if self.pool.failed(ep, message) and self.multi:
            log.warning("Vault endpoint failing, trying the others: %s", message)
        else:
            log.debug("Vault attempt failed: %s", message)

    # ------------------------------------------------------------------ probes

    async def _probe_loop(self) -> None:
        while not self._closed:
            try:
                due = self.pool.due_probes()
                if due:
                    await asyncio.gather(*(self._probe(ep) for ep in due))
                await asyncio.sleep(max(0.2, self.pool.next_probe_in()))
            except asyncio.CancelledError:
                raise
            except Exception:  # the prober must outlive any surprise
                log.exception("unexpected error in the Vault health probe")
                await asyncio.sleep(1.0)

    async def _probe(self, ep: EndpointState) -> None:
        """``GET sys/health`` (unauthenticated, no namespace: it is a root-only endpoint)."""
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            async with self.session().get(
                f"{ep.url}/v1/sys/health",
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
                allow_redirects=False,
            ) as resp:
                await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = f"Vault at {ep.url} is unreachable: {describe(exc)}"
        latency = (time.monotonic() - started) * 1000.0
        was_failing = ep.ok is False
        if self.pool.probed(ep, status=status, latency_ms=latency, error=error):
            log.info("Vault endpoint %s is serving again", ep.url)
        elif not was_failing and ep.ok is False:
            log.warning("Vault endpoint failing its health probe: %s", ep.last_error)
