"""SSE-C: objects sealed under a key the client sends with every request, never stored.

MinIO's format exactly (minio-sse-format.md §1, §3.2, §3.5, §3.6): the client's 32-byte key
takes the place of the KMS data key. A fresh object key (OEK) is derived from it and a random
nonce, and sealed with ``KEK = HMAC-SHA256(client key, IV || "SSE-C" || "DAREv2-HMAC-SHA256" ||
bucket/object)``. The metadata holds only the algorithm, the IV and the 64-byte sealed OEK
(``X-Minio-Internal-Server-Side-Encryption-Sealed-Key``); no KMS is involved.

The sealed OEK is the key check: it is a DARE 2.0 package whose AES-GCM tag was computed under
that HMAC of the client key, so a wrong key fails to unseal it (403 AccessDenied) and no
plaintext, digest or other function of the key itself is ever stored. A read presents the key
again; an SSE-C object read without it, or another object read with one, is refused before
the KMS or the data are touched (AWS's InvalidRequest answers).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from sealstore.crypto import keys
from sealstore.objects import metadata as md
from sealstore.objects.choice import CustomerKey
from sealstore.objects.errors import CustomerKeyMismatch, InvalidRequest

ENCRYPTED_OBJECT = (
    "The object was stored using a form of Server Side Encryption. "
    "The correct parameters must be provided to retrieve the object."
)
NOT_APPLICABLE = "The encryption parameters are not applicable to this object."
MULTIPART_ENCRYPTED = (
    "The multipart upload initiate requested encryption. Subsequent part requests must "
    "include the appropriate encryption parameters."
)
PARAMETERS_MISMATCH = "The provided encryption parameters did not match the ones used originally."
_SEAL_ALGORITHMS = (keys.SEAL_ALGORITHM, keys.LEGACY_SEAL_ALGORITHM)
_PART_ETAG_LABEL = b"sealstore SSE-C part etag"


def is_ssec(internal: Mapping[str, str]) -> bool:
    """True for an object or upload sealed under a customer key (§3.5: the SSE-C entry)."""
    return md.ci_get(internal, md.META_SSEC_SEALED_KEY) is not None


def new_object_key(customer: CustomerKey, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
    """A fresh OEK for ``bucket/key`` and the MinIO metadata sealing it under ``customer``.

    Bound to the exact path (`keys.object_path`), as every sealstore key is; for every key
    MinIO encrypts that is MinIO's ``path.Join`` too.
    """
    oek = keys.generate_object_key(customer.key)
    sealed = keys.seal_object_key(oek, customer.key, md.DOMAIN_SSE_C, bucket, key, exact=True)
    return oek, {
        md.META_SEAL_ALGORITHM: sealed.algorithm,
        md.META_IV: base64.b64encode(sealed.iv).decode(),
        md.META_SSEC_SEALED_KEY: base64.b64encode(sealed.key).decode(),
        md.META_FORMAT_VERSION: md.FORMAT_VERSION,
    }


def _sealed(internal: Mapping[str, str]) -> keys.SealedKey:
    algorithm = md.ci_get(internal, md.META_SEAL_ALGORITHM)
    if algorithm not in _SEAL_ALGORITHMS:
        raise md.SSEMetadataError(f"unsupported seal algorithm {algorithm!r}")
    return keys.SealedKey(
        iv=md.b64_entry(internal, md.META_IV, keys.IV_SIZE),
        algorithm=algorithm,
        key=md.b64_entry(internal, md.META_SSEC_SEALED_KEY, keys.SEALED_KEY_SIZE),
    )


def open_object_key(
    internal: Mapping[str, str], bucket: str, key: str, customer: CustomerKey, *, exact: bool = True
) -> bytes:
    """The OEK of the SSE-C object (or upload) at ``bucket/key``, unsealed with ``customer``.

    CustomerKeyMismatch (403) when the key does not open it; SSEMetadataError when the
    entries are malformed. MinIO's legacy ``DARE-SHA256`` seal is accepted (§3.6).
    """
    try:
        return keys.unseal_object_key(
            _sealed(internal), customer.key, md.DOMAIN_SSE_C, bucket, key, exact=exact
        )
    except keys.KeyMismatchError:
        raise CustomerKeyMismatch() from None


def require_read_key(internal: Mapping[str, str], customer: CustomerKey | None) -> None:
    """AWS's answers before a read (GET, HEAD, copy source): an SSE-C object needs its key,
    any other object must not be sent one (both 400 InvalidRequest)."""
    if is_ssec(internal) and customer is None:
        raise InvalidRequest(ENCRYPTED_OBJECT)
    if customer is not None and not is_ssec(internal):
        raise InvalidRequest(NOT_APPLICABLE)


def require_part_key(internal: Mapping[str, str], customer: CustomerKey | None) -> None:
    """UploadPart / UploadPartCopy: the parts of an SSE-C upload repeat its key, the parts of
    any other upload carry none (400 InvalidRequest either way)."""
    if is_ssec(internal) != (customer is not None):
        raise InvalidRequest(MULTIPART_ENCRYPTED)


def open_upload_key(
    internal: Mapping[str, str], bucket: str, key: str, customer: CustomerKey
) -> bytes:
    """The OEK of an SSE-C upload; another key than the upload's is AWS's 400 InvalidRequest
    ("did not match the ones used originally"), not the 403 of a read."""
    try:
        return open_object_key(internal, bucket, key, customer)
    except CustomerKeyMismatch:
        raise InvalidRequest(PARAMETERS_MISMATCH) from None


def part_etag(internal: Mapping[str, str], part_key: bytes | None, md5_hex: str) -> str:
    """The ETag of a part of the upload with these entries: its plaintext MD5, except for an
    SSE-C upload, whose part ETags (as AWS's) reveal no digest of the plaintext to whoever can
    list parts without the key: ``HMAC-SHA256(part key, label || md5)``, 32 hex characters,
    so the object's ``md5(part etags)-N`` ETag stays S3-shaped."""
    if part_key is None or not is_ssec(internal):
        return md5_hex
    tag = hmac.new(part_key, _PART_ETAG_LABEL + bytes.fromhex(md5_hex), hashlib.sha256)
    return tag.hexdigest()[:32]
