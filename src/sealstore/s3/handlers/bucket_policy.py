"""Bucket policies: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus (``?policy``,
``?policyStatus``).

PUT validates the whole document (``s3/policy/document.py``) against this bucket and the
principals that exist now, and answers ``400 MalformedPolicy`` saying what is wrong, as S3
does; only a valid document is stored (config kind ``"policy"``), exactly as sent, which is
what GET returns. Who may call these is decided before the handler runs, like every request
(``s3:PutBucketPolicy`` ...; root always may).
"""

from __future__ import annotations

from aiohttp import web

from sealstore.s3.context import S3Request
from sealstore.s3.errors import S3Error
from sealstore.s3.policy.authorize import POLICY_CONFIG
from sealstore.s3.policy.document import MAX_BUCKET_POLICY, parse_policy
from sealstore.s3.policy.errors import PolicyError
from sealstore.s3.policy.evaluate import is_public
from sealstore.s3.xml import document, tag


async def _existing_bucket(req: S3Request) -> str:
    bucket = req.bucket
    if not bucket:
        raise S3Error("InvalidRequest", "A bucket name is required for this operation")
    if not await req.ctx.storage.bucket_exists(bucket):
        raise S3Error("NoSuchBucket", resource=bucket)
    return bucket


async def _stored(req: S3Request, bucket: str) -> str:
    text = await req.ctx.storage.get_bucket_config(bucket, POLICY_CONFIG)
    if text is None:
        raise S3Error("NoSuchBucketPolicy", resource=bucket)
    return text


async def put_bucket_policy(req: S3Request) -> web.StreamResponse:
    """PUT /bucket?policy: validate, then store; 204 as S3."""
    bucket = await _existing_bucket(req)
    try:
        data = await req.body().read(MAX_BUCKET_POLICY)
    except S3Error as exc:
        if exc.code != "EntityTooLarge":
            raise
        raise S3Error(
            "MalformedPolicy", "Policy exceeds the maximum allowed document size."
        ) from None
    if not data:
        raise S3Error(
            "MalformedPolicy", "Policies must be valid JSON and the first byte must be '{'"
        )
    known = req.ctx.users.current.known(req.ctx.settings.root_user)
    try:
        policy = parse_policy(data, bucket=bucket, principals=known)
    except PolicyError as exc:
        raise S3Error("MalformedPolicy", str(exc)) from None
    await req.ctx.storage.put_bucket_config(bucket, POLICY_CONFIG, policy.text)
    return req.make_response(204)


async def get_bucket_policy(req: S3Request) -> web.StreamResponse:
    """GET /bucket?policy: the stored document (JSON), or 404 NoSuchBucketPolicy."""
    bucket = await _existing_bucket(req)
    text = await _stored(req, bucket)
    return req.make_response(200, text.encode("utf-8"), content_type="application/json")


async def delete_bucket_policy(req: S3Request) -> web.StreamResponse:
    """DELETE /bucket?policy: 204, also when there was none (as S3)."""
    bucket = await _existing_bucket(req)
    await req.ctx.storage.put_bucket_config(bucket, POLICY_CONFIG, None)
    return req.make_response(204)


async def get_bucket_policy_status(req: S3Request) -> web.StreamResponse:
    """GET /bucket?policyStatus: ``IsPublic`` when an unconditional Allow names everyone."""
    bucket = await _existing_bucket(req)
    text = await _stored(req, bucket)
    try:
        public = is_public(parse_policy(text, bucket=bucket))
    except PolicyError:
        public = False
    return req.xml_response(document("PolicyStatus", tag("IsPublic", public)))
