"""HashiCorp Vault / OpenBao transit KMS with AppRole login, namespace, TLS and token renewal.

This reproduces MinIO's native Vault KMS on the wire (transit ``datakey/plaintext/<key>`` to
create data keys, ``decrypt/<key>`` to open them, ``context`` = base64 of the canonical JSON
context, ``X-Vault-Namespace`` on every request including the AppRole login) and fixes what hurt
its users (§7 of the format notes):

* the server starts even when Vault is down or sealed; a background task keeps logging in, and
  every call made meanwhile fails fast with :class:`KMSUnavailableError` (S3 503);
* the token is renewed at about half its TTL, with jitter and a floor, and a failed renewal or a
  revoked token leads to a fresh login instead of "permission denied" forever;
* a 403 on a data call triggers one re-login and retry, covering tokens revoked behind our back;
* every request has timeouts, and one keep-alive connection pool is reused.

Tokens, secret-ids and key material are never logged or put in exception messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import random
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from sealstore.crypto.context import context_encodings, encode_context
from sealstore.kms.base import (
    DataKey,
    KMSAccessDeniedError,
    KMSDecryptError,
    KMSError,
    KMSKeyNotFoundError,
    KMSLoginError,
    KMSStatus,
    KMSUnavailableError,
    self_test,
)
from sealstore.kms.tls import client_ssl_context

log = logging.getLogger("sealstore.kms.vault")

_KEY_NOT_FOUND_MARKERS = ("encryption key not found", "key not found", "no existing key named")


def _validate_key_id(key_id: str) -> None:
    """Reject names that would change the request path (``/``, ``.``, ``..``) or are empty."""
    if not key_id or "/" in key_id or key_id in (".", "..") or not key_id.isprintable():
        raise KMSKeyNotFoundError(f"invalid KMS key name {key_id!r}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "request timed out"
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")


class VaultKMS:
    """KMS talking to Vault/OpenBao transit; see the module docstring for the behaviour."""

    kind = "vault"

    def __init__(
        self,
        endpoint: str,
        role_id: str,
        secret_id: str,
        key_name: str,
        namespace: str | None = None,
        capath: str | None = None,
        *,
        request_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
        renew_floor: float = 1.0,
        approle_mount: str = "approle",
        transit_mount: str = "transit",
    ) -> None:
        """Configure the client; no network I/O happens before :meth:`start`.

        ``capath`` (PEM file or directory) is read here, once, so a bad path fails at start-up
        with a ``ValueError`` naming the path.
        """
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError("Vault endpoint must start with http:// or https://")
        if not role_id or not secret_id:
            raise ValueError("Vault AppRole role-id and secret-id must not be empty")
        _validate_key_id(key_name)
        self.endpoint = endpoint.rstrip("/")
        self.default_key_id = key_name
        self.namespace = namespace.strip("/") if namespace else None
        self._role_id = role_id
        self._secret_id = secret_id
        self._ssl = client_ssl_context(capath) if endpoint.startswith("https://") else None
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout, connect=connect_timeout, sock_connect=connect_timeout
        )
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._renew_floor = renew_floor
        self._approle_mount = approle_mount.strip("/")
        self._transit_mount = transit_mount.strip("/")
        self._session: aiohttp.ClientSession | None = None
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
        self._login_attempts = 0
        self._login_failure: KMSError | None = None
        self._login_refused_at = -math.inf
        self.renewals = 0

    def __repr__(self) -> str:
        """Never include the role-id, secret-id or token."""
        return (
            f"VaultKMS(endpoint={self.endpoint!r}, key={self.default_key_id!r}, "
            f"namespace={self.namespace!r})"
        )

    # ----------------------------------------------------------------------------- lifecycle

    def _ensure_runtime(self) -> aiohttp.ClientSession:
        if self._closed:
            raise KMSUnavailableError("Vault KMS client is closed")
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else False,
                limit=64,
                keepalive_timeout=30.0,
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._wake = asyncio.Event()
        return self._session

    async def start(self) -> None:
        """Try to log in once, then keep the token alive in the background. Never raises for
        an unreachable, sealed or misconfigured Vault: :meth:`ready` reports the state."""
        self._ensure_runtime()
        try:
            await self._ensure_token()
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
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._token = None

    def ready(self) -> bool:
        """Logged in with an unexpired token and the last Vault call succeeded."""
        if self._closed or self._token is None or not self._healthy:
            return False
        return time.monotonic() < self._deadline

    async def status(self) -> KMSStatus:
        """Generate/decrypt/compare self-test against the default key (never raises)."""
        return await self_test(self)

    # ----------------------------------------------------------------------------- HTTP

    async def _call(
        self, path: str, body: dict[str, Any] | None, token: str | None, method: str = "POST"
    ) -> tuple[int, dict[str, Any]]:
        """Request ``/v1/<path>``; network failures become :class:`KMSUnavailableError`."""
        session = self._ensure_runtime()
        headers = {}
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        if token is not None:
            headers["X-Vault-Token"] = token
        url = f"{self.endpoint}/v1/{path}"
        try:
            payload = body if method == "POST" else None
            async with session.request(method, url, json=payload, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._healthy = False
            msg = f"Vault at {self.endpoint} is unreachable: {_describe(exc)}"
            self.last_error = msg
            raise KMSUnavailableError(msg) from None
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if status >= 500 or status == 429:
            self._healthy = False
            reason = "sealed or unavailable" if status == 503 else "failing"
            msg = f"Vault at {self.endpoint} is {reason} (HTTP {status}): {self._errors(data)}"
            self.last_error = msg
            raise KMSUnavailableError(msg)
        if status < 300:
            self._healthy = True
        return status, data

    @staticmethod
    def _errors(data: dict[str, Any]) -> str:
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            text = " ".join("; ".join(str(e) for e in errors).split())
            return text.replace("1 error occurred: * ", "")[:500]
        return "no error detail"

    # ----------------------------------------------------------------------------- tokens

    async def _login(self) -> None:
        """AppRole login; on success install the token, its TTL and its deadline."""
        self._login_attempts += 1
        self._login_failure = None
        try:
            status, data = await self._call(
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

    async def _ensure_token(self, *, background: bool = False) -> str:
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
        attempt = self._login_attempts
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
        if self._login_attempts != attempt and failed is not None:
            raise type(failed)(str(failed))

    async def _relogin(self, stale: str) -> str:
        """Replace ``stale`` after a 403, unless another task already did."""
        assert self._lock is not None
        attempt = self._login_attempts
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
            status, data = await self._call("auth/token/renew-self", {}, token=token)
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
        while not self._closed:
            try:
                if self._token is None or time.monotonic() >= self._deadline:
                    try:
                        await self._ensure_token(background=True)
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

    # ----------------------------------------------------------------------------- transit

    async def _transit(self, op: str, key_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Call ``transit/<op>/<key>``; on 403 log in again once and retry."""
        _validate_key_id(key_id)
        path = f"{self._transit_mount}/{op}/{quote(key_id, safe='')}"
        token = await self._ensure_token()
        status, data = await self._call(path, body, token=token)
        if status == 403 and not await self._token_valid(token):
            token = await self._relogin(token)
            status, data = await self._call(path, body, token=token)
        if status == 403:
            # The token is valid (lookup-self said so, or a fresh login got the same answer),
            # so the policy does not cover this key: a permanent, key-specific denial.
            raise KMSAccessDeniedError(
                f"Vault denied {op} on key {key_id!r} (HTTP 403): {self._errors(data)}; "
                "check the AppRole policy"
            )
        if 200 <= status < 300:
            result = data.get("data")
            if not isinstance(result, dict):
                raise KMSError(f"Vault {op} on key {key_id!r} returned no data")
            return result
        detail = self._errors(data)
        lowered = detail.lower()
        if status == 404 or any(m in lowered for m in _KEY_NOT_FOUND_MARKERS):
            raise KMSKeyNotFoundError(f"KMS key {key_id!r} not found: {detail}")
        if op == "decrypt" and status == 400:
            raise KMSDecryptError(f"Vault cannot decrypt the data key with {key_id!r}: {detail}")
        raise KMSError(f"Vault {op} on key {key_id!r} failed (HTTP {status}): {detail}")

    async def _token_valid(self, token: str) -> bool:
        """After a 403: is the token itself still good (so the policy denied the path)?

        Checking with ``lookup-self`` (allowed by Vault's default policy) avoids logging in again
        for every request that names a key outside the policy, which would churn tokens.
        """
        status, _ = await self._call("auth/token/lookup-self", None, token=token, method="GET")
        return status == 200

    async def generate_key(self, key_id: str, context: dict[str, str]) -> DataKey:
        """New 256-bit data key from ``transit/datakey/plaintext/<key>`` bound to ``context``."""
        ctx = base64.b64encode(encode_context(context)).decode("ascii")
        data = await self._transit("datakey/plaintext", key_id, {"context": ctx})
        try:
            plaintext = base64.b64decode(data["plaintext"], validate=True)
            ciphertext = str(data["ciphertext"]).encode("ascii")
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise KMSError("Vault datakey response is malformed") from None
        if len(plaintext) != 32:
            raise KMSError(f"Vault returned a {len(plaintext) * 8}-bit data key, expected 256")
        return DataKey(key_id=key_id, plaintext=plaintext, ciphertext=ciphertext)

    async def decrypt_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        """Open a data key with ``transit/decrypt/<key>``.

        The escaped context is tried first, then MinIO's 2019 raw encoding (only matters for
        ``derived=true`` keys; Vault ignores the context of non-derived keys, pitfall P5).
        """
        try:
            text = ciphertext.decode("ascii")
        except UnicodeDecodeError:
            raise KMSDecryptError("stored data key is not a Vault ciphertext") from None
        if not text.startswith("vault:v"):
            raise KMSDecryptError("stored data key is not a Vault ciphertext")
        last: KMSDecryptError | None = None
        for ctx_bytes in context_encodings(context):
            ctx = base64.b64encode(ctx_bytes).decode("ascii")
            try:
                data = await self._transit("decrypt", key_id, {"ciphertext": text, "context": ctx})
            except KMSDecryptError as exc:
                last = exc
                continue
            try:
                plain = base64.b64decode(data["plaintext"], validate=True)
            except (KeyError, TypeError, ValueError, binascii.Error):
                raise KMSError("Vault decrypt response is malformed") from None
            if len(plain) != 32:
                raise KMSDecryptError("Vault returned a data key of the wrong size")
            return plain
        assert last is not None
        raise last
