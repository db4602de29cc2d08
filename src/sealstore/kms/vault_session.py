"""An authenticated session with a Vault/OpenBao cluster: AppRole login and token lifecycle.

The transit calls need a valid token; this module is the only one that holds it. What it
guarantees, and why:

* the server starts even when Vault is down or sealed: :meth:`VaultSession.start` tries one
  login, then a background task keeps logging in with backoff; calls meanwhile fail fast with
  :class:`KMSUnavailableError` (S3 503);
* the token is renewed at about half its TTL, with jitter and a floor; a refused renewal or a
  token near its maximum TTL leads to a fresh login, not to "permission denied" later;
* one login at a time (a lock), and requests queued behind a failing login share its outcome
  instead of each waiting for their own timeout;
* refused credentials are never retried from request paths for ``retry_max`` seconds: every
  refused AppRole login counts towards Vault's user lockout (default 5 attempts lock the
  role-id for 15 minutes), so only the background task retries them, with backoff;
* the token is cluster-wide, so a leader change needs nothing special here: the transport
  sends renewals and logins to whichever node can serve them.

Tokens, role-ids and secret-ids are never logged or put in exception messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from typing import Any

from sealstore.kms.base import KMSError, KMSLoginError, KMSUnavailableError
from sealstore.kms.vault_endpoints import error_text
from sealstore.kms.vault_transport import VaultTransport

log = logging.getLogger("sealstore.kms.vault")


class VaultSession:
    """Token holder and authenticated ``call`` for :class:`~sealstore.kms.vault.VaultKMS`."""

    def __init__(
        self,
        transport: VaultTransport,
        role_id: str,
        secret_id: str,
        *,
        namespace: str | None,
        approle_mount: str,
        retry_min: float,
        retry_max: float,
        renew_floor: float,
    ) -> None:
        self._transport = transport
        self.namespace = namespace
        self._role_id = role_id
        self._secret_id = secret_id
        self._approle_mount = approle_mount.strip("/")
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._renew_floor = renew_floor
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._token: str | None = None
        self._ttl = 0.0
        self._login_ttl = 0.0
        self._deadline = math.inf
        self._healthy = False
        self.last_error: str | None = None
        self.logins = 0
        self.login_attempts = 0
        self._login_failure: KMSError | None = None
        self._login_refused_at = -math.inf
        self.renewals = 0

    # ------------------------------------------------------------------ lifecycle

    def _ensure_runtime(self) -> None:
        if self._closed:
            raise KMSUnavailableError("Vault KMS client is closed")
        self._transport.session()
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._wake = asyncio.Event()

    async def start(self) -> None:
        """Try to log in once, then keep the token alive in the background. Never raises for
        an unreachable, sealed or misconfigured Vault: :meth:`ready` reports the state."""
        self._ensure_runtime()
        self._transport.start_probes()
        try:
            await self.ensure_token()
        except KMSError as exc:
            log.warning("Vault KMS not ready at start, retrying in background: %s", exc)
        if self._task is None:
            self._task = asyncio.create_task(self._maintain(), name="sealstore-vault-token")

    async def close(self) -> None:
        """Stop the renewal task and close the connection pool."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._transport.close()
        self._token = None

    def ready(self) -> bool:
        """Logged in with an unexpired token and the last Vault call succeeded."""
        if self._closed or self._token is None or not self._healthy:
            return False
        return time.monotonic() < self._deadline

    # ------------------------------------------------------------------ calls

    async def call(
        self, path: str, body: dict[str, Any] | None, token: str | None, method: str = "POST"
    ) -> tuple[int, dict[str, Any]]:
        """Request ``/v1/<path>`` on the cluster; no node able to answer becomes
        :class:`KMSUnavailableError` (after failover, when there are several nodes)."""
        self._ensure_runtime()
        try:
            status, data = await self._transport.request(method, path, body, token)
        except KMSUnavailableError as exc:
            self._healthy = False
            self.last_error = str(exc)
            raise
        if status < 300:
            self._healthy = True
        return status, data

    @staticmethod
    def _errors(data: dict[str, Any]) -> str:
        return error_text(data)

    # ------------------------------------------------------------------ tokens

    async def _login(self) -> None:
        """AppRole login; on success install the token, its TTL and its deadline."""
        self.login_attempts += 1
        self._login_failure = None
        try:
            status, data = await self.call(
                f"auth/{self._approle_mount}/login",
                {"role_id": self._role_id, "secret_id": self._secret_id},
                token=None,
            )
        except KMSError as exc:
            self._login_failure = exc
            raise
        auth = data.get("auth") if status == 200 else None
        if not isinstance(auth, dict) or not auth.get("client_token"):
            failure = KMSLoginError(self._login_refused(status, data))
            self._login_refused_at = time.monotonic()
            self.last_error = str(failure)
            self._healthy = False
            self._login_failure = failure
            raise failure
        ttl = float(auth.get("lease_duration") or 0)
        self._token = str(auth["client_token"])
        self._login_ttl = ttl
        self._set_ttl(ttl)
        self._healthy = True
        self.last_error = None
        self.logins += 1
        log.info(
            "Vault AppRole login succeeded (token ttl %ss, namespace %s)",
            int(ttl),
            self.namespace or "root",
        )

    def _login_refused(self, status: int, data: dict[str, Any]) -> str:
        """Describe a refused AppRole login without ever echoing the role-id or secret-id.

        Vault/OpenBao answer 400 "invalid role or secret ID" for a wrong (or revoked, or
        expired) secret-id and for an unknown role-id alike; that is a credentials problem an
        operator fixes by re-deploying them, so it gets a fixed, recognisable message.
        """
        detail = self._errors(data)
        for secret in (self._role_id, self._secret_id):
            detail = detail.replace(secret, "***")
        if "invalid role" in detail.lower() or "secret id" in detail.lower():
            return f"KMS login failed: invalid role or secret ID (Vault AppRole, HTTP {status})"
        if status == 403:
            # Vault/OpenBao "user lockout" (default: 5 bad logins lock the role-id for 15 min)
            # answers a plain "permission denied", even for a now-valid secret-id.
            return (
                f"KMS login failed: permission denied (Vault AppRole, HTTP 403): {detail}; "
                "after repeated invalid role or secret ID attempts Vault locks the role out "
                "for its user-lockout duration (default 15m); logins are retried meanwhile"
            )
        return f"KMS login failed: Vault AppRole login refused (HTTP {status}): {detail}"

    def _set_ttl(self, ttl: float) -> None:
        self._ttl = ttl
        self._deadline = time.monotonic() + ttl if ttl > 0 else math.inf

    async def ensure_token(self, *, background: bool = False) -> str:
        """Return a usable token, logging in (once, under a lock) when there is none.

        After Vault *refused* our credentials, requests do not try again themselves for
        ``retry_max`` seconds: only the background task retries, with backoff. Every refused
        login counts towards Vault's user lockout (default: 5 attempts lock the role-id out for
        15 minutes, even for a later, valid secret-id), so a burst of requests must not turn
        into a burst of logins.
        """
        self._ensure_runtime()
        token = self._token
        if token is not None and time.monotonic() < self._deadline:
            return token
        failed = self._login_failure
        if (
            not background
            and isinstance(failed, KMSLoginError)
            and time.monotonic() - self._login_refused_at < self._retry_max
        ):
            raise KMSLoginError(str(failed))
        assert self._lock is not None
        attempt = self.login_attempts
        async with self._lock:
            if self._token is not None and time.monotonic() < self._deadline:
                return self._token
            self._raise_if_failed_meanwhile(attempt)
            self._token = None
            await self._login()
            self._kick()
            assert self._token is not None
            return self._token

    def _raise_if_failed_meanwhile(self, attempt: int) -> None:
        """Share the outcome of a login that failed while we waited for the lock.

        Without this, N requests queued behind a hanging Vault would each wait for their own
        login timeout, one after the other.
        """
        failed = self._login_failure
        if self.login_attempts != attempt and failed is not None:
            raise type(failed)(str(failed))

    async def relogin(self, stale: str) -> str:
        """Replace ``stale`` after a 403, unless another task already did."""
        assert self._lock is not None
        attempt = self.login_attempts
        async with self._lock:
            if self._token is not None and self._token != stale:
                return self._token
            self._raise_if_failed_meanwhile(attempt)
            log.warning("Vault rejected the token (403); logging in again")
            self._token = None
            await self._login()
            self._kick()
            assert self._token is not None
            return self._token

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds`` or until the token changes (login elsewhere)."""
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))

    def _renew_delay(self) -> float:
        """About half the TTL, minus up to 20 % jitter, never below the floor (nor past TTL)."""
        half = self._ttl / 2.0
        delay = half * random.uniform(0.8, 1.0)
        return max(min(self._renew_floor, self._ttl * 0.75), delay)

    async def _renew(self, token: str) -> None:
        """renew-self; a refused renewal drops the token so the loop logs in again."""
        try:
            status, data = await self.call("auth/token/renew-self", {}, token=token)
        except KMSUnavailableError as exc:
            log.warning("Vault token renewal failed, will retry: %s", exc)
            if time.monotonic() >= self._deadline and self._token == token:
                self._token = None
            return
        if self._token != token:
            return
        auth = data.get("auth") if status == 200 else None
        ttl = float(auth.get("lease_duration") or 0) if isinstance(auth, dict) else 0.0
        if not isinstance(auth, dict) or ttl <= 0 or not auth.get("renewable", False):
            log.warning(
                "Vault token renewal refused (HTTP %s: %s); logging in again",
                status,
                self._errors(data),
            )
            self._token = None
            return
        self._set_ttl(ttl)
        self.renewals += 1
        log.debug("Vault token renewed (ttl %ss)", int(ttl))
        if ttl < max(2 * self._renew_floor, self._login_ttl / 4):
            # A non-periodic token approaching its max TTL: renewals keep shrinking, so log in
            # again now rather than let it expire under load.
            log.info("Vault token near its maximum TTL (%ss left); logging in again", int(ttl))
            self._token = None

    async def _maintain(self) -> None:
        """Background loop: log in while there is no token, renew at ~TTL/2, probe when down."""
        backoff = self._retry_min
        if isinstance(self._login_failure, KMSLoginError):
            # start() was just refused: asking again at once would spend a second attempt of
            # Vault's lockout allowance on the same credentials
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self._retry_max)
        while not self._closed:
            try:
                if self._token is None or time.monotonic() >= self._deadline:
                    try:
                        await self.ensure_token(background=True)
                        backoff = self._retry_min
                    except KMSError as exc:
                        log.warning("Vault login failed, retrying in %.1fs: %s", backoff, exc)
                        await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                        backoff = min(backoff * 2, self._retry_max)
                    continue
                token = self._token
                delay = self._retry_max if self._ttl <= 0 else self._renew_delay()
                if not self._healthy:
                    delay = min(delay, backoff)
                    backoff = min(backoff * 2, self._retry_max)
                await self._sleep(delay)
                if self._closed or token is None or self._token != token:
                    continue
                if self._ttl > 0 or not self._healthy:
                    await self._renew(token)
                if self._healthy:
                    backoff = self._retry_min
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the renewer alive whatever happens
                log.exception("unexpected error in the Vault token task")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._retry_max)

    async def token_valid(self, token: str) -> bool:
        """After a 403: is the token itself still good (so the policy denied the path)?

        Checking with ``lookup-self`` (allowed by Vault's default policy) avoids logging in again
        for every request that names a key outside the policy, which would churn tokens.
        """
        status, _ = await self.call("auth/token/lookup-self", None, token=token, method="GET")
        return status == 200
