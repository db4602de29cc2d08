"""Decide one request: S3's evaluation for a principal of this server's one account.

The request is allowed when root sent it (root keeps full access), or when no matching
statement in the user's identity policies or the bucket's policy denies it and at least one
allows it; anything else is denied (default deny). Anonymous requests have no identity
policies, so only a bucket-policy statement whose principal includes ``"*"`` can allow them.
Pure functions over already-validated documents: no I/O, cheap enough for every request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from sealstore.s3.policy import conditions
from sealstore.s3.policy.document import Policy, PrincipalSpec, Statement
from sealstore.s3.policy.patterns import substitute, wildcard_match


class Decision(Enum):
    """The outcome; both denials answer AccessDenied, the log tells them apart."""

    ALLOW = "allow"
    IMPLICIT_DENY = "implicit-deny"
    EXPLICIT_DENY = "explicit-deny"


@dataclass(frozen=True)
class Principal:
    """Who signed the request: root, a user of the users file, or nobody (anonymous)."""

    kind: Literal["root", "user", "anonymous"]
    access_key: str = ""
    name: str = ""
    policies: tuple[Policy, ...] = field(default=(), repr=False)


ANONYMOUS = Principal("anonymous")


@dataclass(frozen=True)
class Request:
    """What is being done: the ``s3:`` action, the resource ARN and the condition values
    (lower-case keys; a key is absent when the request does not carry it)."""

    action: str
    resource: str
    context: Mapping[str, Sequence[str]] = field(default_factory=dict)


def principal_matches(spec: PrincipalSpec, who: Principal, effect: str) -> bool:
    """Does a ``Principal`` element name ``who``? (See ``document`` for the names.)"""
    if spec.everyone:
        return True
    if who.kind == "anonymous":
        return False
    if spec.account and (effect == "Deny" or who.kind == "root"):
        return True
    return who.name in spec.users or who.access_key in spec.access_keys


def _variables(who: Principal, req: Request) -> dict[str, str]:
    out = {k: v[0] for k, v in req.context.items() if len(v) == 1}
    if who.kind != "anonymous":
        out["aws:username"] = who.name
    return out


def statement_matches(
    stmt: Statement, who: Principal, req: Request, variables: dict[str, str] | None
) -> bool:
    """Does ``stmt`` apply to this request? ``variables`` is None for documents without
    policy variables (Version 2008-10-17), where ``${...}`` is literal text."""
    if stmt.principal is not None:
        named = principal_matches(stmt.principal, who, stmt.effect)
        if named == stmt.not_principal:
            return False
    hit = any(wildcard_match(a, req.action, ignore_case=True) for a in stmt.actions)
    if hit == stmt.not_action:
        return False
    hit = False
    for pattern in stmt.resources:
        resolved = substitute(pattern, variables) if variables is not None else pattern
        if resolved is not None and wildcard_match(resolved, req.resource):
            hit = True
            break
    if hit == stmt.not_resource:
        return False
    return conditions.holds(stmt.conditions, req.context, variables or {})


def decide(who: Principal, req: Request, bucket_policy: Policy | None = None) -> Decision:
    """Evaluate identity policies and the bucket policy together (see module docstring)."""
    if who.kind == "root":
        return Decision.ALLOW
    variables = _variables(who, req)
    allowed = False
    documents = [*who.policies, *([bucket_policy] if bucket_policy is not None else [])]
    for policy in documents:
        names = variables if policy.variables else None
        for stmt in policy.statements:
            if not statement_matches(stmt, who, req, names):
                continue
            if stmt.effect == "Deny":
                return Decision.EXPLICIT_DENY
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def resource_arn(bucket: str | None, key: str | None = None) -> str:
    """The ARN of a request's resource; ``arn:aws:s3:::*`` for service-level requests
    (ListBuckets), so ``"Resource": "arn:aws:s3:::*"`` grants ListAllMyBuckets as on MinIO."""
    if bucket is None:
        return "arn:aws:s3:::*"
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"


def is_public(policy: Policy) -> bool:
    """GetBucketPolicyStatus: does any Allow statement grant to everyone, unconditionally
    (a condition on aws:SourceIp or similar makes it non-public, roughly as AWS judges)?"""
    for stmt in policy.statements:
        if stmt.effect != "Allow" or stmt.principal is None or stmt.conditions:
            continue
        if stmt.principal.everyone and not stmt.not_principal:
            return True
        if stmt.not_principal and not stmt.principal.everyone:
            return True
    return False
