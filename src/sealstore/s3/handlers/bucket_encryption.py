"""Bucket default encryption: Put/Get/DeleteBucketEncryption.

A bucket rule makes every new object in the bucket SSE encrypted even when the client sends no
SSE header (MinIO and AWS behave the same way). The configuration is validated strictly here and
stored as a *canonical* XML document under the storage config kind ``"encryption"``, so that the
object service only has to read that text (``objects.choice.read_stored_rule``, re-exported here
as ``default_sse_rule``), and GetBucketEncryption returns a stable document whatever spacing the
client used.
"""

from __future__ import annotations

from aiohttp import web

from sealstore.objects.choice import BUCKET_ENCRYPTION_CONFIG as CONFIG_KIND
from sealstore.objects.choice import SSERule
from sealstore.objects.choice import read_stored_rule as default_sse_rule
from sealstore.s3.context import S3Request
from sealstore.s3.errors import S3Error, kms_not_configured
from sealstore.s3.xml import (
    MalformedXMLError,
    child,
    child_text,
    children,
    document,
    local_name,
    parse,
    tag,
    wrap,
)

__all__ = [
    "CONFIG_KIND",
    "SSERule",
    "default_sse_algorithm",
    "default_sse_rule",
    "delete_bucket_encryption",
    "get_bucket_encryption",
    "parse_encryption_config",
    "put_bucket_encryption",
    "render_encryption_config",
]

ALGORITHMS = ("AES256", "aws:kms")
_ARN_PREFIX = "arn:aws:kms:"


def parse_encryption_config(data: bytes) -> SSERule:
    """Validate a ServerSideEncryptionConfiguration body and return its one rule.

    Raises MalformedXMLError for documents that do not match the schema and S3Error
    (InvalidArgument) for well-formed documents whose values S3 refuses, so clients get the
    same code AWS/MinIO would give them.
    """
    root = parse(data, "ServerSideEncryptionConfiguration")
    for el in root:
        if local_name(el) != "Rule":
            raise MalformedXMLError(f"unexpected element {local_name(el)}")
    rules = children(root, "Rule")
    if len(rules) != 1:
        raise S3Error(
            "MalformedXML",
            f"ServerSideEncryptionConfiguration must contain exactly one Rule, got {len(rules)}",
        )
    rule = rules[0]
    allowed = {"ApplyServerSideEncryptionByDefault", "BucketKeyEnabled"}
    for el in rule:
        if local_name(el) not in allowed:
            raise MalformedXMLError(f"unexpected element {local_name(el)} in Rule")
    apply = child(rule, "ApplyServerSideEncryptionByDefault")
    if apply is None:
        raise MalformedXMLError("Rule must contain ApplyServerSideEncryptionByDefault")
    for el in apply:
        if local_name(el) not in ("SSEAlgorithm", "KMSMasterKeyID"):
            raise MalformedXMLError(f"unexpected element {local_name(el)}")
    algorithm = (child_text(apply, "SSEAlgorithm") or "").strip()
    if algorithm not in ALGORITHMS:
        raise S3Error(
            "MalformedXML",
            f"SSEAlgorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}",
        )
    key_id = child_text(apply, "KMSMasterKeyID")
    if algorithm == "AES256" and key_id is not None:
        raise S3Error("InvalidArgument", "KMSMasterKeyID is not allowed with SSEAlgorithm AES256")
    if algorithm == "aws:kms" and key_id is not None:
        if key_id != key_id.strip() or not key_id:
            raise S3Error(
                "InvalidArgument",
                "KMSMasterKeyID must not be empty or have leading or trailing spaces",
            )
        key_id = key_id.removeprefix(_ARN_PREFIX)
        if not key_id:
            raise S3Error("InvalidArgument", "KMSMasterKeyID names no key")
    bke_text = child_text(rule, "BucketKeyEnabled")
    bucket_key: bool | None = None
    if bke_text is not None:
        if bke_text.strip() not in ("true", "false"):
            raise MalformedXMLError("BucketKeyEnabled must be true or false")
        bucket_key = bke_text.strip() == "true"
    return SSERule(algorithm=algorithm, kms_key_id=key_id, bucket_key_enabled=bucket_key)


def render_encryption_config(rule: SSERule) -> bytes:
    """Render the canonical XML document stored for, and returned from, a bucket."""
    apply = wrap(
        "ApplyServerSideEncryptionByDefault",
        [tag("SSEAlgorithm", rule.algorithm), tag("KMSMasterKeyID", rule.kms_key_id)],
    )
    return document(
        "ServerSideEncryptionConfiguration",
        wrap("Rule", [apply, tag("BucketKeyEnabled", rule.bucket_key_enabled)]),
    )


def default_sse_algorithm(xml_text: str | None) -> str | None:
    """SSE algorithm ("AES256" or "aws:kms") a bucket's stored rule imposes, or None.

    The object service reads the same stored text with ``default_sse_rule`` (from
    ``objects.choice``) when a request carries no SSE header of its own.
    """
    rule = default_sse_rule(xml_text)
    return rule.algorithm if rule is not None else None


async def put_bucket_encryption(req: S3Request) -> web.StreamResponse:
    """PUT /bucket?encryption: validate, check the KMS, store the canonical document."""
    from sealstore.s3.handlers.delete_objects import read_xml_body

    bucket = _bucket(req)
    storage = req.ctx.storage
    if not await storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    rule = parse_encryption_config(await read_xml_body(req))
    kms = req.ctx.kms
    if kms is None:
        raise kms_not_configured()
    if rule.algorithm == "aws:kms" and rule.kms_key_id is not None:
        # As MinIO does: prove the key exists and is usable by generating a throw-away data
        # key, so a typo in the key id fails here and not on the first PUT into the bucket.
        await kms.generate_key(rule.kms_key_id, {bucket: bucket})
    await storage.put_bucket_config(bucket, CONFIG_KIND, render_encryption_config(rule).decode())
    return req.make_response(200)


async def get_bucket_encryption(req: S3Request) -> web.StreamResponse:
    """GET /bucket?encryption: the stored rule, or 404 when the bucket has none."""
    bucket = _bucket(req)
    text = await req.ctx.storage.get_bucket_config(bucket, CONFIG_KIND)
    rule = default_sse_rule(text)
    if rule is None:
        raise S3Error("ServerSideEncryptionConfigurationNotFoundError", resource=bucket)
    return req.xml_response(render_encryption_config(rule))


async def delete_bucket_encryption(req: S3Request) -> web.StreamResponse:
    """DELETE /bucket?encryption: remove the rule (204 even when there was none, as S3)."""
    bucket = _bucket(req)
    storage = req.ctx.storage
    if not await storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    await storage.put_bucket_config(bucket, CONFIG_KIND, None)
    return req.make_response(204)


def _bucket(req: S3Request) -> str:
    """The routed bucket name (the router only sends bucket-level requests here)."""
    if not req.bucket:
        raise S3Error("InvalidRequest", "A bucket name is required for this operation")
    return req.bucket
