"""VaultKMS against real OpenBao: transit round trips, namespaces, TLS, faults, token lifecycle."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable

import pytest

from sealstore.kms.base import (
    KMSAccessDeniedError,
    KMSDecryptError,
    KMSError,
    KMSLoginError,
    KMSUnavailableError,
)
from sealstore.kms.vault import VaultKMS
from tests.integration.openbao import AppRoleCreds, OpenBao

CTX = {"bucket": "bucket/object"}
TOKEN_RE = re.compile(r"\b(?:hvs|s|b)\.[A-Za-z0-9_-]{16,}")


def run(coro):
    return asyncio.run(coro)


def _accessors_for_role(server: OpenBao, role: str, namespace: str | None = None) -> set[str]:
    """Live token accessors issued to AppRole ``role`` (the root token's view of the server)."""
    listed = server.api("LIST", "auth/token/accessors", namespace=namespace)
    found = set()
    for accessor in listed["data"]["keys"]:
        info = server.api(
            "POST", "auth/token/lookup-accessor", {"accessor": accessor}, namespace=namespace
        )["data"]
        if (info.get("meta") or {}).get("role_name") == role:
            found.add(accessor)
    return found


def test_generate_decrypt_round_trip(vault_creds: AppRoleCreds) -> None:
    async def main() -> None:
        kms = VaultKMS(**vault_creds.kms_kwargs())
        await kms.start()
        try:
            assert kms.ready()
            dk = await kms.generate_key("my-minio-key", CTX)
            assert len(dk.plaintext) == 32 and dk.key_id == "my-minio-key"
            assert dk.ciphertext.startswith(b"vault:v1:")
            assert await kms.decrypt_key("my-minio-key", dk.ciphertext, CTX) == dk.plaintext
            other = await kms.generate_key("my-minio-key", CTX)
            assert other.plaintext != dk.plaintext
            st = await kms.status()
            assert st.ok and st.kind == "vault" and st.key_id == "my-minio-key"
            assert st.error is None and st.latency_ms > 0
        finally:
            await kms.close()
        assert not kms.ready()

    run(main())


def test_context_ignored_by_non_derived_key_but_enforced_by_derived(
    openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    """Pitfall P5: the quickstart's key is not derived, so Vault ignores the context; the real
    binding is sealstore's KEK HMAC. A ``derived=true`` key enforces it."""
    plain = approle()
    openbao.api("POST", "transit/keys/derived-key", {"derived": True})
    derived = approle(key="derived-key")

    async def main() -> None:
        kms = VaultKMS(**plain.kms_kwargs())
        dkms = VaultKMS(**derived.kms_kwargs())
        await kms.start()
        await dkms.start()
        try:
            dk = await kms.generate_key("my-minio-key", CTX)
            other_ctx = {"bucket": "bucket/other"}
            assert await kms.decrypt_key("my-minio-key", dk.ciphertext, other_ctx) == dk.plaintext
            ddk = await dkms.generate_key("derived-key", CTX)
            assert await dkms.decrypt_key("derived-key", ddk.ciphertext, CTX) == ddk.plaintext
            with pytest.raises(KMSDecryptError):
                await dkms.decrypt_key("derived-key", ddk.ciphertext, other_ctx)
        finally:
            await kms.close()
            await dkms.close()

    run(main())


def test_derived_key_legacy_context_fallback(
    openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    """A DEK created by 2019 MinIO with the raw context still opens (derived key, odd name)."""
    import base64

    from sealstore.crypto.kms_context import encode_context_legacy

    openbao.api("POST", "transit/keys/derived-key", {"derived": True})
    creds = approle(key="derived-key")
    ctx = {"bucket": 'bucket/a<b>&"c'}
    legacy = base64.b64encode(encode_context_legacy(ctx)).decode()
    made = openbao.api("POST", "transit/datakey/plaintext/derived-key", {"context": legacy})["data"]

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs())
        await kms.start()
        try:
            got = await kms.decrypt_key("derived-key", made["ciphertext"].encode(), ctx)
            assert got == base64.b64decode(made["plaintext"])
        finally:
            await kms.close()

    run(main())


def test_namespace_key_only_inside_ns1(
    openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    ns_creds = approle(namespace="ns1", key="ns-only-key")
    # the key exists only in ns1; the root namespace has no such key
    assert openbao.api("GET", "transit/keys/ns-only-key", namespace="ns1")["data"]
    assert openbao.api("GET", "transit/keys/ns-only-key", ok=(404,)) == {"errors": []}

    async def main() -> None:
        kms = VaultKMS(**ns_creds.kms_kwargs())
        await kms.start()
        try:
            assert kms.ready()
            dk = await kms.generate_key("ns-only-key", CTX)
            assert await kms.decrypt_key("ns-only-key", dk.ciphertext, CTX) == dk.plaintext
        finally:
            await kms.close()
        # same credentials without the namespace: the AppRole login itself fails, which shows
        # the header must (and does) go on the login request too
        no_ns = VaultKMS(**{**ns_creds.kms_kwargs(), "namespace": None}, retry_min=5)
        await no_ns.start()
        try:
            assert not no_ns.ready()
            with pytest.raises(KMSError, match="login failed"):
                await no_ns.generate_key("ns-only-key", CTX)
        finally:
            await no_ns.close()

    run(main())


@pytest.mark.parametrize("which", ["file", "dir"])
def test_tls_with_ca_file_and_ca_dir(
    openbao_tls: OpenBao, vault_creds_tls: AppRoleCreds, which: str
) -> None:
    capath = openbao_tls.ca_file if which == "file" else openbao_tls.ca_dir
    assert capath is not None and vault_creds_tls.endpoint.startswith("https://")

    async def main() -> None:
        kms = VaultKMS(**{**vault_creds_tls.kms_kwargs(), "capath": str(capath)})
        await kms.start()
        try:
            assert kms.ready()
            st = await kms.status()
            assert st.ok, st.error
        finally:
            await kms.close()

    run(main())


def test_tls_wrong_ca_fails_clearly(tmp_path, vault_creds_tls: AppRoleCreds) -> None:
    from tests.integration.openbao import CertificateAuthority

    wrong = tmp_path / "wrong-ca.pem"
    wrong.write_bytes(CertificateAuthority.create("not the vault CA").cert_pem())

    async def main() -> None:
        kms = VaultKMS(**{**vault_creds_tls.kms_kwargs(), "capath": str(wrong)}, retry_min=5)
        await kms.start()  # must not raise
        try:
            assert not kms.ready()
            with pytest.raises(KMSUnavailableError, match="certificate verify failed"):
                await kms.generate_key("my-minio-key", CTX)
            st = await kms.status()
            assert not st.ok and "certificate" in (st.error or "")
        finally:
            await kms.close()

    run(main())


def test_capath_errors_are_clear(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    kwargs = {
        "endpoint": "https://127.0.0.1:1",
        "role_id": "r",
        "secret_id": "s",
        "key_name": "k",
    }
    with pytest.raises(ValueError, match="contains no PEM certificate"):
        VaultKMS(**kwargs, capath=str(empty))
    with pytest.raises(ValueError, match="does not exist"):
        VaultKMS(**kwargs, capath=str(tmp_path / "missing"))


def test_paused_kms_is_unavailable_within_timeout_then_heals(
    private_openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    creds = approle(server=private_openbao)

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs(), request_timeout=2.0, connect_timeout=1.0)
        await kms.start()
        try:
            dk = await kms.generate_key("my-minio-key", CTX)
            private_openbao.pause()
            try:
                t0 = time.monotonic()
                with pytest.raises(KMSUnavailableError, match="unreachable"):
                    await kms.decrypt_key("my-minio-key", dk.ciphertext, CTX)
                elapsed = time.monotonic() - t0
                assert elapsed < 5.0, elapsed  # request_timeout=2 plus scheduling slack
                assert not kms.ready()
                st = await kms.status()
                assert not st.ok
            finally:
                private_openbao.resume()
            # heals by itself: the next calls work and readiness comes back
            deadline = time.monotonic() + 15
            while True:
                try:
                    got = await kms.decrypt_key("my-minio-key", dk.ciphertext, CTX)
                    break
                except KMSUnavailableError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            assert got == dk.plaintext
            assert kms.ready()
        finally:
            await kms.close()

    run(main())


def test_concurrent_requests_share_a_failed_login(
    private_openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    """Requests queued behind one hanging login fail together, not one timeout after another."""
    creds = approle(server=private_openbao)
    private_openbao.pause()

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs(), request_timeout=1.5, connect_timeout=1.0)
        try:
            await kms.start()  # hangs at most one timeout, never raises
            assert not kms.ready()
            t0 = time.monotonic()
            results = await asyncio.gather(
                *(kms.generate_key("my-minio-key", CTX) for _ in range(8)), return_exceptions=True
            )
            elapsed = time.monotonic() - t0
            assert all(isinstance(r, KMSUnavailableError) for r in results), results
            assert elapsed < 6.0, elapsed  # 8 sequential logins would take >= 12 s
        finally:
            private_openbao.resume()
        try:
            deadline = time.monotonic() + 20
            while not (await kms.status()).ok:
                assert time.monotonic() < deadline, kms.last_error
                await asyncio.sleep(0.5)
        finally:
            await kms.close()

    run(main())


def test_start_while_vault_down_then_heals(
    private_openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    creds = approle(server=private_openbao)
    private_openbao.stop()

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs(), retry_min=0.2, retry_max=1.0)
        await kms.start()  # Vault is down: must not raise
        try:
            assert not kms.ready()
            with pytest.raises(KMSUnavailableError):
                await kms.generate_key("my-minio-key", CTX)
            await asyncio.to_thread(private_openbao.start)
            deadline = time.monotonic() + 15
            while not kms.ready():
                assert time.monotonic() < deadline, kms.last_error
                await asyncio.sleep(0.2)
            assert (await kms.status()).ok
            # sealed Vault: 503 -> unavailable, and it heals after unseal
            await asyncio.to_thread(private_openbao.seal)
            with pytest.raises(KMSUnavailableError, match="sealed"):
                await kms.generate_key("my-minio-key", CTX)
            assert not kms.ready()
            await asyncio.to_thread(private_openbao.unseal)
            await asyncio.to_thread(private_openbao._wait_active, 15)
            deadline = time.monotonic() + 15
            while not (await kms.status()).ok:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.5)
            assert kms.ready()
        finally:
            await kms.close()

    run(main())


@pytest.mark.slow
def test_token_renewal_keeps_the_same_token(
    private_openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    """With period=6s and >3 periods of traffic, calls keep working on the *same* token: the
    accessor never changes, there is no second login, and the token is alive at the end, which
    is only possible if renew-self extended it (an unrenewed 6 s token would be long dead)."""
    creds = approle(server=private_openbao, period="6s")
    role = "my-role-6s"

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs(), renew_floor=1.0)
        await kms.start()
        try:
            first = await asyncio.to_thread(_accessors_for_role, private_openbao, role)
            assert len(first) == 1
            end = time.monotonic() + 21
            calls = 0
            while time.monotonic() < end:
                dk = await kms.generate_key("my-minio-key", CTX)
                assert await kms.decrypt_key("my-minio-key", dk.ciphertext, CTX) == dk.plaintext
                calls += 1
                await asyncio.sleep(1.0)
            after = await asyncio.to_thread(_accessors_for_role, private_openbao, role)
            assert after == first, "token was replaced instead of renewed"
            (accessor,) = after
            info = private_openbao.api(
                "POST", "auth/token/lookup-accessor", {"accessor": accessor}
            )["data"]
            assert 0 < info["ttl"] <= 6 and info["period"] == 6
            assert kms.logins == 1 and kms.renewals >= 3
            assert calls >= 15
        finally:
            await kms.close()

    run(main())


@pytest.mark.slow
def test_non_periodic_token_at_max_ttl_logs_in_again(private_openbao: OpenBao, caplog) -> None:
    """A role without period and with token_max_ttl=8s: renewals stop extending the token, so
    the client must log in again before it expires; calls never fail meanwhile."""
    private_openbao.configure_sse()
    private_openbao.api(
        "POST",
        "auth/approle/role/short-max",
        {"token_policies": ["minio-policy"], "token_ttl": "4s", "token_max_ttl": "8s"},
    )
    role_id = private_openbao.api("GET", "auth/approle/role/short-max/role-id")["data"]
    secret = private_openbao.api("POST", "auth/approle/role/short-max/secret-id", {})["data"]
    caplog.set_level(logging.INFO, logger="sealstore.kms")

    async def main() -> None:
        kms = VaultKMS(
            private_openbao.address, role_id["role_id"], secret["secret_id"], "my-minio-key"
        )
        await kms.start()
        try:
            end = time.monotonic() + 18
            while time.monotonic() < end:
                dk = await kms.generate_key("my-minio-key", CTX)
                assert await kms.decrypt_key("my-minio-key", dk.ciphertext, CTX) == dk.plaintext
                await asyncio.sleep(0.5)
            assert kms.logins >= 2 and kms.renewals >= 1
            assert kms.ready()
        finally:
            await kms.close()

    run(main())
    # proactive: the re-login came from the renewal loop, not from a rejected (expired) token
    assert "near its maximum TTL" in caplog.text
    assert "rejected the token" not in caplog.text


def test_revoked_token_relogin_heals(
    private_openbao: OpenBao, approle: Callable[..., AppRoleCreds], caplog
) -> None:
    creds = approle(server=private_openbao)
    caplog.set_level(logging.DEBUG, logger="sealstore.kms")

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs())
        await kms.start()
        try:
            (accessor,) = await asyncio.to_thread(_accessors_for_role, private_openbao, "my-role")
            private_openbao.api("POST", "auth/token/revoke-accessor", {"accessor": accessor})
            dk = await kms.generate_key("my-minio-key", CTX)  # 403 -> re-login -> retry
            assert await kms.decrypt_key("my-minio-key", dk.ciphertext, CTX) == dk.plaintext
            now = await asyncio.to_thread(_accessors_for_role, private_openbao, "my-role")
            assert len(now) == 1 and accessor not in now
            assert kms.logins == 2 and kms.ready()
        finally:
            await kms.close()

    run(main())
    assert "logging in again" in caplog.text
    assert creds.secret_id not in caplog.text and creds.role_id not in caplog.text
    assert not TOKEN_RE.search(caplog.text)


def test_policy_denied_key_does_not_churn_tokens(vault_creds: AppRoleCreds) -> None:
    async def main() -> None:
        kms = VaultKMS(**vault_creds.kms_kwargs())
        await kms.start()
        try:
            for _ in range(3):
                with pytest.raises(KMSAccessDeniedError, match="403") as info:
                    await kms.generate_key("not-in-policy", CTX)
                assert "'not-in-policy'" in str(info.value) and "policy" in str(info.value)
            assert kms.logins == 1
            assert kms.ready()  # a denied key says nothing about the KMS itself
        finally:
            await kms.close()

    run(main())


def test_wrong_secret_id_clear_error_not_ready(vault_creds: AppRoleCreds, caplog) -> None:
    wrong = "00000000-1111-2222-3333-444444444444"
    caplog.set_level(logging.DEBUG, logger="sealstore.kms")

    async def main() -> None:
        kms = VaultKMS(**{**vault_creds.kms_kwargs(), "secret_id": wrong}, retry_min=5)
        await kms.start()
        try:
            assert not kms.ready()
            with pytest.raises(KMSLoginError) as info:
                await kms.generate_key("my-minio-key", CTX)
            # a credentials problem, reported as such, but still "unavailable" (S3 503)
            assert isinstance(info.value, KMSUnavailableError)
            assert str(info.value).startswith("KMS login failed: invalid role or secret ID")
            assert wrong not in str(info.value) and vault_creds.role_id not in str(info.value)
            st = await kms.status()
            assert not st.ok and "KMS login failed: invalid role or secret ID" in (st.error or "")
        finally:
            await kms.close()

    run(main())
    assert wrong not in caplog.text and vault_creds.role_id not in caplog.text


def test_unknown_key_with_broad_policy_is_not_found(openbao: OpenBao) -> None:
    """With a policy that allows any transit key, a missing key maps to KMSKeyNotFoundError."""
    from sealstore.kms.base import KMSKeyNotFoundError

    openbao.api(
        "PUT",
        "sys/policies/acl/broad-transit",
        {"policy": 'path "transit/*" { capabilities = ["read", "update"] }'},
    )
    openbao.api(
        "POST",
        "auth/approle/role/broad-role",
        {"token_policies": ["broad-transit"], "period": "60s"},
    )
    role_id = openbao.api("GET", "auth/approle/role/broad-role/role-id")["data"]["role_id"]
    secret = openbao.api("POST", "auth/approle/role/broad-role/secret-id", {})["data"]

    async def main() -> None:
        kms = VaultKMS(openbao.address, role_id, secret["secret_id"], "my-minio-key")
        await kms.start()
        try:
            with pytest.raises(KMSKeyNotFoundError):
                await kms.generate_key("no-such-key", CTX)
            with pytest.raises(KMSKeyNotFoundError):
                await kms.decrypt_key("no-such-key", b"vault:v1:AAAA", CTX)
            with pytest.raises(KMSKeyNotFoundError):
                await kms.generate_key("../sys", CTX)
        finally:
            await kms.close()

    run(main())


def test_unknown_role_id_is_the_same_clear_login_error(vault_creds: AppRoleCreds) -> None:
    async def main() -> None:
        kms = VaultKMS(**{**vault_creds.kms_kwargs(), "role_id": "no-such-role-id"}, retry_min=5)
        await kms.start()
        try:
            with pytest.raises(KMSLoginError, match="invalid role or secret ID") as info:
                await kms.decrypt_key("my-minio-key", b"vault:v1:AAAA", CTX)
            assert "no-such-role-id" not in str(info.value)
            assert vault_creds.secret_id not in str(info.value)
        finally:
            await kms.close()

    run(main())


def test_locked_out_role_says_so(private_openbao: OpenBao, approle) -> None:
    """Vault's user lockout (default 5 bad logins) answers "permission denied" even for a
    valid secret-id; the error must point the operator at the lockout, not at the policy."""
    creds = approle(server=private_openbao)
    wrong = "00000000-1111-2222-3333-444444444444"

    async def main() -> None:
        # Requests never retry refused credentials themselves (that is what protects a running
        # server from locking itself out), so hit the threshold the way it happens in the field:
        # servers (re)started with a wrong secret-id, one login attempt each.
        for _ in range(6):
            kms = VaultKMS(**{**creds.kms_kwargs(), "secret_id": wrong}, retry_min=60)
            await kms.start()  # one failed login
            try:
                with pytest.raises(KMSLoginError):
                    await kms.generate_key("my-minio-key", CTX)
            finally:
                await kms.close()
        good = VaultKMS(**creds.kms_kwargs(), retry_min=60)
        await good.start()
        try:
            with pytest.raises(KMSLoginError, match="locks the role out") as info:
                await good.generate_key("my-minio-key", CTX)
            assert "permission denied" in str(info.value)
            assert isinstance(info.value, KMSUnavailableError)  # still 503: it heals later
            assert creds.secret_id not in str(info.value)
        finally:
            await good.close()

    run(main())


def test_requests_do_not_retry_refused_credentials(private_openbao: OpenBao, approle) -> None:
    """A burst of requests against refused credentials makes no new login attempts: each one
    would count towards Vault's user lockout. Observable on the real server: the role is not
    locked out afterwards, so the right secret-id still logs in."""
    creds = approle(server=private_openbao)
    wrong = "00000000-1111-2222-3333-555555555555"

    async def main() -> None:
        kms = VaultKMS(**{**creds.kms_kwargs(), "secret_id": wrong}, retry_min=60)
        await kms.start()  # exactly one failed login
        try:
            for _ in range(20):
                with pytest.raises(KMSLoginError, match="invalid role or secret ID"):
                    await kms.generate_key("my-minio-key", CTX)
            assert kms._login_attempts == 1, kms._session.last_error
        finally:
            await kms.close()
        good = VaultKMS(**creds.kms_kwargs(), retry_min=60)
        await good.start()
        try:
            key = await good.generate_key("my-minio-key", CTX)
            assert len(key.plaintext) == 32
        finally:
            await good.close()

    run(main())
