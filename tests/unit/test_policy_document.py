"""Policy validation says what is wrong, in AWS's words, before anything is stored: JSON syntax,
fields, effects, actions (unknown, other services in bucket policies), resources outside the
bucket, actions that apply to none of the statement's resources, principals that do not exist,
condition operators, keys and values; identity policies refuse principals. Valid documents of
both kinds (single statement or list, NotAction/NotResource/NotPrincipal) parse."""

from __future__ import annotations

import json

import pytest

from sealstore.s3.policy.document import KnownPrincipals, parse_document, parse_policy
from sealstore.s3.policy.errors import PolicyError

KNOWN = KnownPrincipals(user_names={"alice"}, access_keys={"AKALICE", "rootkey"})


def bucket_policy(*statements: dict, version: str = "2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def stmt(**fields: object) -> dict:
    base: dict = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}
    base["Resource"] = "arn:aws:s3:::b/*"
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def error(text: str | bytes, bucket: str | None = "b") -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, bucket=bucket, principals=KNOWN)
    return str(info.value)


def test_valid_bucket_policy_parses() -> None:
    text = bucket_policy(
        stmt(Sid="public"),
        stmt(
            Effect="Deny",
            Principal={"AWS": ["arn:aws:iam::123456789012:user/alice", "AKALICE"]},
            Action=["s3:PutObject", "s3:Delete*"],
            Condition={"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
        ),
        stmt(Action="s3:ListBucket", Resource="arn:aws:s3:::b", Principal={"AWS": "*"}),
        stmt(NotPrincipal={"AWS": "123456789012"}, Principal=None, Effect="Deny"),
        stmt(NotAction="s3:GetObject", Action=None, NotResource="arn:aws:s3:::b/x", Resource=None),
    )
    policy = parse_policy(text, bucket="b", principals=KNOWN)
    assert len(policy.statements) == 5 and policy.text == text
    alice = policy.statements[1].principal
    assert alice is not None and alice.users == {"alice"} and alice.access_keys == {"AKALICE"}
    assert policy.statements[3].not_principal and policy.statements[3].principal.account


def test_single_statement_object_is_accepted() -> None:
    doc = {"Version": "2012-10-17", "Statement": stmt()}
    assert len(parse_policy(json.dumps(doc), bucket="b").statements) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "first byte must be '{'"),
        ('{"Statement": [', "invalid Json"),
        (b"\xff{", "valid JSON"),
        ("[]", "first byte must be '{'"),
        ('{"Version": "2012-10-17"}', "Missing required field Statement"),
        ('{"Version": "2012-10-17", "Statement": []}', "Missing required field Statement"),
        ('{"Version": "2020-01-01", "Statement": []}', "valid version string"),
        ('{"Statement": [], "Extra": 1}', "Unknown field Extra"),
    ],
)
def test_document_errors(text: str | bytes, message: str) -> None:
    assert message in error(text)


def test_oversized_bucket_policy_is_refused() -> None:
    big = bucket_policy(*[stmt(Sid=f"s{i}") for i in range(300)]).encode()
    assert len(big) > 20 * 1024
    assert "maximum allowed document size" in error(big)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"Effect": None}, "Missing required field Effect"),
        ({"Effect": "Allw"}, "Invalid effect: Allw"),
        ({"Action": None}, "Missing required field Action"),
        ({"NotAction": "s3:GetObject"}, "both Action and NotAction"),
        ({"Action": "s3:GetObjec"}, "Policy has invalid action"),
        ({"Action": "GetObject"}, "Policy has invalid action"),
        ({"Action": "iam:CreateUser"}, "Policy has invalid action"),
        ({"Action": []}, "Action must be a non-empty string or list"),
        ({"Resource": None}, "Missing required field Resource"),
        ({"Resource": "arn:aws:s3:::other/*"}, "Policy has invalid resource"),
        ({"Resource": "arn:aws:iam::123456789012:user/x"}, "Policy has invalid resource"),
        ({"Resource": "arn:aws:s3:::b"}, "Action does not apply to any resource(s) in statement"),
        (
            {"Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b/*"},
            "Action does not apply to any resource(s) in statement",
        ),
        (
            {"Action": "s3:ListAllMyBuckets", "Resource": "*"},
            "Action does not apply to any resource(s) in statement",
        ),
        ({"Principal": None}, "Missing required field Principal"),
        ({"Principal": {"AWS": "arn:aws:iam::123456789012:user/mallory"}}, "Invalid principal"),
        ({"Principal": {"AWS": "AKNOBODY"}}, "Invalid principal in policy"),
        ({"Principal": {"Service": "s3.amazonaws.com"}}, "Invalid principal in policy"),
        ({"Principal": {"CanonicalUser": "abc"}}, "Invalid principal in policy"),
        ({"Colour": "red"}, "Unknown field Colour"),
        (
            {"Condition": {"StringEqualz": {"s3:prefix": "a"}}},
            "Invalid Condition type : StringEqualz",
        ),
        ({"Condition": {"StringEquals": {"s3:nosuchkey": "a"}}}, "invalid condition key"),
        ({"Condition": {"StringEquals": {"s3:ExistingObjectTag/x": "a"}}}, "invalid condition key"),
        ({"Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.300/8"}}}, "Invalid Condition value"),
        ({"Condition": {"Bool": {"aws:SecureTransport": "yes"}}}, "Invalid Condition value"),
        ({"Condition": {"NumericLessThan": {"s3:max-keys": "ten"}}}, "Invalid Condition value"),
        ({"Condition": {"Null": {"s3:prefix": ["true", "false"]}}}, "Invalid Condition value"),
        ({"Condition": {"NullIfExists": {"s3:prefix": "true"}}}, "Invalid Condition type"),
        ({"Condition": {"StringEquals": {"s3:prefix": {"a": 1}}}}, "Invalid Condition value"),
        ({"Resource": "arn:aws:s3:::b/${aws:nothing}/*"}, "unknown variable"),
    ],
)
def test_statement_errors(fields: dict, message: str) -> None:
    assert message in error(bucket_policy(stmt(**fields)))


def test_duplicate_sids_are_refused() -> None:
    assert "must be unique" in error(bucket_policy(stmt(Sid="a"), stmt(Sid="a")))


def test_wildcard_resources_must_still_be_in_the_bucket() -> None:
    parse_policy(bucket_policy(stmt(Resource="arn:aws:s3:::b*")), bucket="b")
    parse_policy(bucket_policy(stmt(Resource="*")), bucket="b")
    assert "invalid resource" in error(bucket_policy(stmt(Resource="arn:aws:s3:::c*/x")))


def test_wildcard_actions_need_one_that_applies() -> None:
    # s3:* on the bucket ARN is fine (ListBucket applies); s3:Get* on objects too.
    parse_policy(bucket_policy(stmt(Action="s3:*", Resource="arn:aws:s3:::b")), bucket="b")
    parse_policy(bucket_policy(stmt(Action="s3:Get*")), bucket="b")


def test_stored_documents_reparse_without_principal_checks() -> None:
    text = bucket_policy(stmt(Principal={"AWS": "arn:aws:iam::123456789012:user/gone"}))
    assert "Invalid principal" in error(text)
    parse_policy(text, bucket="b")  # a user removed after the PUT simply matches nobody


def test_identity_policies() -> None:
    ok = parse_document(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": "*"},
                {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:::key/x"},
            ],
        }
    )
    assert len(ok.statements) == 2
    with pytest.raises(PolicyError, match="should not specify a principal"):
        parse_document({"Statement": stmt()})
    with pytest.raises(PolicyError, match="must be in ARN format"):
        parse_document({"Statement": stmt(Principal=None, Resource="bucket/*")})
