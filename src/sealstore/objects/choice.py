"""How a new object is encrypted: the request's choice, auto-encryption, the bucket rule.

The HTTP layer parses the request's SSE headers into an :class:`SSEChoice` (`s3/sse_headers.py`)
and validates bucket rules when they are written (`s3/handlers/bucket_encryption.py`); this
module holds the parts the object service needs without importing the HTTP layer: the choice
type, reading the *stored* canonical bucket rule, and the precedence between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from sealstore.objects import metadata as md
from sealstore.objects.errors import BucketConfigUnreadable
from sealstore.objects.metadata import (
    DOMAIN_SSE_C,
    DOMAIN_SSE_KMS,
    DOMAIN_SSE_S3,
    normalize_kms_key_id,
)

ALGORITHM_AES256 = "AES256"
ALGORITHM_KMS = "aws:kms"
# The storage config kind under which a bucket's canonical ServerSideEncryptionConfiguration
# document is kept.
BUCKET_ENCRYPTION_CONFIG = "encryption"


@dataclass(frozen=True)
class CustomerKey:
    """An SSE-C key as a request presented it: the 32 key bytes and their base64 MD5.

    Lives for one request only and is never stored, logged or echoed: ``repr`` shows the MD5
    (what responses echo) and nothing of the key.
    """

    key: bytes = field(repr=False)
    md5_b64: str


@dataclass(frozen=True)
class SSEChoice:
    """How a new object will be encrypted: SSE-S3, SSE-KMS with a key id and context, or
    SSE-C with the request's customer key (which then takes the place of the KMS data key)."""

    kind: str  # DOMAIN_SSE_S3, DOMAIN_SSE_KMS or DOMAIN_SSE_C
    key_id: str | None = None  # SSE-KMS only; None = the KMS default key
    context: dict[str, str] | None = None  # SSE-KMS client context
    customer: CustomerKey | None = None  # SSE-C only
    # SSE-KMS: the key id exactly as the client (or bucket rule) spelt it, ARN or bare id;
    # responses echo this spelling while ``key_id`` (ARN prefix stripped) names the KMS key.
    key_id_given: str | None = None

    @property
    def needs_kms(self) -> bool:
        """SSE-S3 and SSE-KMS ask the KMS for a data key; SSE-C never involves it."""
        return self.kind != DOMAIN_SSE_C


SSE_S3 = SSEChoice(DOMAIN_SSE_S3)


def customer_choice(customer: CustomerKey) -> SSEChoice:
    """The choice of an object sealed under ``customer`` (SSE-C)."""
    return SSEChoice(DOMAIN_SSE_C, customer=customer)


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
    return SSEChoice(DOMAIN_SSE_KMS, key_id, key_id_given=rule.kms_key_id or None)


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


def inherited(internal: Mapping[str, str], *, kms: bool) -> SSEChoice | None:
    """The encryption a copy of an object with these entries keeps when nothing else decides
    (it stays encrypted at rest; an SSE-C source's copy without a new customer key becomes
    SSE-S3 when a KMS exists, as AWS's default encryption would make it)."""
    kind = md.sse_kind(internal)
    if kind == DOMAIN_SSE_S3 or (kms and md.ci_get(internal, md.META_SSEC_SEALED_KEY)):
        return SSE_S3
    if kind == DOMAIN_SSE_KMS:
        return SSEChoice(
            DOMAIN_SSE_KMS,
            md.kms_key_id_of(internal),
            md.stored_client_context(internal) or None,
            key_id_given=md.ci_get(internal, md.META_KMS_KEY_ID_GIVEN),
        )
    return None
