"""SSE request and response headers: parse what a request asks for, echo what an object has.

The HTTP half of server-side encryption. Requests' ``x-amz-server-side-encryption*``
headers become an ``objects.choice.SSEChoice`` (or an S3 error) here; the object service
then decides and does the encryption. Responses echo the object's kind (§6.2) from its
stored metadata. SSE-C (customer keys) is refused clearly, never stored unencrypted.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from sealstore.objects import metadata as md
from sealstore.objects.choice import ALGORITHM_AES256, ALGORITHM_KMS, SSE_S3, SSEChoice
from sealstore.s3.errors import S3Error

SSE_HEADER = "X-Amz-Server-Side-Encryption"
SSE_AES256 = ALGORITHM_AES256
SSE_KMS = ALGORITHM_KMS
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


def reject_ssec(headers: Mapping[str, str], *, copy_source: bool = False) -> None:
    """NotImplemented when the request (or its copy source) carries SSE-C headers."""
    names = SSEC_COPY_HEADERS if copy_source else SSEC_HEADERS
    if any(headers.get(h) is not None for h in names):
        raise S3Error(
            "NotImplemented",
            "SSE-C (customer-provided keys) is not supported by this server; "
            "use SSE-S3 (x-amz-server-side-encryption: AES256)",
        )


def reject_sse_on_read(headers: Mapping[str, str]) -> None:
    """SSE headers make no sense on GET/HEAD: refuse them as S3 does."""
    if headers.get(SSE_HEADER) is not None:
        raise S3Error(
            "InvalidArgument",
            "x-amz-server-side-encryption is only valid on requests that write objects",
        )
    reject_ssec(headers)


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


def requested_sse(headers: Mapping[str, str]) -> SSEChoice | None:
    """The encryption the request asks for in its own headers (validated), or None."""
    value = headers.get(SSE_HEADER)
    key_hdr = headers.get(SSE_KMS_KEY_ID_HEADER)
    ctx_hdr = headers.get(SSE_CONTEXT_HEADER)
    if value is None and key_hdr is None and ctx_hdr is None:
        return None
    if value is None or value.lower() == SSE_KMS:
        if value is not None and value != SSE_KMS:
            raise S3Error("InvalidEncryptionAlgorithmError")
        key_id: str | None = None
        if key_hdr is not None:
            if not key_hdr or key_hdr.strip() != key_hdr:
                raise S3Error(
                    "InvalidArgument",
                    "The KMS key id must not be empty or have leading or trailing spaces",
                )
            key_id = md.normalize_kms_key_id(key_hdr)
        context = _parse_kms_context(ctx_hdr) if ctx_hdr is not None else None
        return SSEChoice(md.DOMAIN_SSE_KMS, key_id, context)
    if value != SSE_AES256:
        raise S3Error("InvalidEncryptionAlgorithmError")
    if key_hdr is not None or ctx_hdr is not None:
        raise S3Error(
            "InvalidArgument",
            "A KMS key id or encryption context requires x-amz-server-side-encryption: aws:kms",
        )
    return SSE_S3


def sse_response_headers(internal: Mapping[str, str]) -> dict[str, str]:
    """The SSE response headers (§6.2) for an object or upload with this stored metadata."""
    kind = md.sse_kind(internal)
    if kind == md.DOMAIN_SSE_S3:
        return {SSE_HEADER: SSE_AES256}
    if kind != md.DOMAIN_SSE_KMS:
        return {}
    out = {SSE_HEADER: SSE_KMS}
    key_id = md.kms_key_id_of(internal)
    if key_id:
        arn = key_id if key_id.startswith(md.KMS_ARN_PREFIX) else md.KMS_ARN_PREFIX + key_id
        out[SSE_KMS_KEY_ID_HEADER] = arn
    return out
