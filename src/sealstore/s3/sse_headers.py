"""SSE request and response headers: parse what a request asks for, echo what an object has.

The HTTP half of server-side encryption. Requests' ``x-amz-server-side-encryption*``
headers become an ``objects.choice.SSEChoice`` (or an S3 error) here; the SSE-C headers a
``CustomerKey``. The object service then decides and does the encryption. Responses echo the
object's kind (§6.2) from its stored metadata, and for SSE-C the algorithm and the key's MD5
the request presented (the key itself is never echoed, logged or kept).

Checks run in the order AWS was recorded making them: SSE-C beside another method first,
then the algorithm, the key, its MD5 (before the key's length), so a client sees the same
error as from S3. SSE-C needs TLS (AWS refuses it over plain HTTP) unless the operator set
``SEALSTORE_ALLOW_INSECURE_SSEC`` for testing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sealstore.objects import metadata as md
from sealstore.objects.choice import (
    ALGORITHM_AES256,
    ALGORITHM_KMS,
    SSE_S3,
    CustomerKey,
    SSEChoice,
    customer_choice,
)
from sealstore.s3.errors import S3Error

if TYPE_CHECKING:
    from sealstore.s3.context import S3Request

SSE_HEADER = "X-Amz-Server-Side-Encryption"
SSE_AES256 = ALGORITHM_AES256
SSE_KMS = ALGORITHM_KMS
SSE_DSSE = "aws:kms:dsse"
SSE_KMS_KEY_ID_HEADER = "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"
SSE_CONTEXT_HEADER = "X-Amz-Server-Side-Encryption-Context"
SSEC_HEADERS = (
    "X-Amz-Server-Side-Encryption-Customer-Algorithm",
    "X-Amz-Server-Side-Encryption-Customer-Key",
    "X-Amz-Server-Side-Encryption-Customer-Key-Md5",
)
SSEC_COPY_HEADERS = (
    "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Algorithm",
    "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key",
    "X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key-Md5",
)
SSEC_ALGORITHM_RESPONSE = "x-amz-server-side-encryption-customer-algorithm"
SSEC_MD5_RESPONSE = "x-amz-server-side-encryption-customer-key-MD5"

_PREFIX = "Requests specifying Server Side Encryption with Customer provided keys must "
INSECURE = _PREFIX + "be made over a secure connection."
NO_ALGORITHM = _PREFIX + "provide a valid encryption algorithm."
NO_KEY = _PREFIX + "provide an appropriate secret key."
NO_MD5 = _PREFIX + "provide the client calculated MD5 of the secret key."
MD5_MISMATCH = "The calculated MD5 hash of the key did not match the hash that was provided."
INVALID_KEY = "The secret key was invalid for the specified algorithm."
BAD_ALGORITHM = "The Encryption request you specified is not valid. Supported value: AES256."
INCOMPATIBLE = (
    "Server Side Encryption with Customer provided key is incompatible with the encryption "
    "method specified"
)
KMS_REQUIRED = (
    "Server Side Encryption with AWS KMS managed key requires HTTP header "
    "x-amz-server-side-encryption : aws:kms"
)
UNSUPPORTED_METHOD = "The encryption method specified is not supported"
NOT_FOR_READS = "x-amz-server-side-encryption header is not supported for this operation."


def ssec_allowed(req: S3Request) -> bool:
    """SSE-C may be used on this request: it came over TLS, or the operator allowed plain
    HTTP for tests (``SEALSTORE_ALLOW_INSECURE_SSEC``, warned about at start)."""
    return bool(req.http.secure or req.ctx.settings.allow_insecure_ssec)


def _argument(code: str, message: str, name: str, value: str = "null") -> S3Error:
    """AWS's SSE errors name the argument (for SSE-C the ``x-amz-server-side-encryption``
    family) and its value; SSE-C's value is ``null``, never the key."""
    return S3Error(code, message, extra={"ArgumentName": name, "ArgumentValue": value})


def customer_key(
    headers: Mapping[str, str], *, copy_source: bool = False, secure: bool = True
) -> CustomerKey | None:
    """The SSE-C key the request (or, ``copy_source``, its copy source) presents, or None.

    Raises AWS's answers: InvalidRequest over plain HTTP (``secure`` False), InvalidArgument
    for a missing algorithm, key or MD5, an MD5 that does not match, a key that is not base64
    of 32 bytes; InvalidEncryptionAlgorithmError for an algorithm other than AES256.
    """
    names = SSEC_COPY_HEADERS if copy_source else SSEC_HEADERS
    algorithm, key_b64, md5_b64 = (headers.get(n) for n in names)
    if algorithm is None and key_b64 is None and md5_b64 is None:
        return None
    arg = (names[0] if copy_source else SSE_HEADER).lower().removesuffix("-customer-algorithm")
    if not secure:
        raise S3Error("InvalidRequest", INSECURE)
    if algorithm is None:
        raise _argument("InvalidArgument", NO_ALGORITHM, arg)
    if algorithm != ALGORITHM_AES256:
        raise _argument("InvalidEncryptionAlgorithmError", BAD_ALGORITHM, arg, algorithm)
    if key_b64 is None:
        raise _argument("InvalidArgument", NO_KEY, arg)
    if md5_b64 is None:
        raise _argument("InvalidArgument", NO_MD5, arg)
    try:
        raw = base64.b64decode(key_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _argument("InvalidArgument", INVALID_KEY, arg) from None
    computed = base64.b64encode(hashlib.md5(raw, usedforsecurity=False).digest()).decode()
    if not hmac.compare_digest(computed.encode(), md5_b64.strip().encode("utf-8", "replace")):
        raise _argument("InvalidArgument", MD5_MISMATCH, arg)
    if len(raw) != 32:
        raise _argument("InvalidArgument", INVALID_KEY, arg)
    return CustomerKey(raw, computed)


def reject_sse_on_read(headers: Mapping[str, str]) -> None:
    """``x-amz-server-side-encryption`` makes no sense on GET/HEAD: 400, as S3 answers."""
    value = headers.get(SSE_HEADER)
    if value is not None:
        raise _argument("InvalidArgument", NOT_FOR_READS, SSE_HEADER.lower(), value)


def _parse_kms_context(raw: str) -> dict[str, str]:
    try:
        doc = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        doc = None
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        raise S3Error(
            "InvalidArgument",
            f"{SSE_CONTEXT_HEADER} must be base64-encoded JSON of string keys and values",
        )
    return doc


def requested_sse(headers: Mapping[str, str], *, secure: bool = True) -> SSEChoice | None:
    """The encryption the request asks for in its own headers (validated), or None.

    SSE-C (``secure``: see `customer_key`) excludes the other methods; a KMS key id or
    context needs ``aws:kms``; an unknown method is InvalidArgument, as AWS answers.
    """
    value = headers.get(SSE_HEADER)
    key_hdr = headers.get(SSE_KMS_KEY_ID_HEADER)
    ctx_hdr = headers.get(SSE_CONTEXT_HEADER)
    if any(headers.get(h) is not None for h in SSEC_HEADERS):
        if value is not None:
            raise _argument("InvalidArgument", INCOMPATIBLE, SSE_HEADER.lower(), value)
        customer = customer_key(headers, secure=secure)
        if customer is not None and key_hdr is None and ctx_hdr is None:
            return customer_choice(customer)
    if value is None and key_hdr is None and ctx_hdr is None:
        return None
    if value in (None, SSE_AES256):
        if key_hdr is None and ctx_hdr is None:
            return SSE_S3
        name, given = (SSE_KMS_KEY_ID_HEADER, key_hdr)
        if key_hdr is None:
            name, given = (SSE_CONTEXT_HEADER, ctx_hdr)
        raise _argument("InvalidArgument", KMS_REQUIRED, name.lower(), given or "")
    if value == SSE_DSSE:
        raise S3Error("NotImplemented", "DSSE-KMS (aws:kms:dsse) is not supported by this server")
    if value != SSE_KMS:
        raise _argument("InvalidArgument", UNSUPPORTED_METHOD, SSE_HEADER.lower(), value)
    key_id: str | None = None
    if key_hdr is not None:
        if not key_hdr or key_hdr.strip() != key_hdr:
            raise S3Error(
                "InvalidArgument",
                "The KMS key id must not be empty or have leading or trailing spaces",
            )
        key_id = md.normalize_kms_key_id(key_hdr)
    context = _parse_kms_context(ctx_hdr) if ctx_hdr is not None else None
    return SSEChoice(md.DOMAIN_SSE_KMS, key_id, context, key_id_given=key_hdr)


def sse_response_headers(
    internal: Mapping[str, str], customer: CustomerKey | None = None
) -> dict[str, str]:
    """The SSE response headers (§6.2) for an object or upload with this stored metadata.

    SSE-C: the algorithm and the MD5 of the ``customer`` key the request presented. SSE-KMS:
    the key id exactly as the client spelt it (ARN or bare id), else the stored key name.
    """
    if md.ci_get(internal, md.META_SSEC_SEALED_KEY) is not None:
        if customer is None:
            return {}
        return {SSEC_ALGORITHM_RESPONSE: ALGORITHM_AES256, SSEC_MD5_RESPONSE: customer.md5_b64}
    kind = md.sse_kind(internal)
    if kind == md.DOMAIN_SSE_S3:
        return {SSE_HEADER: SSE_AES256}
    if kind != md.DOMAIN_SSE_KMS:
        return {}
    out = {SSE_HEADER: SSE_KMS}
    key_id = md.ci_get(internal, md.META_KMS_KEY_ID_GIVEN) or md.kms_key_id_of(internal)
    if key_id:
        out[SSE_KMS_KEY_ID_HEADER] = key_id
    return out


def write_choice(req: S3Request) -> SSEChoice | None:
    """`requested_sse` for a request that writes an object (PUT, copy destination, upload)."""
    return requested_sse(req.headers, secure=ssec_allowed(req))


def read_key(req: S3Request, *, copy_source: bool = False) -> CustomerKey | None:
    """`customer_key` of a request that reads (GET/HEAD/UploadPart, or its copy source)."""
    return customer_key(req.headers, copy_source=copy_source, secure=ssec_allowed(req))


def response_for(internal: Mapping[str, str], choice: SSEChoice | None) -> dict[str, str]:
    """`sse_response_headers` after a write: SSE-C echoes the key the request chose."""
    return sse_response_headers(internal, choice.customer if choice is not None else None)
