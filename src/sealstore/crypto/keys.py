"""Object encryption keys: generation, sealing to bucket/object, part keys and sealed ETags.

This mirrors MinIO's key hierarchy byte for byte (see minio-sse-format.md §1, §3, §4.4): a fresh
object key (OEK) per object, sealed with a key-encryption key that an HMAC derives from the KMS data
key, a random IV, the domain (``SSE-S3``, ``SSE-KMS``, ``SSE-C``) and Go's ``path.Join(bucket,
object)``. Binding the sealed key to the path is what stops metadata from being copied onto another
object; reproducing Go's path cleaning exactly is what keeps MinIO-written objects readable.

Go's cleaning is lossy: ``a//b`` and ``a/b``, ``dir/`` and ``dir`` clean to one path, so under
MinIO's rule two distinct keys share a KEK. The object service therefore seals with
``exact=True``: the path bound is :func:`object_path`, ``bucket + "/" + object`` verbatim, which
equals MinIO's path for every key MinIO encrypts (MinIO refuses ``//``, ``.`` and ``..`` and
never encrypts a key ending in ``/``) and is distinct for every other pair of keys.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from sealstore.crypto import dare

SEAL_ALGORITHM = "DAREv2-HMAC-SHA256"
LEGACY_SEAL_ALGORITHM = "DARE-SHA256"
DOMAIN_SSE_S3 = "SSE-S3"
DOMAIN_SSE_KMS = "SSE-KMS"
DOMAIN_SSE_C = "SSE-C"
DOMAINS = frozenset({DOMAIN_SSE_S3, DOMAIN_SSE_KMS, DOMAIN_SSE_C})

IV_SIZE = 32
SEALED_KEY_SIZE = 64
OBJECT_KEY_SIZE = 32

_OEK_LABEL = b"object-encryption-key generation"
_ETAG_LABEL = b"SSE-etag"


class KeyMismatchError(Exception):
    """The object key could not be unsealed: wrong key, wrong bucket/object, or bad metadata.

    MinIO reports all of these as ``ErrSecretKeyMismatch`` (403 AccessDenied) and so do we, so a
    caller cannot learn which part was wrong.
    """


@dataclass(frozen=True)
class SealedKey:
    """A sealed object key as stored in metadata: 32-byte IV, algorithm name, 64-byte DARE blob."""

    iv: bytes
    algorithm: str
    key: bytes


def go_clean(p: str) -> str:
    """Go's ``path.Clean``: lexical shortest form; ``"."`` for an empty result."""
    if p == "":
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for elem in p.split("/"):
        if elem in ("", "."):
            continue
        if elem == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            # rooted: ".." at the root stays at the root
            continue
        out.append(elem)
    joined = "/".join(out)
    if rooted:
        return "/" + joined
    return joined or "."


def go_path_join(*parts: str) -> str:
    """Go's ``path.Join``: join the non-empty elements with ``/`` then Clean; ``""`` if all empty.

    ``os.path``/``posixpath`` differ (absolute elements reset the path, trailing slashes and
    ``..`` are kept), which would silently change the KEK and the KMS context.
    """
    nonempty = [p for p in parts if p != ""]
    if not nonempty:
        return ""
    return go_clean("/".join(nonempty))


def object_path(bucket: str, obj: str) -> str:
    """The exact path a sealed key and KMS context bind: ``bucket/obj`` with nothing cleaned.

    Injective over (bucket, key) because bucket names hold no ``/``; identical to
    ``go_path_join(bucket, obj)`` whenever cleaning would not change the key.
    """
    return f"{bucket}/{obj}"


def is_clean_key(obj: str) -> bool:
    """True when MinIO's ``path.Join`` binds exactly this key (no ``//``, ``.``, ``..``,
    leading or trailing ``/``): then exact and MinIO binding are one and the same."""
    return go_path_join("b", obj) == object_path("b", obj)


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def generate_object_key(dek: bytes, *, nonce: bytes | None = None) -> bytes:
    """Derive a fresh OEK: HMAC-SHA256(DEK, "object-encryption-key generation" || nonce32).

    The nonce is random per call and never stored (readers recover the OEK by unsealing), so
    every object gets its own key even when a KMS returns the same DEK twice.
    """
    if len(dek) != 32:
        raise ValueError(f"data key must be 32 bytes, got {len(dek)}")
    if nonce is None:
        nonce = os.urandom(32)
    elif len(nonce) != 32:
        raise ValueError("object key nonce must be 32 bytes")
    return _hmac(dek, _OEK_LABEL + nonce)


def _kek(kek_source: bytes, iv: bytes, domain: str, bucket: str, obj: str, exact: bool) -> bytes:
    if domain not in DOMAINS:
        raise ValueError(f"unknown sealing domain {domain!r}")
    joined = object_path(bucket, obj) if exact else go_path_join(bucket, obj)
    path = joined.encode("utf-8", "surrogateescape")
    msg = iv + domain.encode("ascii") + SEAL_ALGORITHM.encode("ascii") + path
    return _hmac(kek_source, msg)


def seal_object_key(
    oek: bytes,
    kek_source: bytes,
    domain: str,
    bucket: str,
    obj: str,
    *,
    iv: bytes | None = None,
    exact: bool = False,
) -> SealedKey:
    """Seal ``oek`` to ``bucket/obj`` under ``kek_source`` (DEK or SSE-C client key).

    ``iv`` is random unless given; SSE-C key rotation re-seals with the stored IV, as MinIO does.
    ``exact`` binds :func:`object_path` instead of MinIO's cleaned ``path.Join`` (see the
    module docstring); the two differ only for keys MinIO never encrypts.
    """
    if len(oek) != OBJECT_KEY_SIZE:
        raise ValueError(f"object key must be {OBJECT_KEY_SIZE} bytes, got {len(oek)}")
    if len(kek_source) != 32:
        raise ValueError(f"sealing key must be 32 bytes, got {len(kek_source)}")
    if iv is None:
        iv = os.urandom(IV_SIZE)
    elif len(iv) != IV_SIZE:
        raise ValueError(f"sealing IV must be {IV_SIZE} bytes")
    sealed = dare.encrypt(_kek(kek_source, iv, domain, bucket, obj, exact), oek)
    return SealedKey(iv=bytes(iv), algorithm=SEAL_ALGORITHM, key=sealed)


def unseal_object_key(
    sealed: SealedKey,
    kek_source: bytes,
    domain: str,
    bucket: str,
    obj: str,
    *,
    exact: bool = False,
) -> bytes:
    """Recover the OEK for ``bucket/obj``; any failure raises :class:`KeyMismatchError`.

    The metadata checks come first (IV 32 bytes, sealed key 64 bytes, known algorithm), then the
    KEK is derived with the *current* path, so a sealed key moved to another object fails. The
    legacy ``DARE-SHA256`` algorithm (SSE-C before 2018-08, DARE 1.0) is accepted for SSE-C only.
    ``exact`` as in :func:`seal_object_key`.
    """
    if len(sealed.iv) != IV_SIZE or len(sealed.key) != SEALED_KEY_SIZE:
        raise KeyMismatchError("invalid sealed key metadata")
    if len(kek_source) != 32:
        raise KeyMismatchError("invalid unsealing key")
    if sealed.algorithm == SEAL_ALGORITHM:
        kek = _kek(kek_source, sealed.iv, domain, bucket, obj, exact)
    elif sealed.algorithm == LEGACY_SEAL_ALGORITHM and domain == DOMAIN_SSE_C:
        kek = hashlib.sha256(kek_source + sealed.iv).digest()
    else:
        raise KeyMismatchError(f"unsupported seal algorithm {sealed.algorithm!r}")
    try:
        oek = dare.decrypt(kek, sealed.key)
    except dare.DareError:
        raise KeyMismatchError("the object key cannot be unsealed with this key") from None
    if len(oek) != OBJECT_KEY_SIZE:
        raise KeyMismatchError("invalid sealed object key length")
    return oek


def derive_part_key(oek: bytes, part_number: int) -> bytes:
    """Key of multipart part ``part_number`` (the client's number): HMAC(OEK, uint32_le(n))."""
    if not 0 <= part_number < 1 << 32:
        raise ValueError("part number out of range")
    return _hmac(oek, part_number.to_bytes(4, "little"))


def etag_key(oek: bytes) -> bytes:
    """Key that seals the stored ETag: HMAC-SHA256(OEK, "SSE-etag")."""
    return _hmac(oek, _ETAG_LABEL)


def seal_etag(oek: bytes, etag: bytes) -> bytes:
    """Seal an ETag (normally the 16-byte MD5) as MinIO stores it; 48 bytes for an MD5."""
    return dare.encrypt(etag_key(oek), etag)


def unseal_etag(oek: bytes, sealed: bytes) -> bytes:
    """Recover an ETag sealed by :func:`seal_etag`; raises ``DareError`` if it was tampered with."""
    return dare.decrypt(etag_key(oek), sealed)
