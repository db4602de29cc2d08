"""kms/cache.py around the real master-key KMS: hits, misses, exact keying, TTL, size bound,
wiping, and that failures and status checks always reach the real KMS."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from sealstore.kms.base import KMSDecryptError
from sealstore.kms.cache import CachingKMS
from sealstore.kms.master_key import MasterKeyKMS

MASTER = "cache-key:" + hashlib.sha256(b"cache test").hexdigest()
CTX = {"bucket": "bucket/object"}


class CountingKMS(MasterKeyKMS):
    """The real master-key KMS, counting how often decrypt_key really runs."""

    decrypts = 0

    async def decrypt_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        self.decrypts += 1
        return await super().decrypt_key(key_id, ciphertext, context)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(ttl: float = 30.0, max_entries: int = 100) -> tuple[CachingKMS, CountingKMS, Clock]:
    inner = CountingKMS.from_env_value(MASTER)
    assert isinstance(inner, CountingKMS)
    clock = Clock()
    return CachingKMS(inner, ttl=ttl, max_entries=max_entries, clock=clock), inner, clock


def test_repeat_is_a_hit_and_matches_the_kms() -> None:
    async def main() -> None:
        cache, inner, _ = make()
        dk = await cache.generate_key(cache.default_key_id, CTX)
        first = await cache.decrypt_key(dk.key_id, dk.ciphertext, CTX)
        second = await cache.decrypt_key(dk.key_id, dk.ciphertext, CTX)
        assert first == second == dk.plaintext
        assert (inner.decrypts, cache.hits, cache.misses) == (1, 1, 1)
        assert cache.kind == "master-key" and cache.ready()
        assert (await cache.status()).ok
        assert inner.decrypts == 2  # the self-test went to the real KMS, not the cache

    asyncio.run(main())


def test_other_context_or_ciphertext_is_never_answered_from_the_cache() -> None:
    async def main() -> None:
        cache, inner, _ = make()
        a = await cache.generate_key(cache.default_key_id, CTX)
        b = await cache.generate_key(cache.default_key_id, CTX)
        await cache.decrypt_key(a.key_id, a.ciphertext, CTX)
        assert await cache.decrypt_key(b.key_id, b.ciphertext, CTX) == b.plaintext
        other_ctx = {"bucket": "bucket/other"}
        for _ in range(2):  # failures are not cached: the KMS is asked every time
            with pytest.raises(KMSDecryptError):
                await cache.decrypt_key(a.key_id, a.ciphertext, other_ctx)
        assert inner.decrypts == 4 and cache.hits == 0 and len(cache) == 2

    asyncio.run(main())


def test_entries_expire_after_ttl_and_are_wiped() -> None:
    async def main() -> None:
        cache, inner, clock = make(ttl=10)
        dk = await cache.generate_key(cache.default_key_id, CTX)
        await cache.decrypt_key(dk.key_id, dk.ciphertext, CTX)
        (_, buf) = next(iter(cache._entries.values()))
        clock.now += 9.9
        await cache.decrypt_key(dk.key_id, dk.ciphertext, CTX)
        assert inner.decrypts == 1
        clock.now += 0.2  # 10.1 s after it was stored (a hit does not extend it)
        assert await cache.decrypt_key(dk.key_id, dk.ciphertext, CTX) == dk.plaintext
        assert inner.decrypts == 2
        assert buf == bytearray(32)  # the expired copy was zeroed

    asyncio.run(main())


def test_size_bound_evicts_oldest_and_wipes_it() -> None:
    async def main() -> None:
        cache, inner, _ = make(max_entries=2)
        keys = [await cache.generate_key(cache.default_key_id, CTX) for _ in range(3)]
        await cache.decrypt_key(keys[0].key_id, keys[0].ciphertext, CTX)
        (_, oldest) = next(iter(cache._entries.values()))
        for dk in keys[1:]:
            await cache.decrypt_key(dk.key_id, dk.ciphertext, CTX)
        assert len(cache) == 2 and oldest == bytearray(32)
        await cache.decrypt_key(keys[0].key_id, keys[0].ciphertext, CTX)  # evicted: a miss
        assert inner.decrypts == 4
        held = [buf for _, buf in cache._entries.values()]
        await cache.close()
        assert len(cache) == 0 and all(b == bytearray(32) for b in held)

    asyncio.run(main())


def test_bad_settings_are_refused() -> None:
    inner = MasterKeyKMS.from_env_value(MASTER)
    with pytest.raises(ValueError, match="ttl"):
        CachingKMS(inner, ttl=0)
    with pytest.raises(ValueError, match="max_entries"):
        CachingKMS(inner, ttl=1, max_entries=0)
