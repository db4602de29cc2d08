"""How a new object is encrypted: the request's choice, auto-encryption, the bucket rule.

The HTTP layer parses the request's SSE headers into an :class:`SSEChoice` (`s3/sse_headers.py`)
and validates bucket rules when they are written (`s3/handlers/bucket_encryption.py`); this
module holds the parts the object service needs without importing the HTTP layer: the choice
type, reading the *stored* canonical bucket rule, and the precedence between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree as ET

from sealstore.objects.errors import BucketConfigUnreadable
from sealstore.objects.metadata import DOMAIN_SSE_KMS, DOMAIN_SSE_S3, normalize_kms_key_id

ALGORITHM_AES256 = "AES256"
ALGORITHM_KMS = "aws:kms"
# The storage config kind under which a bucket's canonical ServerSideEncryptionConfiguration
# document is kept.
BUCKET_ENCRYPTION_CONFIG = "encryption"


@dataclass(frozen=True)
class SSEChoice:
    """How a new object will be encrypted: SSE-S3, or SSE-KMS with a key id and context."""

    kind: str  # DOMAIN_SSE_S3 or DOMAIN_SSE_KMS
    key_id: str | None = None  # SSE-KMS only; None = the KMS default key
    context: dict[str, str] | None = None  # SSE-KMS client context


SSE_S3 = SSEChoice(DOMAIN_SSE_S3)


@dataclass(frozen=True)
class SSERule:
    """The single ``ApplyServerSideEncryptionByDefault`` rule a bucket may carry."""

    algorithm: str  # "AES256" or "aws:kms"
    kms_key_id: str | None = None
    bucket_key_enabled: bool | None = None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def read_stored_rule(xml_text: str | None) -> SSERule | None:
    """The bucket rule stored (canonical, validated when written), or None when none is.

    A document that no longer reads raises :class:`BucketConfigUnreadable`: silently treating
    it as "no rule" would store plaintext where the operator asked for encryption.
    """
    if not xml_text:
        return None
    try:
        if "<!DOCTYPE" in xml_text or "<!ENTITY" in xml_text:
            raise ValueError("DTDs are never stored")
        root = ET.fromstring(xml_text)  # noqa: S314 - our own canonical text, DTDs refused
        rule = _find(root, "Rule")
        apply = _find(rule, "ApplyServerSideEncryptionByDefault") if rule is not None else None
        algo = _find(apply, "SSEAlgorithm") if apply is not None else None
        if rule is None or apply is None or algo is None:
            raise ValueError("incomplete encryption configuration")
        if _local(root.tag) != "ServerSideEncryptionConfiguration":
            raise ValueError("incomplete encryption configuration")
        algorithm = (algo.text or "").strip()
        if algorithm not in (ALGORITHM_AES256, ALGORITHM_KMS):
            raise ValueError(f"unknown algorithm {algorithm!r}")
        key_el = _find(apply, "KMSMasterKeyID")
        bke = _find(rule, "BucketKeyEnabled")
    except (ET.ParseError, ValueError) as exc:
        raise BucketConfigUnreadable() from exc
    return SSERule(
        algorithm=algorithm,
        kms_key_id=key_el.text if key_el is not None else None,
        bucket_key_enabled=None if bke is None else (bke.text or "").strip() == "true",
    )


def choice_from_rule(rule: SSERule | None) -> SSEChoice | None:
    """What a bucket rule imposes on a new object that asks for nothing itself."""
    if rule is None:
        return None
    if rule.algorithm == ALGORITHM_AES256:
        return SSE_S3
    key_id = normalize_kms_key_id(rule.kms_key_id) if rule.kms_key_id else None
    return SSEChoice(DOMAIN_SSE_KMS, key_id)


def decide(
    requested: SSEChoice | None,
    *,
    auto_encryption: bool,
    bucket_rule: SSERule | None,
    inherit: SSEChoice | None = None,
) -> SSEChoice | None:
    """Precedence (as MinIO): the request's headers, then MINIO_SSE_AUTO_ENCRYPTION (SSE-S3),
    then the bucket default rule, then ``inherit`` (a copy of an encrypted source stays
    encrypted at rest). None = store unencrypted."""
    if requested is not None:
        return requested
    if auto_encryption:
        return SSE_S3
    return choice_from_rule(bucket_rule) or inherit
