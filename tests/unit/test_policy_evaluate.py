"""Evaluation as S3 does it: root always; otherwise allowed when an identity policy or the
bucket policy allows and no statement in either denies (explicit deny wins, default deny);
anonymous requests only through Principal "*". Wildcards in actions (case-insensitive) and
resources (case-sensitive), NotAction/NotResource/NotPrincipal, policy variables, and every
condition operator family including the absent-key rules the encryption-enforcing policy
relies on, IfExists, ForAnyValue/ForAllValues and IP ranges."""

from __future__ import annotations

import json

import pytest

from sealstore.s3.policy.document import parse_document, parse_policy
from sealstore.s3.policy.evaluate import (
    ANONYMOUS,
    Decision,
    Principal,
    Request,
    decide,
    is_public,
    resource_arn,
)

ALLOW, DENY, NONE = Decision.ALLOW, Decision.EXPLICIT_DENY, Decision.IMPLICIT_DENY
OBJ = resource_arn("b", "docs/a.txt")


def identity(*statements: dict, version: str = "2012-10-17"):
    return parse_document({"Version": version, "Statement": list(statements)})


def bucket(*statements: dict):
    return parse_policy(
        json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), bucket="b"
    )


def user(*policies, name: str = "alice") -> Principal:
    return Principal("user", "AK" + name.upper(), name, tuple(policies))


def allow(
    action: str = "s3:GetObject", resource: str = "arn:aws:s3:::b/*", **extra: object
) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: str = "s3:GetObject", resource: str = "arn:aws:s3:::b/*", **extra: object) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def get(resource: str = OBJ, **ctx: str) -> Request:
    return Request("s3:GetObject", resource, {k.lower(): [v] for k, v in ctx.items()})


def test_root_is_always_allowed() -> None:
    pol = bucket(deny(Principal="*", action="s3:*", resource="arn:aws:s3:::b/*"))
    assert decide(Principal("root", "root", "root"), get(), pol) is ALLOW


def test_default_deny_and_identity_allow() -> None:
    assert decide(user(), get()) is NONE
    assert decide(user(identity(allow())), get()) is ALLOW
    assert decide(user(identity(allow())), Request("s3:PutObject", OBJ)) is NONE


def test_bucket_policy_allows_named_users_and_anonymous() -> None:
    named = bucket(allow(Principal={"AWS": "arn:aws:iam::123456789012:user/alice"}))
    assert decide(user(), get(), named) is ALLOW
    assert decide(user(name="bob"), get(), named) is NONE
    assert decide(ANONYMOUS, get(), named) is NONE
    public = bucket(allow(Principal="*"))
    assert decide(ANONYMOUS, get(), public) is ALLOW
    assert decide(user(name="bob"), get(), public) is ALLOW
    by_key = bucket(allow(Principal={"AWS": ["AKBOB"]}))
    assert decide(user(name="bob"), get(), by_key) is ALLOW


def test_explicit_deny_wins_from_either_side() -> None:
    grants = identity(allow(action="s3:*"))
    assert decide(user(grants, identity(deny())), get()) is DENY
    denies = bucket(deny(Principal={"AWS": "*"}))
    assert decide(user(grants), get(), denies) is DENY
    both = bucket(allow(Principal="*"), deny(Principal="*", resource="arn:aws:s3:::b/docs/*"))
    assert decide(ANONYMOUS, get(), both) is DENY
    assert decide(ANONYMOUS, get(resource_arn("b", "pub/x")), both) is ALLOW


def test_account_principal_denies_users_but_grants_them_nothing() -> None:
    account_allow = bucket(allow(Principal={"AWS": "arn:aws:iam::123456789012:root"}))
    assert decide(user(), get(), account_allow) is NONE
    account_deny = bucket(deny(Principal={"AWS": "123456789012"}))
    assert decide(user(identity(allow())), get(), account_deny) is DENY
    assert (
        decide(
            ANONYMOUS, get(), bucket(allow(Principal="*"), deny(Principal={"AWS": "123456789012"}))
        )
        is ALLOW
    )


def test_not_principal() -> None:
    pol = bucket(
        allow(Principal="*"),
        {
            "Effect": "Deny",
            "NotPrincipal": {"AWS": "AKALICE"},
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b/*",
        },
    )
    assert decide(user(), get(), pol) is ALLOW
    assert decide(user(name="bob"), get(), pol) is DENY
    assert decide(ANONYMOUS, get(), pol) is DENY


@pytest.mark.parametrize(
    ("pattern", "action", "hit"),
    [
        ("s3:*", "s3:GetObject", True),
        ("*", "s3:ListBucket", True),
        ("s3:Get*", "s3:GetObjectVersion", True),
        ("S3:getobject", "s3:GetObject", True),
        ("s3:Get*", "s3:PutObject", False),
        ("s3:?etObject", "s3:GetObject", True),
    ],
)
def test_action_wildcards(pattern: str, action: str, hit: bool) -> None:
    got = decide(user(identity(allow(action=pattern, resource="*"))), Request(action, OBJ))
    assert (got is ALLOW) is hit


@pytest.mark.parametrize(
    ("pattern", "resource", "hit"),
    [
        ("arn:aws:s3:::b/*", resource_arn("b", "x/y/z"), True),
        ("arn:aws:s3:::b/docs/*", resource_arn("b", "docs/a"), True),
        ("arn:aws:s3:::b/docs/*", resource_arn("b", "Docs/a"), False),
        ("arn:aws:s3:::b/*", resource_arn("b"), False),
        ("arn:aws:s3:::b", resource_arn("b"), True),
        ("arn:aws:s3:::b*", resource_arn("bb", "k"), True),
        ("arn:aws:s3:::b/?.txt", resource_arn("b", "a.txt"), True),
        ("arn:aws:s3:::*", resource_arn(None), True),
        ("arn:aws:s3:::b", resource_arn(None), False),
    ],
)
def test_resource_wildcards(pattern: str, resource: str, hit: bool) -> None:
    got = decide(
        user(identity(allow(action="*", resource=pattern))), Request("s3:GetObject", resource)
    )
    assert (got is ALLOW) is hit


def test_not_action_and_not_resource() -> None:
    everything_but_delete = identity(
        {"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": "*"}
    )
    who = user(everything_but_delete)
    assert decide(who, get()) is ALLOW
    assert decide(who, Request("s3:DeleteObject", OBJ)) is NONE
    outside_secret = identity(
        {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::b/secret/*"}
    )
    assert decide(user(outside_secret), get()) is ALLOW
    assert decide(user(outside_secret), get(resource_arn("b", "secret/k"))) is NONE


def test_policy_variables_only_in_2012_documents() -> None:
    home = allow(resource="arn:aws:s3:::b/home/${aws:username}/*")
    assert decide(user(identity(home)), get(resource_arn("b", "home/alice/f"))) is ALLOW
    assert decide(user(identity(home)), get(resource_arn("b", "home/bob/f"))) is NONE
    assert (
        decide(user(identity(home, version="2008-10-17")), get(resource_arn("b", "home/alice/f")))
        is NONE
    )
    # A user name is literal text, never a wildcard.
    assert decide(user(identity(home), name="a*"), get(resource_arn("b", "home/ab/f"))) is NONE


SSE = "s3:x-amz-server-side-encryption"


def test_classic_deny_unencrypted_put_policy() -> None:
    pol = bucket(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::b/*",
        },
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::b/*",
            "Condition": {"StringNotEquals": {SSE: "AES256"}},
        },
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::b/*",
            "Condition": {"Null": {SSE: "true"}},
        },
    )
    put = "s3:PutObject"
    assert decide(user(), Request(put, OBJ, {SSE: ["AES256"]}), pol) is ALLOW
    assert decide(user(), Request(put, OBJ, {SSE: ["aws:kms"]}), pol) is DENY
    assert decide(user(), Request(put, OBJ, {}), pol) is DENY  # absent: StringNotEquals holds


@pytest.mark.parametrize(
    ("condition", "ctx", "holds"),
    [
        ({"StringEquals": {SSE: "AES256"}}, {SSE: "AES256"}, True),
        ({"StringEquals": {SSE: ["aws:kms", "AES256"]}}, {SSE: "AES256"}, True),
        ({"StringEquals": {SSE: "AES256"}}, {}, False),
        ({"StringNotEquals": {SSE: "AES256"}}, {}, True),
        ({"StringNotEquals": {SSE: ["AES256", "aws:kms"]}}, {SSE: "aws:kms"}, False),
        ({"StringEqualsIgnoreCase": {SSE: "aes256"}}, {SSE: "AES256"}, True),
        ({"StringLike": {"s3:prefix": ["home/*", ""]}}, {"s3:prefix": "home/alice/"}, True),
        ({"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "other/"}, False),
        ({"StringNotLike": {"s3:prefix": "secret*"}}, {"s3:prefix": "public/"}, True),
        (
            {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
            {"s3:prefix": "home/alice/x"},
            True,
        ),
        ({"Null": {"s3:prefix": "true"}}, {}, True),
        ({"Null": {"s3:prefix": "false"}}, {}, False),
        ({"Null": {"s3:prefix": False}}, {"s3:prefix": ""}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "false"}, True),
        ({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "false"}, False),
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "10.1.2.3"}, True),
        (
            {"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "127.0.0.1"]}},
            {"aws:SourceIp": "127.0.0.1"},
            True,
        ),
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "11.0.0.1"}, False),
        ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "11.0.0.1"}, True),
        ({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, {"aws:SourceIp": "2001:db8::1"}, True),
        ({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, {"aws:SourceIp": "10.0.0.1"}, False),
        ({"NumericLessThanEquals": {"s3:max-keys": "100"}}, {"s3:max-keys": "50"}, True),
        ({"NumericLessThanEquals": {"s3:max-keys": 100}}, {"s3:max-keys": "500"}, False),
        ({"StringEqualsIfExists": {SSE: "AES256"}}, {}, True),
        ({"StringEqualsIfExists": {SSE: "AES256"}}, {SSE: "aws:kms"}, False),
        ({"ForAnyValue:StringEquals": {SSE: ["AES256"]}}, {}, False),
        ({"ForAllValues:StringEquals": {SSE: ["AES256"]}}, {}, True),
        # All operators and all keys of a block must hold.
        (
            {"StringEquals": {SSE: "AES256"}, "Bool": {"aws:SecureTransport": "true"}},
            {SSE: "AES256", "aws:SecureTransport": "false"},
            False,
        ),
        ({"StringEquals": {SSE: "AES256", "s3:prefix": "a"}}, {SSE: "AES256"}, False),
        # Keys are case-insensitive.
        ({"StringEquals": {"S3:X-Amz-Server-Side-Encryption": "AES256"}}, {SSE: "AES256"}, True),
    ],
)
def test_conditions(condition: dict, ctx: dict, holds: bool) -> None:
    who = user(identity(allow(action="*", resource="*", Condition=condition)))
    got = decide(who, get(**ctx))
    assert (got is ALLOW) is holds


def test_for_all_values_on_several_values() -> None:
    cond = {"ForAllValues:StringLike": {"s3:prefix": ["a*", "b*"]}}
    who = user(identity(allow(action="*", resource="*", Condition=cond)))
    assert (
        decide(who, Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": ["ax", "bx"]}))
        is ALLOW
    )
    assert (
        decide(who, Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": ["ax", "cx"]})) is NONE
    )


def test_policy_status() -> None:
    assert is_public(bucket(allow(Principal="*")))
    assert not is_public(bucket(allow(Principal={"AWS": "AKALICE"})))
    restricted = allow(Principal="*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    assert not is_public(bucket(restricted))
    assert not is_public(bucket(deny(Principal="*")))
