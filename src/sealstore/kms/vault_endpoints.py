"""Which Vault/OpenBao node to ask next, and what an answer means: the pure part of failover.

A Raft cluster has one active node and standbys. Standbys forward requests to the active node
by default, so any unsealed member can serve a transit call while the cluster has a leader;
what a client must survive is a node that is gone (connection refused or reset), frozen
(connects, never answers: only a timeout tells), sealed (503), overloaded (429), or a standby
that cannot serve right now (no active node during an election, forwarding disabled: a 307
redirect, "local node not active" errors, 5xx). This module decides, without any I/O:

* :func:`classify`: whether an HTTP answer is a real answer for the caller (2xx and 4xx such
  as a refused login, which must never be retried on another node: every refused AppRole
  login counts towards Vault's user lockout), a node that is down, or a node that cannot serve
  *now* while others may (worth retrying elsewhere, and again after a short pause);
* :class:`EndpointPool`: the order in which to try nodes. The node that answered last stays
  first (it is known good, and keeps connections warm); a node that failed is tried only as a
  last resort until its backoff (1 s doubling to 10 s) expires, so a dead node costs a request
  nothing once it is known dead, and a returning node is used again without a restart.

Kept free of asyncio and aiohttp so unit tests can drive every decision with a fake clock.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sealstore.kms.base import EndpointHealth

MAX_ENDPOINTS = 16

# Error texts of a node that is up but cannot serve the call itself (Vault and OpenBao use
# these for standbys without a reachable active node and for failed request forwarding).
STANDBY_MARKERS = (
    "local node not active",
    "active cluster node not found",
    "node not active",
    "in standby mode",
    "standby",
    "request forwarding failed",
    "no leader",
    "leadership lost",
    "not the leader",
)
SEALED_MARKERS = ("vault is sealed", "server is sealed", "is sealed")


def parse_endpoints(raw: str | Sequence[str]) -> list[str]:
    """``"https://a:8200, https://b:8200/"`` (or a list) -> base URLs in the given order.

    Each entry must be a plain ``http(s)://host[:port]`` base URL. Mixed schemes are refused
    (one plaintext node in a TLS cluster would get the token in clear), so are user info (a
    ``user:password@`` would end up in logs), queries and fragments (Vault clients never need
    them) and duplicates (they hide a mistyped node). Raises ``ValueError`` with a message
    that names the entry; ``config.py`` prefixes the variable name.
    """
    items = [item.strip() for item in (raw.split(",") if isinstance(raw, str) else raw)]
    if len(items) > MAX_ENDPOINTS:
        raise ValueError(f"lists {len(items)} endpoints; at most {MAX_ENDPOINTS}")
    urls: list[str] = []
    for index, item in enumerate(items, 1):
        where = "" if len(items) == 1 else f"entry {index} of {len(items)} "
        urls.append(_parse_url(where, item.rstrip("/")))
    if len({urlsplit(url).scheme for url in urls}) > 1:
        raise ValueError("mixes http:// and https:// endpoints; use one scheme for all")
    seen: set[str] = set()
    for url in urls:
        if url.lower() in seen:
            raise ValueError(f"lists {url!r} twice")
        seen.add(url.lower())
    return urls


def _parse_url(where: str, url: str) -> str:
    if not url:
        raise ValueError(f"{where}is empty (separate several endpoints with single commas)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}must be an http(s) URL like https://vault:8200, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{where}must not contain user info (user:password@)")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"{where}must not contain a query or fragment, got {url!r}")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{where}has an invalid port: {url!r}") from None
    return url


class Verdict(enum.Enum):
    """What one attempt against one node means for the call."""

    ANSWER = "answer"  # a real answer: return it to the caller, never retry it elsewhere
    RETRY = "retry"  # this node cannot serve now, another may (and this one may soon)
    DOWN = "down"  # gone, sealed or failing: try the others, but do not wait for this one


def error_text(data: dict[str, Any]) -> str:
    """Vault's ``errors`` list as one line (bounded), or a fixed "no error detail"."""
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        text = " ".join("; ".join(str(e) for e in errors).split())
        return text.replace("1 error occurred: * ", "")[:500]
    return "no error detail"


def classify(status: int, detail: str) -> tuple[Verdict, str]:
    """Verdict and a short reason ("sealed", "standby", ...) for an HTTP answer.

    5xx, 429 and standby answers are not the caller's business: another node (or this one, a
    moment later) can serve the same call. A 4xx that names a standby condition is treated
    the same, whatever its code, because Vault versions differ in the code they use.
    """
    lowered = detail.lower()
    if status in (307, 308):
        return Verdict.RETRY, "a standby redirecting to the active node"
    if status == 503 and any(m in lowered for m in SEALED_MARKERS):
        return Verdict.DOWN, "sealed"
    if status == 501:
        return Verdict.DOWN, "not initialized"
    if any(m in lowered for m in STANDBY_MARKERS) and status >= 400:
        return Verdict.RETRY, "a standby that cannot serve"
    if status == 429:
        return Verdict.RETRY, "rate limiting or a standby (HTTP 429)"
    if status == 503:
        return Verdict.RETRY, "sealed or unavailable"
    if status == 500:
        # a plain internal error is no cluster transition: other nodes get one chance each,
        # but the call does not wait out its budget for an error that will not go away
        return Verdict.DOWN, "failing"
    if status >= 500:
        return Verdict.RETRY, "failing"  # 502/504: a proxy in front, usually brief
    return Verdict.ANSWER, "ok"


def same_node(url: str, location: str) -> bool:
    """Whether a redirect ``location`` points at the configured base ``url`` (scheme+host+port)."""
    a, b = urlsplit(url), urlsplit(location)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


@dataclass
class EndpointState:
    """Mutable view of one node; turned into :class:`EndpointHealth` for status pages."""

    url: str
    ok: bool | None = None
    last_error: str | None = None
    latency_ms: float | None = None
    active: bool | None = None
    failures: int = 0
    retry_at: float = 0.0
    next_probe: float = 0.0


class EndpointPool:
    """The configured nodes, the current one, and per-node backoff; see the module docstring."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        backoff_min: float = 1.0,
        backoff_max: float = 10.0,
        probe_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("at least one Vault endpoint is required")
        self.endpoints = [EndpointState(url) for url in urls]
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._probe_interval = probe_interval
        self._clock = clock
        self._current = 0
        self._hinted: str | None = None
        self.failovers = 0

    def __len__(self) -> int:
        return len(self.endpoints)

    @property
    def current(self) -> EndpointState:
        """The node calls go to first: the one that answered last."""
        return self.endpoints[self._current]

    def plan(self, skip: Iterable[str] = ()) -> list[EndpointState]:
        """Every node not in ``skip``, in the order one call should try them.

        Usable nodes first: a node named by a standby's redirect (consumed by this plan, and
        ignored while that node is in backoff: during an election standbys keep naming the
        dead or frozen leader), then the current node, then known-good nodes (the active one
        before standbys), then never-tried nodes, then nodes whose backoff expired. Nodes still
        in backoff come last, earliest retry first, so a call whose better options all failed
        still tries them before giving up.
        """
        now = self._clock()
        skipped = set(skip)
        hinted, self._hinted = self._hinted, None

        def rank(item: tuple[int, EndpointState]) -> tuple[int, float, int]:
            index, ep = item
            if ep.retry_at > now:
                return (6, ep.retry_at, index)
            if ep.url == hinted:
                return (0, 0.0, index)
            if index == self._current:
                return (1, 0.0, index)
            if ep.ok and ep.active:
                return (2, 0.0, index)
            if ep.ok:
                return (3, 0.0, index)
            if ep.ok is None:
                return (4, 0.0, index)
            return (5, 0.0, index)

        ordered = sorted(enumerate(self.endpoints), key=rank)
        return [ep for _, ep in ordered if ep.url not in skipped]

    def succeeded(self, ep: EndpointState, latency_ms: float) -> bool:
        """Record a real answer from ``ep``; it becomes current. True when that is a change."""
        ep.ok = True
        ep.last_error = None
        ep.failures = 0
        ep.retry_at = 0.0
        ep.latency_ms = round(latency_ms, 3)
        index = self.endpoints.index(ep)
        if index == self._current:
            return False
        self._current = index
        self.failovers += 1
        return True

    def failed(self, ep: EndpointState, error: str) -> bool:
        """Record a failure of ``ep`` and start (or extend) its backoff. True when the node was
        not already known to be failing (so callers log state changes, not every request)."""
        was_ok = ep.ok is not False
        ep.ok = False
        ep.last_error = error
        ep.failures += 1
        backoff = min(self._backoff_max, self._backoff_min * 2 ** min(ep.failures - 1, 16))
        ep.retry_at = self._clock() + backoff
        ep.next_probe = ep.retry_at
        return was_ok

    def hint(self, location: str) -> bool:
        """A standby redirected us to ``location``: try that node first if it is configured
        (an unconfigured target is ignored: the token is never sent to an unlisted host).
        Returns whether the hint was taken."""
        for ep in self.endpoints:
            if same_node(ep.url, location):
                self._hinted = ep.url
                return True
        return False

    # ------------------------------------------------------------------ health probes

    def due_probes(self) -> list[EndpointState]:
        """Nodes whose next ``sys/health`` probe is due (failed ones after their backoff)."""
        now = self._clock()
        return [ep for ep in self.endpoints if ep.next_probe <= now]

    def next_probe_in(self) -> float:
        """Seconds until the next probe is due (0 when one is due now)."""
        now = self._clock()
        return max(0.0, min(ep.next_probe for ep in self.endpoints) - now)

    def probed(
        self,
        ep: EndpointState,
        *,
        status: int | None,
        latency_ms: float,
        error: str | None = None,
    ) -> bool:
        """Record a ``sys/health`` answer (None: no answer). Returns True when the node came
        back (was failing, now serves), so callers can log recoveries once.

        200 is the active node; 429 and 473 are (performance) standbys, which serve through
        forwarding; 503 is sealed, 501 not initialised; anything else counts as failing.
        """
        if status in (200, 429, 473):
            came_back = ep.ok is False
            ep.active = status == 200
            ep.ok = True
            ep.last_error = None
            ep.failures = 0
            ep.retry_at = 0.0
            ep.latency_ms = round(latency_ms, 3)
            ep.next_probe = self._clock() + self._probe_interval
            return came_back
        if status is not None:
            ep.active = False if status in (501, 503) else ep.active
            reason = {503: "sealed", 501: "not initialized"}.get(status, "failing")
            error = f"Vault at {ep.url} is {reason} (sys/health HTTP {status})"
        self.failed(ep, error or f"Vault at {ep.url} did not answer its health probe")
        return False

    def health(self) -> list[EndpointHealth]:
        """Per-node health for readiness JSON and metrics."""
        return [
            EndpointHealth(
                url=ep.url,
                ok=ep.ok,
                last_error=ep.last_error,
                latency_ms=ep.latency_ms,
                active=ep.active,
                current=index == self._current,
            )
            for index, ep in enumerate(self.endpoints)
        ]


def prometheus_lines(endpoints: Sequence[EndpointHealth], failovers: int) -> list[str]:
    """Prometheus text lines for per-node KMS health (readiness code renders these as-is)."""
    lines = [
        "# HELP sealstore_kms_endpoint_up 1 when the KMS node served its last call or probe.",
        "# TYPE sealstore_kms_endpoint_up gauge",
    ]
    for ep in endpoints:
        lines.append(f'sealstore_kms_endpoint_up{{endpoint="{ep.url}"}} {1 if ep.ok else 0}')
    lines += [
        "# HELP sealstore_kms_endpoint_active 1 for the cluster's active node (last probe).",
        "# TYPE sealstore_kms_endpoint_active gauge",
    ]
    for ep in endpoints:
        lines.append(
            f'sealstore_kms_endpoint_active{{endpoint="{ep.url}"}} {1 if ep.active else 0}'
        )
    lines += [
        "# HELP sealstore_kms_endpoint_current 1 for the node KMS calls go to first.",
        "# TYPE sealstore_kms_endpoint_current gauge",
    ]
    for ep in endpoints:
        lines.append(f'sealstore_kms_endpoint_current{{endpoint="{ep.url}"}} {int(ep.current)}')
    lines += [
        "# HELP sealstore_kms_endpoint_latency_ms Latency of the node's last answer.",
        "# TYPE sealstore_kms_endpoint_latency_ms gauge",
    ]
    for ep in endpoints:
        if ep.latency_ms is not None:
            lines.append(
                f'sealstore_kms_endpoint_latency_ms{{endpoint="{ep.url}"}} {ep.latency_ms:.3f}'
            )
    lines += [
        "# HELP sealstore_kms_failovers_total Times KMS calls moved to another node.",
        "# TYPE sealstore_kms_failovers_total counter",
        f"sealstore_kms_failovers_total {failovers}",
    ]
    return lines
