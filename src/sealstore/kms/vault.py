"""HashiCorp Vault / OpenBao transit KMS with AppRole login, namespace, TLS and failover.

This reproduces MinIO's native Vault KMS on the wire (transit ``datakey/plaintext/<key>`` to
create data keys, ``decrypt/<key>`` to open them, ``context`` = base64 of the canonical JSON
context, ``X-Vault-Namespace`` on every request including the AppRole login) and fixes what hurt
its users (§7 of the format notes). The work is split in three layers, one job each:

* ``vault_transport.py``: which node of a cluster answers, timeouts, failover, health probes;
* ``vault_session.py``: AppRole login, renewal at ~TTL/2, re-login, the lockout protection;
* this module: the KMS protocol on top: transit calls, the mapping of Vault answers to the
  KMS error classes (and so to S3 status codes), and a 403 on a data call leading to one
  re-login and retry (tokens revoked behind our back), unless ``lookup-self`` shows the token
  is fine and the policy simply does not cover the key.

Tokens, secret-ids and key material are never logged or put in exception messages.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from sealstore.crypto.kms_context import context_encodings, encode_context
from sealstore.kms.base import (
    DataKey,
    EndpointHealth,
    KeyVersions,
    KMSAccessDeniedError,
    KMSDecryptError,
    KMSError,
    KMSKeyNotFoundError,
    KMSStatus,
    self_test,
)
from sealstore.kms.tls import client_ssl_context
from sealstore.kms.vault_batch import Batcher, Item, ItemFailed, Result
from sealstore.kms.vault_endpoints import error_text, parse_endpoints
from sealstore.kms.vault_session import VaultSession
from sealstore.kms.vault_transport import VaultTransport

log = logging.getLogger("sealstore.kms.vault")

_KEY_NOT_FOUND_MARKERS = ("encryption key not found", "key not found", "no existing key named")


def _validate_key_id(key_id: str) -> None:
    """Reject names that would change the request path (``/``, ``.``, ``..``) or are empty."""
    if not key_id or "/" in key_id or key_id in (".", "..") or not key_id.isprintable():
        raise KMSKeyNotFoundError(f"invalid KMS key name {key_id!r}")


def ciphertext_version(ciphertext: bytes) -> int | None:
    """The key version N of a transit ciphertext ``vault:vN:...`` (None if not one)."""
    prefix, _, rest = ciphertext.partition(b":")
    version, sep, _ = rest.partition(b":")
    if prefix != b"vault" or not sep or not version.startswith(b"v"):
        return None
    digits = version[1:]
    return int(digits) if digits.isdigit() and len(digits) < 10 else None


def _vault_ciphertext(ciphertext: bytes) -> str:
    """The stored data key as transit ciphertext text, or ``KMSDecryptError``."""
    if ciphertext_version(ciphertext) is None:
        raise KMSDecryptError("stored data key is not a Vault ciphertext")
    return ciphertext.decode("ascii")


def split_endpoints(endpoint: str | Sequence[str]) -> list[str]:
    """The node list of ``endpoint`` (one URL, comma-separated URLs, or a list); the same
    rules as ``MINIO_SSE_VAULT_ENDPOINT``. Raises ``ValueError``."""
    try:
        return parse_endpoints(endpoint)
    except ValueError as exc:
        raise ValueError(f"Vault endpoint {exc}") from None


class VaultKMS:
    """KMS talking to Vault/OpenBao transit; see the module docstring for the behaviour."""

    kind = "vault"

    def __init__(
        self,
        endpoint: str | Sequence[str],
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
        failover_timeout: float = 10.0,
        probe_interval: float = 5.0,
        request_forwarding: bool = True,
        approle_mount: str = "approle",
        transit_mount: str = "transit",
        max_batch: int = 128,
    ) -> None:
        """Configure the client; no network I/O happens before :meth:`start`.

        ``endpoint`` is one URL, several comma-separated, or a list (a cluster's nodes, tried
        in this order first). ``failover_timeout`` bounds one call across all nodes (unused
        with a single endpoint). ``request_forwarding=False`` asks standbys to redirect to the
        active node instead of forwarding (the transport follows only to listed nodes).
        ``max_batch`` caps how many concurrent requests share one transit call
        (``vault_batch``); 1 turns coalescing off.
        ``capath`` (PEM file or directory) is read here, once, so a bad path fails at start-up
        with a ``ValueError`` naming the path.
        """
        urls = split_endpoints(endpoint)
        if not role_id or not secret_id:
            raise ValueError("Vault AppRole role-id and secret-id must not be empty")
        _validate_key_id(key_name)
        self.endpoints = urls
        self.endpoint = ",".join(urls)
        self.default_key_id = key_name
        self.namespace = namespace.strip("/") if namespace else None
        self._transit_mount = transit_mount.strip("/")
        tls = urls[0].startswith("https://")
        self._transport = VaultTransport(
            urls,
            ssl_context=client_ssl_context(capath) if tls else None,
            namespace=self.namespace,
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            failover_timeout=failover_timeout,
            probe_interval=probe_interval,
            request_forwarding=request_forwarding,
        )
        self._session = VaultSession(
            self._transport,
            role_id,
            secret_id,
            namespace=self.namespace,
            approle_mount=approle_mount,
            retry_min=retry_min,
            retry_max=retry_max,
            renew_floor=renew_floor,
        )
        self._max_batch = max_batch
        self._batchers: dict[tuple[str, str], Batcher] = {}
        self._datakey_only: set[str] = set()

    def __repr__(self) -> str:
        """Never include the role-id, secret-id or token."""
        return (
            f"VaultKMS(endpoint={self.endpoint!r}, key={self.default_key_id!r}, "
            f"namespace={self.namespace!r})"
        )

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Log in once and keep the token alive in the background; never raises for a down,
        sealed or misconfigured Vault (:meth:`ready` reports the state)."""
        await self._session.start()

    async def close(self) -> None:
        """Stop the background tasks and close the connection pool."""
        for batcher in self._batchers.values():
            await batcher.close()
        await self._session.close()

    @property
    def batch_counts(self) -> dict[str, tuple[int, int]]:
        """Per transit operation: (calls sent, items they carried), summed over keys."""
        counts: dict[str, tuple[int, int]] = {}
        for (op, _key), batcher in self._batchers.items():
            calls, items = counts.get(op, (0, 0))
            counts[op] = (calls + batcher.calls, items + batcher.items)
        return counts

    def ready(self) -> bool:
        """Logged in with an unexpired token and the last Vault call succeeded."""
        return self._session.ready()

    async def status(self) -> KMSStatus:
        """Generate/decrypt/compare self-test against the default key (never raises), with
        what the client knows of every node."""
        status = await self_test(self)
        status.endpoints = self.endpoint_health()
        status.failovers = self.failovers
        return status

    def endpoint_health(self) -> list[EndpointHealth]:
        """Live per-node health (no I/O), for readiness JSON and metrics."""
        return self._transport.health()

    @property
    def failovers(self) -> int:
        """How often calls moved to another node since start."""
        return self._transport.failovers

    @property
    def last_error(self) -> str | None:
        """The last failure (never a secret), None after a success."""
        return self._session.last_error

    @property
    def logins(self) -> int:
        return self._session.logins

    @property
    def renewals(self) -> int:
        return self._session.renewals

    @property
    def _login_attempts(self) -> int:
        # read by the lockout-protection test: requests must never add login attempts
        return self._session.login_attempts

    # ----------------------------------------------------------------------------- transit

    async def _transit(
        self, op: str, key_id: str, body: dict[str, Any] | None, method: str = "POST"
    ) -> dict[str, Any]:
        """Call ``transit/<op>/<key>``; on 403 log in again once and retry.

        A ``batch_input`` call whose items failed answers 400 *with* ``batch_results`` (one
        entry per item, failed ones carrying ``error``): that is returned like a success, so
        each item's outcome reaches its own request."""
        _validate_key_id(key_id)
        path = f"{self._transit_mount}/{op}/{quote(key_id, safe='')}"
        session = self._session
        token = await session.ensure_token()
        status, data = await session.call(path, body, token=token, method=method)
        if status == 403 and not await session.token_valid(token):
            token = await session.relogin(token)
            status, data = await session.call(path, body, token=token, method=method)
        if status == 403:
            # The token is valid (lookup-self said so, or a fresh login got the same answer),
            # so the policy does not cover this key: a permanent, key-specific denial.
            raise KMSAccessDeniedError(
                f"Vault denied {op} on key {key_id!r} (HTTP 403): {error_text(data)}; "
                "check the AppRole policy"
            )
        batch_answer = status == 400 and isinstance(
            (data.get("data") or {}).get("batch_results"), list
        )
        if 200 <= status < 300 or batch_answer:
            result = data.get("data")
            if not isinstance(result, dict):
                raise KMSError(f"Vault {op} on key {key_id!r} returned no data")
            return result
        detail = error_text(data)
        lowered = detail.lower()
        if status == 404 or any(m in lowered for m in _KEY_NOT_FOUND_MARKERS):
            raise KMSKeyNotFoundError(f"KMS key {key_id!r} not found: {detail}")
        if op in ("decrypt", "rewrap") and status == 400:
            raise KMSDecryptError(f"Vault cannot decrypt the data key with {key_id!r}: {detail}")
        raise KMSError(f"Vault {op} on key {key_id!r} failed (HTTP {status}): {detail}")

    async def generate_key(self, key_id: str, context: dict[str, str]) -> DataKey:
        """New 256-bit data key bound to ``context``, sealed by transit.

        The key comes from the OS CSPRNG and is sealed with ``transit/encrypt/<key>``: the
        same ``vault:v<n>:`` ciphertext ``datakey/plaintext`` returns (so MinIO and older
        sealstore read it), but concurrent PUTs share one batched call. A policy without
        ``encrypt`` (MinIO's quickstart grants it; the vault_kms role does too) falls back to
        one ``datakey/plaintext`` call per object, with one warning.
        """
        ctx = base64.b64encode(encode_context(context)).decode("ascii")
        if key_id not in self._datakey_only:
            plaintext = os.urandom(32)
            item = {"plaintext": base64.b64encode(plaintext).decode("ascii"), "context": ctx}
            try:
                result = await self._item("encrypt", key_id, item)
            except KMSAccessDeniedError:
                log.warning(
                    "Vault policy denies transit/encrypt on key %r: creating data keys with "
                    "datakey/plaintext, one call per object (grant encrypt to batch them)",
                    key_id,
                )
                self._datakey_only.add(key_id)
            else:
                ciphertext = str(result.get("ciphertext", ""))
                if ciphertext_version(ciphertext.encode()) is None:
                    raise KMSError("Vault encrypt response is malformed")
                return DataKey(key_id=key_id, plaintext=plaintext, ciphertext=ciphertext.encode())
        data = await self._transit("datakey/plaintext", key_id, {"context": ctx})
        try:
            plaintext = base64.b64decode(data["plaintext"], validate=True)
            ciphertext_bytes = str(data["ciphertext"]).encode("ascii")
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise KMSError("Vault datakey response is malformed") from None
        if len(plaintext) != 32:
            raise KMSError(f"Vault returned a {len(plaintext) * 8}-bit data key, expected 256")
        return DataKey(key_id=key_id, plaintext=plaintext, ciphertext=ciphertext_bytes)

    async def key_versions(self, key_id: str) -> KeyVersions:
        """The key's newest and lowest decryptable version (``GET transit/keys/<key>``: names
        and version numbers only, no key material). Admin tools need ``read`` on that path."""
        data = await self._transit("keys", key_id, None, method="GET")
        try:
            return KeyVersions(
                latest=int(data["latest_version"]),
                min_decryption=int(data["min_decryption_version"]),
            )
        except (KeyError, TypeError, ValueError):
            raise KMSError("Vault key description is malformed") from None

    async def rewrap_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        """Re-encrypt a sealed data key under the newest version of ``key_id`` with transit
        ``rewrap/<key>``: the data key never leaves Vault, so the object key sealed with it
        (and the object data) stay valid; only the stored KMS ciphertext changes.

        The context is sent as for ``decrypt`` (needed by ``derived=true`` keys), the escaped
        encoding first, then MinIO's 2019 one. Raises ``KMSDecryptError`` for a ciphertext
        the key cannot open, ``KMSAccessDeniedError`` when the policy lacks ``rewrap``.
        """
        data = await self._with_context("rewrap", key_id, ciphertext, context)
        fresh = data.get("ciphertext")
        if not isinstance(fresh, str) or ciphertext_version(fresh.encode()) is None:
            raise KMSError("Vault rewrap response is malformed")
        return fresh.encode("ascii")

    async def decrypt_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        """Open a data key with ``transit/decrypt/<key>``.

        The escaped context is tried first, then MinIO's 2019 raw encoding (only matters for
        ``derived=true`` keys; Vault ignores the context of non-derived keys, pitfall P5).
        """
        data = await self._with_context("decrypt", key_id, ciphertext, context)
        try:
            plain = base64.b64decode(data["plaintext"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise KMSError("Vault decrypt response is malformed") from None
        if len(plain) != 32:
            raise KMSDecryptError("Vault returned a data key of the wrong size")
        return plain

    async def _with_context(
        self, op: str, key_id: str, ciphertext: bytes, context: dict[str, str]
    ) -> dict[str, Any]:
        """``transit/<op>/<key>`` for a sealed data key, trying each context encoding in turn
        (escaped first, then MinIO's 2019 raw one): the first that opens it answers."""
        text = _vault_ciphertext(ciphertext)
        last: KMSDecryptError | None = None
        for ctx_bytes in context_encodings(context):
            ctx = base64.b64encode(ctx_bytes).decode("ascii")
            try:
                return await self._item(op, key_id, {"ciphertext": text, "context": ctx})
            except KMSDecryptError as exc:
                last = exc
        assert last is not None
        raise last

    async def _item(self, op: str, key_id: str, item: Item) -> Result:
        """One item of a (possibly shared) ``batch_input`` call to ``transit/<op>/<key>``."""
        _validate_key_id(key_id)
        batcher = self._batchers.get((op, key_id))
        if batcher is None:

            async def send(items: list[Item]) -> list[Result]:
                data = await self._transit(op, key_id, {"batch_input": items})
                results = data.get("batch_results")
                if not isinstance(results, list) or len(results) != len(items):
                    raise KMSError(f"Vault {op} on key {key_id!r} returned a malformed batch")
                return results

            batcher = self._batchers[(op, key_id)] = Batcher(send, max_batch=self._max_batch)
        try:
            return await batcher.submit(item)
        except ItemFailed as exc:
            if op in ("decrypt", "rewrap"):
                raise KMSDecryptError(
                    f"Vault cannot decrypt the data key with {key_id!r}: {exc}"
                ) from None
            raise KMSError(f"Vault {op} on key {key_id!r} failed: {exc}") from None
