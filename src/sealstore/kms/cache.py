"""Optional, bounded cache of *decrypted* data keys in front of any KMS (pitfall P11).

Every GET of an SSE object costs one KMS ``decrypt`` round trip. Objects written together
often share nothing, but the same object read many times asks the KMS the same question
again and again; a short-lived cache answers those repeats locally. It is OFF by default
because it changes the security trade-off: plaintext data keys stay in this process's memory
for up to the TTL, and while the KMS is down a GET of a recently read object still succeeds
(a revoked key or policy also takes up to the TTL to bite).

Only ``decrypt_key`` is cached; generating keys, the status self-test and readiness always go
to the real KMS. An entry is keyed by the key id, the SHA-256 of the KMS ciphertext and the
exact encoded context, so a different context or ciphertext is never answered from the
cache. Entries live at most ``ttl`` seconds and at most ``max_entries`` are kept; evicted
entries are overwritten with zeros (bytearrays), as far as Python lets us: the ``bytes``
copies handed to callers are theirs to drop.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from sealstore.crypto.kms_context import encode_context
from sealstore.kms.base import KMS, DataKey, KMSStatus

DEFAULT_MAX_ENTRIES = 4096

_CacheKey = tuple[str, bytes, bytes]


def _wipe(buf: bytearray) -> None:
    """Overwrite a cached key in place before dropping it."""
    buf[:] = bytes(len(buf))


class CachingKMS:
    """A KMS that answers repeated ``decrypt_key`` calls from a TTL- and size-bounded cache.

    Entries expire ``ttl`` seconds after they were stored (a hit does not extend them), so
    the insertion order is also the expiry order and the oldest entry is both the next to
    expire and the one evicted when the cache is full.
    """

    def __init__(
        self,
        inner: KMS,
        *,
        ttl: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError("cache ttl must be positive (leave the cache off instead)")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.inner = inner
        self.kind = inner.kind
        self.default_key_id = inner.default_key_id
        self.ttl = float(ttl)
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[_CacheKey, tuple[float, bytearray]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    # The KMS protocol, delegated -------------------------------------------------------

    def __repr__(self) -> str:
        return f"CachingKMS({self.inner!r}, ttl={self.ttl}, max_entries={self.max_entries})"

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        """Close the inner KMS and wipe every cached key."""
        self.clear()
        await self.inner.close()

    async def generate_key(self, key_id: str, context: dict[str, str]) -> DataKey:
        return await self.inner.generate_key(key_id, context)

    async def status(self) -> KMSStatus:
        """Always the real KMS: readiness must not be faked by cached keys."""
        return await self.inner.status()

    def ready(self) -> bool:
        return self.inner.ready()

    def __getattr__(self, name: str) -> object:
        # Back-end extras (VaultKMS.last_error, logins, renewals) stay visible for status
        # pages and metrics.
        if name == "inner":  # not set yet (failed __init__): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    # The cache -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Wipe and drop every entry."""
        while self._entries:
            _, (_, buf) = self._entries.popitem(last=False)
            _wipe(buf)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (expires, buf) = next(iter(entries.items()))
            if expires > now:
                return
            del entries[key]
            _wipe(buf)

    async def decrypt_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        """The cached data key for exactly this (key id, ciphertext, context), else the KMS's.

        Failures are never cached: a KMS error reaches the caller every time.
        """
        cache_key = (key_id, hashlib.sha256(ciphertext).digest(), encode_context(context))
        now = self._clock()
        self._expire(now)
        entry = self._entries.get(cache_key)
        if entry is not None:
            self.hits += 1
            return bytes(entry[1])
        self.misses += 1
        plain = await self.inner.decrypt_key(key_id, ciphertext, context)
        now = self._clock()
        old = self._entries.pop(cache_key, None)  # a concurrent miss stored it meanwhile
        if old is not None:
            _wipe(old[1])
        self._entries[cache_key] = (now + self.ttl, bytearray(plain))
        while len(self._entries) > self.max_entries:
            _, (_, buf) = self._entries.popitem(last=False)
            _wipe(buf)
        return plain
