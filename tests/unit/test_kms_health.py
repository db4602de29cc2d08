"""kms/health.py and kms/factory.build_server_kms with real KMSes (the master-key KMS, and a
Vault KMS pointed at a closed loopback port for a real outage): every generate/decrypt outcome
is counted, an outage drops readiness at once while other errors do not, cache hits count as
decrypts (as the request path always counted them), and the self-test and its monitor keep
the readiness verdict."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket

import pytest

from sealstore.config import Settings
from sealstore.kms.base import KMSDecryptError, KMSUnavailableError
from sealstore.kms.cache import CachingKMS
from sealstore.kms.factory import build_server_kms
from sealstore.kms.health import (
    KMSHealth,
    ObservedKMS,
    run_self_test,
    start_monitor,
    stop_monitor,
)
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.kms.vault import VaultKMS

MASTER = "health-key:" + hashlib.sha256(b"health test").hexdigest()
BASE = {"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "s3cr3t-password"}
CTX = {"bucket": "bucket/object"}
LOG = logging.getLogger("sealstore")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_vault() -> VaultKMS:
    return VaultKMS(f"http://127.0.0.1:{closed_port()}", "role", "secret", "my-key")


def counts(health: KMSHealth) -> dict[tuple[str, str], int]:
    return dict(health.call_counts())


def test_successful_calls_are_counted_ok() -> None:
    async def main() -> None:
        health = KMSHealth(ok=True)
        kms = ObservedKMS(MasterKeyKMS.from_env_value(MASTER), health)
        dk = await kms.generate_key(kms.default_key_id, CTX)
        assert await kms.decrypt_key(dk.key_id, dk.ciphertext, CTX) == dk.plaintext
        assert counts(health) == {("generate", "ok"): 1, ("decrypt", "ok"): 1}
        assert health.ok

    asyncio.run(main())


def test_a_decrypt_failure_counts_an_error_but_keeps_readiness() -> None:
    async def main() -> None:
        health = KMSHealth(ok=True, detail={"kind": "master-key", "ok": True})
        kms = ObservedKMS(MasterKeyKMS.from_env_value(MASTER), health)
        dk = await kms.generate_key(kms.default_key_id, CTX)
        with pytest.raises(KMSDecryptError):
            await kms.decrypt_key(dk.key_id, dk.ciphertext, {"bucket": "other/object"})
        assert counts(health) == {("generate", "ok"): 1, ("decrypt", "error"): 1}
        assert health.ok and health.detail == {"kind": "master-key", "ok": True}

    asyncio.run(main())


def test_an_outage_counts_an_error_and_drops_readiness_at_once() -> None:
    async def main() -> None:
        health = KMSHealth(ok=True, detail={"kind": "vault", "key_id": "my-key", "ok": True})
        kms = ObservedKMS(unreachable_vault(), health)
        try:
            with pytest.raises(KMSUnavailableError):
                await kms.generate_key("my-key", CTX)
            with pytest.raises(KMSUnavailableError) as info:
                await kms.decrypt_key("my-key", b"vault:v1:AAAA", CTX)
        finally:
            await kms.close()
        assert counts(health) == {("generate", "error"): 1, ("decrypt", "error"): 1}
        assert health.ok is False
        # The other detail fields stay; the error is the KMS's own message.
        assert health.detail["kind"] == "vault" and health.detail["ok"] is False
        assert health.detail["error"] == str(info.value) != ""

    asyncio.run(main())


def test_mark_failed_keeps_the_last_detail() -> None:
    health = KMSHealth(ok=True, detail={"kind": "vault", "latency_ms": 3.0, "ok": True})
    health.mark_failed("connection refused")
    assert health.ok is False
    assert health.detail == {
        "kind": "vault",
        "latency_ms": 3.0,
        "ok": False,
        "error": "connection refused",
    }


def test_backend_extras_stay_visible_through_the_wrapper() -> None:
    inner = CachingKMS(MasterKeyKMS.from_env_value(MASTER), ttl=30)
    kms = ObservedKMS(inner, KMSHealth())
    assert (kms.kind, kms.default_key_id) == ("master-key", "health-key")
    assert kms.hits == 0 and kms.inner is inner
    assert "ObservedKMS(CachingKMS(" in repr(kms)


# ----------------------------------------------------------------------------- factory


def test_factory_without_kms_is_none() -> None:
    assert build_server_kms(Settings.from_env(BASE), KMSHealth()) is None


def test_factory_observes_the_backend_without_cache() -> None:
    settings = Settings.from_env({**BASE, "MINIO_SSE_MASTER_KEY": MASTER})
    kms = build_server_kms(settings, KMSHealth())
    assert isinstance(kms, ObservedKMS) and isinstance(kms.inner, MasterKeyKMS)


def test_factory_puts_the_observer_outside_the_cache_so_hits_count(caplog) -> None:
    async def main() -> None:
        env = {**BASE, "MINIO_SSE_MASTER_KEY": MASTER, "SEALSTORE_KMS_CACHE_TTL": "30"}
        health = KMSHealth()
        with caplog.at_level(logging.INFO, logger="sealstore"):
            kms = build_server_kms(Settings.from_env(env), health)
        assert isinstance(kms, ObservedKMS) and isinstance(kms.inner, CachingKMS)
        assert any(r.getMessage().startswith("KMS data-key cache on") for r in caplog.records)
        dk = await kms.generate_key(kms.default_key_id, CTX)
        for _ in range(3):
            assert await kms.decrypt_key(dk.key_id, dk.ciphertext, CTX) == dk.plaintext
        assert (kms.inner.misses, kms.inner.hits) == (1, 2)
        assert counts(health) == {("generate", "ok"): 1, ("decrypt", "ok"): 3}

    asyncio.run(main())


# ----------------------------------------------------------------------------- self-test


def test_self_test_pass_sets_readiness_and_counts_status() -> None:
    async def main() -> None:
        health = KMSHealth()
        kms = ObservedKMS(MasterKeyKMS.from_env_value(MASTER), health)
        assert await run_self_test(kms, health, LOG) is True
        assert health.ok and health.checked_at > 0
        assert health.detail["kind"] == "master-key" and health.detail["ok"] is True
        assert health.detail["key_id"] == "health-key" and health.detail["error"] is None
        # Only the self-test's own outcome: its inner generate/decrypt are not request calls.
        assert counts(health) == {("status", "ok"): 1}

    asyncio.run(main())


def test_self_test_failure_is_logged_and_not_ready(caplog) -> None:
    async def main() -> None:
        health = KMSHealth(ok=True)
        kms = ObservedKMS(unreachable_vault(), health)
        try:
            with caplog.at_level(logging.INFO, logger="sealstore"):
                assert await run_self_test(kms, health, LOG) is False
        finally:
            await kms.close()
        assert health.ok is False and health.detail["kind"] == "vault"
        assert "KMSUnavailableError" in str(health.detail["error"])
        assert counts(health) == {("status", "error"): 1}
        warned = [r for r in caplog.records if r.getMessage() == "kms self-test failed"]
        assert warned and warned[0].levelno == logging.WARNING

    asyncio.run(main())


def test_self_test_without_kms_is_ready() -> None:
    async def main() -> None:
        health = KMSHealth()
        assert await run_self_test(None, health, LOG) is True
        assert health.ok and health.detail == {} and not health.call_counts()

    asyncio.run(main())


def test_monitor_tests_at_once_and_stops_cleanly() -> None:
    async def main() -> None:
        health = KMSHealth()
        kms = ObservedKMS(MasterKeyKMS.from_env_value(MASTER), health)
        task = start_monitor(kms, health, LOG)
        for _ in range(200):
            if health.ok:
                break
            await asyncio.sleep(0.01)
        assert health.ok and task.get_name() == "kms-monitor" and not task.done()
        await stop_monitor(task)
        assert task.cancelled()
        await stop_monitor(None)  # no monitor: nothing to do

    asyncio.run(main())


def test_monitor_without_kms_ends_after_one_pass() -> None:
    async def main() -> None:
        health = KMSHealth()
        task = start_monitor(None, health, LOG)
        await asyncio.wait_for(task, 5)
        assert health.ok

    asyncio.run(main())
