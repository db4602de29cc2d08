"""The KMS contract shared by every back-end, its error classes and the status self-test.

The server only ever talks to this protocol, so the error classes are what decide the S3 answer:
unavailable (including refused login credentials) -> 503 (retry later, nothing written), unknown
key -> 400, decrypt failure or a policy that denies the key -> 403, anything else -> 500.
Keeping that mapping here, not in each back-end, keeps it consistent.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

STATUS_CONTEXT = {"MinIO admin API": "KMSKeyStatusHandler"}


@dataclass(frozen=True)
class DataKey:
    """A fresh data encryption key and its KMS-sealed form (stored in object metadata)."""

    key_id: str
    plaintext: bytes = field(repr=False)
    ciphertext: bytes


@dataclass
class EndpointHealth:
    """What the client last saw of one KMS node (Vault/OpenBao cluster member).

    ``active`` is True for the cluster's active node, False for a standby, None when unknown;
    ``current`` marks the node the client sends its calls to (the one that answered last).
    """

    url: str
    ok: bool | None
    last_error: str | None = None
    latency_ms: float | None = None
    active: bool | None = None
    current: bool = False


@dataclass
class KMSStatus:
    """Outcome of the generate/decrypt/compare self-test; ``error`` never contains secrets.

    ``endpoints`` and ``failovers`` are filled by back-ends with several nodes (Vault); one
    entry per configured node, so readiness and metrics show a degraded cluster before it
    becomes an outage.
    """

    kind: str
    key_id: str
    ok: bool
    latency_ms: float
    error: str | None = None
    endpoints: list[EndpointHealth] = field(default_factory=list)
    failovers: int = 0


class KMSError(Exception):
    """Generic KMS failure (S3: 500 with the KMS message)."""


class KMSRewrapUnsupportedError(KMSError):
    """The KMS has no key versions, so there is nothing to re-wrap (the static master key)."""


@dataclass(frozen=True)
class KeyVersions:
    """What a versioned KMS key (Vault/OpenBao transit) says about its versions."""

    latest: int
    min_decryption: int


class KMSUnavailableError(KMSError):
    """KMS unreachable, timed out, sealed or answering 5xx (S3: 503 ServiceUnavailable)."""


class KMSLoginError(KMSUnavailableError):
    """The KMS refused our credentials (e.g. AppRole "invalid role or secret ID").

    Still "unavailable" (S3: 503 ServiceUnavailable, readiness fails): the server keeps trying
    to log in, so re-deploying a valid secret-id heals it without a restart. The message says
    it is a credentials problem and never contains the ids.
    """


class KMSAccessDeniedError(KMSError):
    """The KMS policy does not allow this operation on this key, while our token is valid
    (S3: 403 AccessDenied naming the key). Not retried: only a policy change fixes it."""


class KMSKeyNotFoundError(KMSError):
    """The named master key does not exist (S3: 400 KMS.NotFoundException)."""


class KMSDecryptError(KMSError):
    """The ciphertext does not decrypt under this key and context (S3: 403 AccessDenied)."""


@runtime_checkable
class KMS(Protocol):
    """What the server needs from a key management system."""

    kind: str
    default_key_id: str

    async def start(self) -> None:
        """Begin operating; never raises just because the KMS is down (it heals later)."""
        ...

    async def close(self) -> None:
        """Stop background work and release connections."""
        ...

    async def generate_key(self, key_id: str, context: dict[str, str]) -> DataKey:
        """Return a new 32-byte data key bound to ``context``."""
        ...

    async def decrypt_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        """Recover the data key sealed in ``ciphertext`` under ``key_id`` and ``context``."""
        ...

    async def status(self) -> KMSStatus:
        """Self-test: generate, decrypt, compare. Never raises."""
        ...

    def ready(self) -> bool:
        """Whether the KMS is usable right now (readiness probe)."""
        ...


@runtime_checkable
class RewrappingKMS(Protocol):
    """The optional capability of a versioned KMS that `sealstore admin rewrap` needs."""

    kind: str
    default_key_id: str

    async def key_versions(self, key_id: str) -> KeyVersions:
        """Newest and lowest decryptable version of ``key_id``."""
        ...

    async def rewrap_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        """``ciphertext`` re-encrypted to the newest version (the data key never leaves)."""
        ...


async def self_test(kms: KMS, key_id: str | None = None) -> KMSStatus:
    """Run MinIO's key-status check: generate a key, decrypt it, compare in constant time.

    This exercises the exact calls an SSE PUT and GET make, so it proves connectivity,
    authentication, policy and key existence at once. It never raises: every failure becomes
    ``ok=False`` with the error text (which back-ends keep free of secrets).
    """
    kid = key_id or kms.default_key_id
    start = time.perf_counter()
    error: str | None = None
    try:
        dk = await kms.generate_key(kid, dict(STATUS_CONTEXT))
        plain = await kms.decrypt_key(dk.key_id, dk.ciphertext, dict(STATUS_CONTEXT))
        if not hmac.compare_digest(plain, dk.plaintext):
            error = "decryption error: decrypted key does not match the generated key"
    except KMSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # the self-test must report, never crash the caller
        error = f"unexpected {type(exc).__name__}: {exc}"
    latency = (time.perf_counter() - start) * 1000.0
    return KMSStatus(kind=kms.kind, key_id=kid, ok=error is None, latency_ms=latency, error=error)
