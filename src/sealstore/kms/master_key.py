"""Static master-key KMS in MinIO's 2019 ``MINIO_SSE_MASTER_KEY=<id>:<64 hex>`` format (§5.2).

The data key is sealed with DARE 2.0 under ``HMAC-SHA256(master, keyID || context)``, giving a
64-byte binary ciphertext. MinIO dropped this format in 2021 and newer MinIO can no longer read
such objects (minio/minio#14315); keeping it here lets old deployments migrate. Contexts are tried
in the current escaped encoding first, then the 2019 raw encoding (pitfall P1).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import string

from sealstore.crypto import dare
from sealstore.crypto.kms_context import context_encodings, encode_context
from sealstore.kms.base import (
    DataKey,
    KeyVersions,
    KMSDecryptError,
    KMSKeyNotFoundError,
    KMSRewrapUnsupportedError,
    KMSStatus,
    self_test,
)

_HEX_DIGITS = frozenset(string.hexdigits)
_HEX_LEN = 64
_NO_VERSIONS = (
    "rewrap does not apply to a static master key (MINIO_SSE_MASTER_KEY): it has no key "
    "versions to rotate; move to Vault/OpenBao with `sealstore admin migrate-kms` instead"
)


class MasterKeyKMS:
    """A KMS backed by one 256-bit key from the environment; entirely local, always ready."""

    kind = "master-key"

    def __init__(self, key_id: str, master_key: bytes) -> None:
        """Use ``master_key`` (32 bytes) under the name ``key_id`` (which may be empty)."""
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        self.default_key_id = key_id
        self._master = bytes(master_key)

    def __repr__(self) -> str:
        """Show the key id only; the key material never appears in reprs or logs."""
        return f"MasterKeyKMS(key_id={self.default_key_id!r})"

    @classmethod
    def from_env_value(cls, value: str) -> MasterKeyKMS:
        """Parse ``<key-id>:<64 hex chars>``; every malformed form gets its own precise message.

        Splitting happens at the first colon, so the id may not contain one. Messages describe
        shape and length only, never the characters of the key.
        """
        if ":" not in value:
            raise ValueError(
                "master key must have the form <key-id>:<64 hex characters>; no ':' separator found"
            )
        key_id, hex_key = value.split(":", 1)
        if key_id == "":
            raise ValueError("master key id (the part before ':') must not be empty")
        if key_id.strip() != key_id:
            raise ValueError("master key id must not start or end with whitespace")
        if len(hex_key) != _HEX_LEN:
            raise ValueError(
                f"master key must be {_HEX_LEN} hex characters (256 bits) after "
                f"'{key_id}:', found {len(hex_key)}"
            )
        bad = sum(1 for c in hex_key if c not in _HEX_DIGITS)
        if bad:
            raise ValueError(
                f"master key after '{key_id}:' must be hexadecimal (0-9, a-f); "
                f"found {bad} non-hex character(s)"
            )
        return cls(key_id, bytes.fromhex(hex_key))

    def _derive(self, key_id: str, context_bytes: bytes) -> bytes:
        msg = key_id.encode("utf-8", "surrogateescape") + context_bytes
        return hmac.new(self._master, msg, hashlib.sha256).digest()

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""

    def ready(self) -> bool:
        """Always usable: the key is in memory."""
        return True

    async def generate_key(self, key_id: str, context: dict[str, str]) -> DataKey:
        """Create a random DEK sealed under the derived key (64-byte DARE ciphertext).

        Only the configured key id exists; any other name is "not found", as SSE-KMS with an
        unknown key must fail rather than silently use the master key under another name.
        """
        if key_id != self.default_key_id:
            raise KMSKeyNotFoundError(f"key {key_id!r} does not exist")
        dek = os.urandom(32)
        sealed = dare.encrypt(self._derive(key_id, encode_context(context)), dek)
        return DataKey(key_id=key_id, plaintext=dek, ciphertext=sealed)

    async def decrypt_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        """Unseal a DEK; any key id is accepted because the id is bound through the HMAC (MinIO).

        The escaped context is tried first, then the 2019 raw encoding, so objects written by
        MinIO before 2021-01 with ``"\\<>&`` or control characters in their names stay readable.
        """
        for ctx_bytes in context_encodings(context):
            try:
                dek = dare.decrypt(self._derive(key_id, ctx_bytes), ciphertext)
            except dare.DareError:
                continue
            if len(dek) == 32:
                return dek
        raise KMSDecryptError("the data key cannot be decrypted with this master key and context")

    async def key_versions(self, key_id: str) -> KeyVersions:
        """A static master key has no versions: always ``KMSRewrapUnsupportedError``."""
        raise KMSRewrapUnsupportedError(_NO_VERSIONS)

    async def rewrap_key(self, key_id: str, ciphertext: bytes, context: dict[str, str]) -> bytes:
        """Nothing to re-wrap under a static master key: ``KMSRewrapUnsupportedError``."""
        raise KMSRewrapUnsupportedError(_NO_VERSIONS)

    async def status(self) -> KMSStatus:
        """Generate/decrypt/compare self-test (never raises)."""
        return await self_test(self)
