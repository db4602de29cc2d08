"""Master-key KMS: strict parsing messages, MinIO 2019 sealing format, context binding, factory."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os

import pytest

from sealstore.crypto import dare
from sealstore.crypto.kms_context import encode_context_legacy
from sealstore.kms.base import KMSDecryptError, KMSKeyNotFoundError
from sealstore.kms.factory import build_kms
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.kms.vault import VaultKMS

HEX = "6d792d6d696e696f2d6b65792d666f722d746573742d6f6e6c792d3332627974"  # 64 hex chars
VALUE = f"my-minio-key:{HEX}"


def run(coro):
    return asyncio.run(coro)


def test_parse_valid_upper_and_lower_case() -> None:
    kms = MasterKeyKMS.from_env_value(VALUE)
    assert kms.default_key_id == "my-minio-key" and kms.kind == "master-key"
    assert MasterKeyKMS.from_env_value(f"k:{HEX.upper()}").default_key_id == "k"
    assert HEX not in repr(kms)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (HEX, "no ':' separator"),
        (f":{HEX}", "must not be empty"),
        (f"id:{HEX[:-2]}", "found 62"),
        (f"id:{HEX}00", "found 66"),
        ("id:", "found 0"),
        (f"id:{HEX[:-1]}g", "found 1 non-hex"),
        (f"id:{HEX[:-2]}  ", "found 2 non-hex"),
        (f" id:{HEX}", "whitespace"),
    ],
)
def test_parse_errors_are_precise_and_never_leak(value: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        MasterKeyKMS.from_env_value(value)
    message = str(info.value)
    assert fragment in message
    assert HEX[:16] not in message and HEX[-16:] not in message


def test_split_at_first_colon() -> None:
    with pytest.raises(ValueError, match="found 65"):
        MasterKeyKMS.from_env_value(f"a:b{HEX}")  # id "a", key "b<hex>"


def test_generate_matches_minio_2019_format() -> None:
    kms = MasterKeyKMS.from_env_value(VALUE)
    ctx = {"bucket": "bucket/object"}
    dk = run(kms.generate_key("my-minio-key", ctx))
    assert dk.key_id == "my-minio-key" and len(dk.plaintext) == 32
    assert len(dk.ciphertext) == 64 and dk.ciphertext[0] == 0x20
    derived = hmac.new(
        bytes.fromhex(HEX), b"my-minio-key" + b'{"bucket":"bucket/object"}', hashlib.sha256
    ).digest()
    assert dare.decrypt(derived, dk.ciphertext) == dk.plaintext
    assert run(kms.decrypt_key("my-minio-key", dk.ciphertext, ctx)) == dk.plaintext


def test_context_and_key_id_binding() -> None:
    kms = MasterKeyKMS.from_env_value(VALUE)
    dk = run(kms.generate_key("my-minio-key", {"b": "b/o"}))
    with pytest.raises(KMSDecryptError):
        run(kms.decrypt_key("my-minio-key", dk.ciphertext, {"b": "b/other"}))
    with pytest.raises(KMSDecryptError):
        run(kms.decrypt_key("other-id", dk.ciphertext, {"b": "b/o"}))
    other = MasterKeyKMS.from_env_value(f"my-minio-key:{'00' * 32}")
    with pytest.raises(KMSDecryptError):
        run(other.decrypt_key("my-minio-key", dk.ciphertext, {"b": "b/o"}))
    with pytest.raises(KMSDecryptError):
        run(kms.decrypt_key("my-minio-key", dk.ciphertext[:-1], {"b": "b/o"}))


def test_unknown_key_id_for_generate() -> None:
    kms = MasterKeyKMS.from_env_value(VALUE)
    with pytest.raises(KMSKeyNotFoundError):
        run(kms.generate_key("nope", {}))


def test_legacy_2019_context_fallback() -> None:
    """A DEK sealed by 2019 MinIO under the raw (unescaped) context still decrypts."""
    kms = MasterKeyKMS.from_env_value(VALUE)
    ctx = {"bucket": 'bucket/a<b>&"c'}
    dek = os.urandom(32)
    derived = hmac.new(
        bytes.fromhex(HEX), b"my-minio-key" + encode_context_legacy(ctx), hashlib.sha256
    ).digest()
    sealed = dare.encrypt(derived, dek)
    assert run(kms.decrypt_key("my-minio-key", sealed, ctx)) == dek


def test_status_self_test() -> None:
    st = run(MasterKeyKMS.from_env_value(VALUE).status())
    assert st.ok and st.kind == "master-key" and st.key_id == "my-minio-key" and st.error is None
    assert st.latency_ms >= 0


def test_factory() -> None:
    assert build_kms() is None
    assert isinstance(build_kms(master_key=VALUE), MasterKeyKMS)
    vault = build_kms(endpoint="http://127.0.0.1:1", role_id="r", secret_id="s", key_name="k")
    assert isinstance(vault, VaultKMS)
    with pytest.raises(ValueError, match=r"^Ambiguous KMS configuration"):
        build_kms(endpoint="http://127.0.0.1:1", role_id="r", secret_id="s", master_key=VALUE)
    with pytest.raises(ValueError, match="MINIO_SSE_VAULT_APPROLE_SECRET"):
        build_kms(endpoint="http://127.0.0.1:1", role_id="r", key_name="k")
    with pytest.raises(ValueError, match="found 3"):
        build_kms(master_key="id:abc")


def test_factory_accepts_settings_object() -> None:
    class V:
        endpoint = "https://127.0.0.1:1"
        role_id = "role"
        secret_id = "secret-value"
        key_name = "my-minio-key"
        namespace = "ns1"
        capath = None

    class S:
        vault = V()
        master_key = None

    kms = build_kms(S())
    assert isinstance(kms, VaultKMS) and kms.namespace == "ns1"
    assert "secret-value" not in repr(kms) and "role" not in repr(kms)
