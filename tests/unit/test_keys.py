"""Object-key hierarchy tests: Go path semantics, KEK derivation by hand, seal/unseal, part keys."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest

from sealstore.crypto import dare, keys
from sealstore.crypto.keys import (
    KeyMismatchError,
    SealedKey,
    derive_part_key,
    generate_object_key,
    go_path_join,
    seal_etag,
    seal_object_key,
    unseal_etag,
    unseal_object_key,
)

DEK = bytes(range(32, 64))


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("bucket", "object"), "bucket/object"),
        (("bucket", "dir/"), "bucket/dir"),
        (("bucket", "a//b"), "bucket/a/b"),
        (("bucket", "./a/./b/."), "bucket/a/b"),
        (("bucket", "a/../b"), "bucket/b"),
        (("bucket", "a/../../x"), "x"),
        (("bucket", "../../x"), "../x"),
        (("bucket", "/abs"), "bucket/abs"),
        (("", "x"), "x"),
        (("", ""), ""),
        (("/", ".."), "/"),
        (("bucket", ""), "bucket"),
        (("a", "b", "c/"), "a/b/c"),
        (("bucket", "."), "bucket"),
        (("bucket", "..."), "bucket/..."),
        (("bucket", "é/ü"), "bucket/é/ü"),
    ],
)
def test_go_path_join(parts: tuple[str, ...], expected: str) -> None:
    assert go_path_join(*parts) == expected


def test_go_clean_edge_cases() -> None:
    assert keys.go_clean("") == "."
    assert keys.go_clean("/../a") == "/a"
    assert keys.go_clean("a/..") == "."
    assert keys.go_clean("//") == "/"


def test_generate_object_key_matches_spec_hmac() -> None:
    nonce = bytes(32)
    expected = hmac.new(DEK, b"object-encryption-key generation" + nonce, hashlib.sha256).digest()
    assert generate_object_key(DEK, nonce=nonce) == expected
    assert generate_object_key(DEK) != generate_object_key(DEK)


def test_seal_matches_hand_derived_kek() -> None:
    oek = os.urandom(32)
    iv = bytes([7]) * 32
    sealed = seal_object_key(oek, DEK, "SSE-S3", "bucket", "dir/obj/", iv=iv)
    assert sealed.iv == iv and sealed.algorithm == "DAREv2-HMAC-SHA256"
    assert len(sealed.key) == 64 and sealed.key[0] == 0x20
    kek = hmac.new(DEK, iv + b"SSE-S3" + b"DAREv2-HMAC-SHA256" + b"bucket/dir/obj", hashlib.sha256)
    assert dare.decrypt(kek.digest(), sealed.key) == oek


@pytest.mark.parametrize("domain", ["SSE-S3", "SSE-KMS", "SSE-C"])
def test_seal_unseal_round_trip(domain: str) -> None:
    oek = generate_object_key(DEK)
    sealed = seal_object_key(oek, DEK, domain, "bkt", "a/b.txt")
    assert unseal_object_key(sealed, DEK, domain, "bkt", "a/b.txt") == oek
    # Go path semantics: the same cleaned path unseals
    assert unseal_object_key(sealed, DEK, domain, "bkt", "a//b.txt") == oek


@pytest.mark.parametrize(
    ("kek_source", "domain", "bucket", "obj"),
    [
        (os.urandom(32), "SSE-S3", "bkt", "obj"),
        (DEK, "SSE-KMS", "bkt", "obj"),
        (DEK, "SSE-S3", "other", "obj"),
        (DEK, "SSE-S3", "bkt", "obj2"),
    ],
)
def test_unseal_mismatch(kek_source: bytes, domain: str, bucket: str, obj: str) -> None:
    sealed = seal_object_key(os.urandom(32), DEK, "SSE-S3", "bkt", "obj")
    with pytest.raises(KeyMismatchError):
        unseal_object_key(sealed, kek_source, domain, bucket, obj)


def test_unseal_rejects_bad_metadata() -> None:
    good = seal_object_key(os.urandom(32), DEK, "SSE-S3", "b", "o")
    for bad in (
        SealedKey(iv=good.iv[:31], algorithm=good.algorithm, key=good.key),
        SealedKey(iv=good.iv, algorithm=good.algorithm, key=good.key[:63]),
        SealedKey(iv=good.iv, algorithm="DARE-SHA256", key=good.key),
        SealedKey(iv=good.iv, algorithm="bogus", key=good.key),
    ):
        with pytest.raises(KeyMismatchError):
            unseal_object_key(bad, DEK, "SSE-S3", "b", "o")


def test_unseal_rejects_validly_sealed_wrong_length_key() -> None:
    """A correctly authenticated 31-byte value is still not an object key (63-byte blob)."""
    iv = os.urandom(32)
    kek = hmac.new(DEK, iv + b"SSE-S3DAREv2-HMAC-SHA256b/o", hashlib.sha256).digest()
    sealed = SealedKey(iv=iv, algorithm="DAREv2-HMAC-SHA256", key=dare.encrypt(kek, b"x" * 31))
    with pytest.raises(KeyMismatchError):
        unseal_object_key(sealed, DEK, "SSE-S3", "b", "o")


def test_sse_c_rotation_reuses_iv() -> None:
    oek = os.urandom(32)
    old, new = os.urandom(32), os.urandom(32)
    sealed = seal_object_key(oek, old, "SSE-C", "b", "o")
    resealed = seal_object_key(
        unseal_object_key(sealed, old, "SSE-C", "b", "o"), new, "SSE-C", "b", "o", iv=sealed.iv
    )
    assert resealed.iv == sealed.iv
    assert unseal_object_key(resealed, new, "SSE-C", "b", "o") == oek


def test_legacy_dare_sha256_sse_c_unseal() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    client_key, iv, oek = os.urandom(32), os.urandom(32), os.urandom(32)
    legacy_key = hashlib.sha256(client_key + iv).digest()
    header = b"\x10\x00" + (32 - 1).to_bytes(2, "little") + (0).to_bytes(4, "little")
    header += os.urandom(8)
    blob = header + AESGCM(legacy_key).encrypt(header[4:16], oek, header[:4])
    sealed = SealedKey(iv=iv, algorithm="DARE-SHA256", key=blob)
    assert unseal_object_key(sealed, client_key, "SSE-C", "b", "o") == oek


def test_part_keys() -> None:
    oek = os.urandom(32)
    for n in (1, 2, 10000):
        expected = hmac.new(oek, n.to_bytes(4, "little"), hashlib.sha256).digest()
        assert derive_part_key(oek, n) == expected
    assert derive_part_key(oek, 1) != derive_part_key(oek, 2)
    with pytest.raises(ValueError):
        derive_part_key(oek, -1)


def test_etag_seal_round_trip_and_format() -> None:
    oek = os.urandom(32)
    md5 = hashlib.md5(b"data").digest()
    sealed = seal_etag(oek, md5)
    assert len(sealed) == 48 and len(sealed.hex()) == 96
    etag_key = hmac.new(oek, b"SSE-etag", hashlib.sha256).digest()
    assert dare.decrypt(etag_key, sealed) == md5
    assert unseal_etag(oek, sealed) == md5
    with pytest.raises(dare.DareError):
        unseal_etag(os.urandom(32), sealed)
