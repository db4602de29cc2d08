"""The authorisation hook: every S3 request, after SigV4 and routing, before its handler.

:func:`authorize_request` is the one call the dispatcher makes. It finds the principal (root,
a user of the users file, or anonymous for an unsigned request), the operation's action
(:data:`.actions.OPERATIONS`; an operation without a row is denied to all but root: fail
closed), the resource ARN and the condition values of the request, reads the bucket's policy
(non-root requests only, so root pays nothing) and answers ``AccessDenied`` unless
:func:`.evaluate.decide` allows. Copies also need ``s3:GetObject`` on their source;
DeleteObjects asks :func:`key_checker` once and tests each key, because S3 reports a denied
key inside the 200 result instead of failing the request. A handler that authenticates its
own principal (PostObject's form signature) calls :func:`authorize_as` once it knows who it is.

Condition values come from the request as received: ``aws:SecureTransport`` is whether this
connection is TLS, ``aws:SourceIp`` the peer address (behind a TLS-terminating load balancer
both describe the balancer's connection; see docs/security.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from sealstore.s3.errors import S3Error
from sealstore.s3.policy.actions import OPERATIONS
from sealstore.s3.policy.document import Policy, PrincipalSpec, Statement, parse_policy
from sealstore.s3.policy.errors import PolicyError
from sealstore.s3.policy.evaluate import (
    ANONYMOUS,
    Decision,
    Principal,
    Request,
    decide,
    resource_arn,
)
from sealstore.storage.base import NoSuchBucket

if TYPE_CHECKING:
    from sealstore.s3.context import S3Request

POLICY_CONFIG = "policy"  # Store.put_bucket_config kind of the bucket policy
_LIST_OPS = frozenset({"ListObjectsV1", "ListObjectsV2", "ListObjectVersions"})
_HEADER_KEYS = (
    ("s3:x-amz-server-side-encryption", "x-amz-server-side-encryption"),
    (
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-aws-kms-key-id",
    ),
    (
        "s3:x-amz-server-side-encryption-customer-algorithm",
        "x-amz-server-side-encryption-customer-algorithm",
    ),
    ("s3:x-amz-copy-source", "x-amz-copy-source"),
    ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
    ("aws:useragent", "user-agent"),
    ("aws:referer", "referer"),
)
_QUERY_KEYS = (("s3:prefix", "prefix"), ("s3:delimiter", "delimiter"), ("s3:max-keys", "max-keys"))


def principal_of(req: S3Request) -> Principal | None:
    """Who sent ``req``; None for an access key the users file no longer has."""
    auth = req.auth
    if auth.anonymous:
        return ANONYMOUS
    if auth.access_key == req.ctx.settings.root_user:
        return Principal("root", auth.access_key, auth.access_key)
    user = req.ctx.users.current.get(auth.access_key)
    return user.principal() if user is not None else None


def _client_ip(remote: str) -> str:
    """The peer address, IPv4-mapped IPv6 (a dual-stack listener) as plain IPv4, so
    ``"aws:SourceIp": "10.0.0.0/8"`` matches such clients too."""
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else str(addr)


def condition_context(req: S3Request, who: Principal) -> dict[str, list[str]]:
    """The condition keys this request carries (lower-case names, see ``conditions``)."""
    http = req.http
    ctx: dict[str, list[str]] = {
        "aws:securetransport": ["true" if http.secure else "false"],
        "aws:principaltype": [{"anonymous": "Anonymous", "root": "Account"}.get(who.kind, "User")],
    }
    if http.remote:
        ctx["aws:sourceip"] = [_client_ip(http.remote)]
    if who.kind != "anonymous":
        ctx["aws:username"] = [who.name]
        ctx["s3:signatureversion"] = ["AWS4-HMAC-SHA256"]
        ctx["s3:authtype"] = ["REST-QUERY-STRING" if req.auth.presigned else "REST-HEADER"]
    for key, header in _HEADER_KEYS:
        value = req.headers.get(header)
        if value is not None:
            ctx[key] = [value.strip()]
    if req.op in _LIST_OPS:
        for key, param in _QUERY_KEYS:
            value = req.query.get(param)
            if value is not None:
                ctx[key] = [value]
    version = req.query.get("versionId")
    if version is not None:
        ctx["s3:versionid"] = [version]
    return ctx


# What a stored policy that no longer parses (say, after a downgrade) becomes: deny everyone
# but root, rather than dropping its Deny statements (fail closed).
_UNREADABLE = Policy(
    "2012-10-17",
    (Statement("Deny", ("*",), ("*",), principal=PrincipalSpec(everyone=True)),),
)


@lru_cache(maxsize=256)
def _parsed(text: str, bucket: str) -> Policy | None:
    try:
        return parse_policy(text, bucket=bucket)
    except PolicyError:
        return None


async def bucket_policy(req: S3Request, bucket: str | None) -> Policy | None:
    """The bucket's stored policy (parsed once per distinct text), or None."""
    if bucket is None:
        return None
    try:
        text = await req.ctx.storage.get_bucket_config(bucket, POLICY_CONFIG)
    except NoSuchBucket:
        return None  # CreateBucket, or a bucket that is not there: identity policies decide
    if text is None:
        return None
    policy = _parsed(text, bucket)
    if policy is None:
        # Stored documents were validated on PUT; one that no longer parses denies all.
        req.ctx.logger.error(
            "stored bucket policy does not parse; denying all but root", extra={"bucket": bucket}
        )
        return _UNREADABLE
    return policy


def _deny(req: S3Request, who: Principal | None, action: str, resource: str, why: str) -> None:
    req.ctx.logger.info(
        "access denied",
        extra={
            "request_id": req.request_id,
            "principal": who.name if who is not None else req.auth.access_key,
            "principal_type": who.kind if who is not None else "unknown",
            "action": action,
            "resource": resource,
            "decision": why,
        },
    )
    raise S3Error("AccessDenied")


async def _require(
    req: S3Request, who: Principal, action: str, bucket: str | None, key: str | None
) -> None:
    resource = resource_arn(bucket, key)
    facts = Request(action, resource, condition_context(req, who))
    decision = decide(who, facts, await bucket_policy(req, bucket))
    if decision is not Decision.ALLOW:
        _deny(req, who, action, resource, decision.value)


async def authorize_request(req: S3Request) -> None:
    """Raise AccessDenied unless ``req``'s principal may perform its operation."""
    who = principal_of(req)
    if who is not None and who.kind == "root":
        return
    spec = OPERATIONS.get(req.op)
    resource = resource_arn(req.bucket, req.key)
    if who is None or spec is None:
        _deny(req, who, spec.action if spec else req.op, resource, "no-action-or-principal")
        return
    if spec.per_key:
        return
    await _require(req, who, spec.for_request(req.query.get("versionId")), req.bucket, req.key)
    if spec.copy_source:
        from sealstore.s3.handlers.object_request import parse_copy_source

        header = req.headers.get("x-amz-copy-source") or ""
        src_bucket, src_key = parse_copy_source(header)
        versioned = "versionId=" in header.partition("?")[2]
        action = "s3:GetObjectVersion" if versioned else "s3:GetObject"
        await _require(req, who, action, src_bucket, src_key)


async def authorize_as(
    req: S3Request,
    access_key: str | None,
    action: str,
    bucket: str | None,
    key: str | None,
    fields: dict[str, str] | None = None,
) -> None:
    """For a handler that authenticates its own principal (PostObject: the form's SigV4
    credential; None for an unsigned form): AccessDenied unless that principal may do
    ``action`` on the resource. ``fields`` are condition values the request carries outside
    its headers (the form's ``x-amz-server-side-encryption``: pass
    ``{"s3:x-amz-server-side-encryption": value}``); they replace the header-derived ones."""
    if access_key == req.ctx.settings.root_user:
        return
    who: Principal | None = ANONYMOUS
    if access_key is not None:
        user = req.ctx.users.current.get(access_key)
        who = user.principal() if user is not None else None
    resource = resource_arn(bucket, key)
    if who is None:
        _deny(req, who, action, resource, "unknown-principal")
        return
    context = condition_context(req, who)
    context.update({k.lower(): [v] for k, v in (fields or {}).items()})
    decision = decide(who, Request(action, resource, context), await bucket_policy(req, bucket))
    if decision is not Decision.ALLOW:
        _deny(req, who, action, resource, decision.value)


async def key_checker(req: S3Request) -> Callable[[str, str | None], bool]:
    """For per-key operations (DeleteObjects): a test "may this key (version) be deleted?",
    with the bucket policy read once for the whole request."""
    who = principal_of(req)
    if who is not None and who.kind == "root":
        return lambda _key, _version=None: True
    spec = OPERATIONS.get(req.op)
    if who is None or spec is None:
        return lambda _key, _version=None: False
    policy = await bucket_policy(req, req.bucket)
    principal = who

    def allowed(key: str, version: str | None = None) -> bool:
        action = spec.for_request(version)
        facts = Request(action, resource_arn(req.bucket, key), condition_context(req, principal))
        if decide(principal, facts, policy) is Decision.ALLOW:
            return True
        req.ctx.logger.info(
            "access denied",
            extra={"request_id": req.request_id, "action": action, "key": key},
        )
        return False

    return allowed
