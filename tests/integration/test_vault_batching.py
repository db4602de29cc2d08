"""Coalesced transit calls against a real OpenBao: many objects per round trip, each with its
own key, its own context and its own outcome (issue 11: the KMS cost per object)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable

import pytest

from sealstore.crypto.kms_context import encode_context_legacy
from sealstore.kms.base import KMSDecryptError, KMSUnavailableError
from sealstore.kms.vault import VaultKMS
from tests.integration.openbao import AppRoleCreds, OpenBao

N = 64


def _ctx(n: int) -> dict[str, str]:
    return {"bucket": f"bucket/object-{n}"}


def _tampered(ciphertext: bytes) -> bytes:
    """The same ``vault:v1:`` envelope with one byte of the sealed key flipped."""
    prefix, _, body = ciphertext.decode().rpartition(":")
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 0x01
    return f"{prefix}:{base64.b64encode(bytes(raw)).decode()}".encode()


def test_concurrent_puts_and_gets_share_round_trips_and_keep_unique_keys(
    approle: Callable[..., AppRoleCreds],
) -> None:
    creds = approle()

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs())
        await kms.start()
        try:
            made = await asyncio.gather(
                *(kms.generate_key("my-minio-key", _ctx(n)) for n in range(N))
            )
            assert len({dk.plaintext for dk in made}) == N  # one fresh key per object
            assert all(dk.ciphertext.startswith(b"vault:v") for dk in made)
            opened = await asyncio.gather(
                *(
                    kms.decrypt_key("my-minio-key", dk.ciphertext, _ctx(n))
                    for n, dk in enumerate(made)
                )
            )
            assert opened == [dk.plaintext for dk in made]
            counts = kms.batch_counts
            assert counts["encrypt"][1] == N and counts["decrypt"][1] == N
            # the first call goes alone, the rest queue behind it: far fewer round trips
            assert counts["encrypt"][0] <= N // 4, counts
            assert counts["decrypt"][0] <= N // 4, counts
        finally:
            await kms.close()

    asyncio.run(main())


def test_one_bad_ciphertext_fails_only_its_own_request(
    approle: Callable[..., AppRoleCreds],
) -> None:
    creds = approle()

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs())
        await kms.start()
        try:
            made = [await kms.generate_key("my-minio-key", _ctx(n)) for n in range(12)]
            sealed = [dk.ciphertext for dk in made]
            sealed[5] = _tampered(sealed[5])
            got = await asyncio.gather(
                *(kms.decrypt_key("my-minio-key", c, _ctx(n)) for n, c in enumerate(sealed)),
                return_exceptions=True,
            )
            assert isinstance(got[5], KMSDecryptError), got[5]
            assert [g for n, g in enumerate(got) if n != 5] == [
                dk.plaintext for n, dk in enumerate(made) if n != 5
            ]
            assert kms.batch_counts["decrypt"][0] < 12
        finally:
            await kms.close()

    asyncio.run(main())


def test_derived_key_mixed_context_encodings_in_one_batch(
    openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    """MinIO 2019 data keys (raw context) and current ones (escaped) on a derived key, opened
    concurrently: the legacy items fail their first attempt alone and succeed on the retry."""
    openbao.api("POST", "transit/keys/batch-derived", {"derived": True})
    creds = approle(key="batch-derived")
    odd = [{"bucket": f'bucket/a<{n}>&"c'} for n in range(6)]
    legacy = [
        openbao.api(
            "POST",
            "transit/datakey/plaintext/batch-derived",
            {"context": base64.b64encode(encode_context_legacy(ctx)).decode()},
        )["data"]
        for ctx in odd
    ]

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs())
        await kms.start()
        try:
            fresh = [await kms.generate_key("batch-derived", ctx) for ctx in odd]
            calls = [
                kms.decrypt_key("batch-derived", made["ciphertext"].encode(), ctx)
                for made, ctx in zip(legacy, odd, strict=True)
            ] + [
                kms.decrypt_key("batch-derived", dk.ciphertext, ctx)
                for dk, ctx in zip(fresh, odd, strict=True)
            ]
            got = await asyncio.gather(*calls)
            assert got == [base64.b64decode(m["plaintext"]) for m in legacy] + [
                dk.plaintext for dk in fresh
            ]
        finally:
            await kms.close()

    asyncio.run(main())


def test_outage_in_the_middle_of_a_batch_fails_every_waiter_cleanly_then_heals(
    private_openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    creds = approle(server=private_openbao)

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs(), request_timeout=2.0, connect_timeout=1.0)
        await kms.start()
        try:
            dk = await kms.generate_key("my-minio-key", _ctx(0))
            await asyncio.to_thread(private_openbao.pause)
            try:
                got = await asyncio.gather(
                    *(kms.decrypt_key("my-minio-key", dk.ciphertext, _ctx(0)) for _ in range(20)),
                    *(kms.generate_key("my-minio-key", _ctx(n)) for n in range(20)),
                    return_exceptions=True,
                )
            finally:
                await asyncio.to_thread(private_openbao.resume)
            assert all(isinstance(g, KMSUnavailableError) for g in got), got
            for _ in range(100):
                try:
                    assert await kms.decrypt_key("my-minio-key", dk.ciphertext, _ctx(0)) == (
                        dk.plaintext
                    )
                    break
                except KMSUnavailableError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the KMS did not heal after OpenBao resumed")
        finally:
            await kms.close()

    asyncio.run(main())


def test_policy_without_encrypt_falls_back_to_datakey_with_one_warning(
    openbao: OpenBao, approle: Callable[..., AppRoleCreds], caplog: pytest.LogCaptureFixture
) -> None:
    openbao.api("POST", "transit/keys/narrow-key", {})
    creds = approle(key="narrow-key")
    narrow = (
        'path "transit/datakey/plaintext/narrow-key" { capabilities = ["update"] }\n'
        'path "transit/decrypt/narrow-key" { capabilities = ["update"] }\n'
    )
    openbao.api("PUT", "sys/policies/acl/minio-policy-narrow-key", {"policy": narrow})

    async def main() -> None:
        kms = VaultKMS(**creds.kms_kwargs())
        await kms.start()
        try:
            made = [await kms.generate_key("narrow-key", _ctx(n)) for n in range(3)]
            assert len({dk.plaintext for dk in made}) == 3
            for n, dk in enumerate(made):
                assert await kms.decrypt_key("narrow-key", dk.ciphertext, _ctx(n)) == dk.plaintext
        finally:
            await kms.close()

    with caplog.at_level(logging.WARNING, logger="sealstore.kms.vault"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if "denies transit/encrypt" in r.getMessage()]
    assert len(warnings) == 1
