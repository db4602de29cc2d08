"""POST policies and POST-form SigV4: parsing (InvalidPolicyDocument cases from ceph's
s3-tests), condition matching (eq, starts-with, empty prefix, Content-Type lists,
case-insensitive names and operators), field coverage, expiry, content-length-range, and the
form signature against a published vector and its failure codes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from sealstore.s3.errors import S3Error
from sealstore.s3.post_policy import parse_policy
from sealstore.s3.sigv4_canonical import derive_signing_key, signature
from sealstore.s3.sigv4_post import is_signed_form, verify_form

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LATER = "2026-05-01T13:00:00.000Z"


def b64(doc: object) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def code_of(exc: pytest.ExceptionInfo[S3Error]) -> tuple[str, int]:
    return exc.value.code, exc.value.status


BASE = [
    {"bucket": "photos"},
    ["starts-with", "$key", "user/"],
    {"acl": "private"},
    ["starts-with", "$Content-Type", "image/"],
    ["content-length-range", 1, 1024],
]
FORM = {
    "bucket": "photos",
    "key": "user/a.jpg",
    "acl": "private",
    "content-type": "image/jpeg",
    "policy": "...",
    "x-amz-signature": "...",
    "file": "",
}


def test_a_matching_form_passes_and_sizes_are_checked() -> None:
    policy = parse_policy(b64({"expiration": LATER, "conditions": BASE}))
    policy.check(FORM, NOW)
    policy.check_size(1024, final=True)
    with pytest.raises(S3Error) as big:
        policy.check_size(1025, final=False)
    assert code_of(big) == ("EntityTooLarge", 400)
    assert big.value.extra["MaxSizeAllowed"] == "1024"
    policy.check_size(0, final=False)  # too small only counts at the end
    with pytest.raises(S3Error) as small:
        policy.check_size(0, final=True)
    assert code_of(small) == ("EntityTooSmall", 400)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": "other/a.jpg"}, 'Policy Condition failed: ["starts-with", "$key", "user/"]'),
        ({"acl": "public-read"}, 'Policy Condition failed: ["eq", "$acl", "private"]'),
        ({"bucket": "else"}, 'Policy Condition failed: ["eq", "$bucket", "photos"]'),
        ({"content-type": "image/png,text/plain"}, "Policy Condition failed"),
        ({"x-amz-meta-extra": "1"}, "Extra input fields: x-amz-meta-extra"),
    ],
)
def test_failures_are_access_denied(change: dict[str, str], message: str) -> None:
    policy = parse_policy(b64({"expiration": LATER, "conditions": BASE}))
    with pytest.raises(S3Error) as exc:
        policy.check({**FORM, **change}, NOW)
    assert code_of(exc) == ("AccessDenied", 403)
    assert exc.value.message.startswith("Invalid according to Policy: " + message)


def test_absent_field_fails_its_condition() -> None:
    policy = parse_policy(b64({"expiration": LATER, "conditions": [["starts-with", "$tag", ""]]}))
    with pytest.raises(S3Error, match="Policy Condition failed"):
        policy.check({}, NOW)
    policy.check({"tag": "anything"}, NOW)  # an empty prefix allows any value


def test_content_type_list_and_case_insensitive_names() -> None:
    conditions = [
        {"bUcKeT": "photos"},
        ["StArTs-WiTh", "$KeY", "user/"],
        {"AcL": "private"},
        ["EQ", "$x-amz-META-a", "1"],
        ["starts-with", "$CoNtEnT-TyPe", "image/"],
    ]
    policy = parse_policy(b64({"expiration": LATER, "conditions": conditions}))
    policy.check({**FORM, "content-type": "image/png, image/gif", "x-amz-meta-a": "1"}, NOW)


def test_exempt_fields_need_no_condition() -> None:
    policy = parse_policy(b64({"expiration": LATER, "conditions": [{"bucket": "b"}]}))
    policy.check(
        {"bucket": "b", "policy": "p", "x-amz-signature": "s", "file": "", "x-ignore-me": "1"},
        NOW,
    )
    with pytest.raises(S3Error, match="Extra input fields: key"):
        policy.check({"bucket": "b", "key": "k"}, NOW)


def test_expiry() -> None:
    policy = parse_policy(b64({"expiration": "2026-05-01T11:59:59Z", "conditions": []}))
    with pytest.raises(S3Error) as exc:
        policy.check({}, NOW)
    assert code_of(exc) == ("AccessDenied", 403)
    assert exc.value.message == "Invalid according to Policy: Policy expired."
    parse_policy(b64({"expiration": "2026-05-01T12:00:01.5Z", "conditions": []})).check({}, NOW)


@pytest.mark.parametrize(
    "doc",
    [
        "not base64 !",
        base64.b64encode(b"{not json").decode(),
        b64(["a list"]),
        b64({"conditions": []}),  # missing expiration
        b64({"expiration": LATER}),  # missing conditions
        b64({"EXPIRATION": LATER, "conditions": []}),  # element names are case-sensitive
        b64({"expiration": LATER, "CONDITIONS": []}),
        b64({"expiration": str(NOW), "conditions": []}),  # not ISO 8601 with T and Z
        b64({"expiration": "2026-13-01T00:00:00Z", "conditions": []}),
        b64({"expiration": LATER, "conditions": {"bucket": "b"}}),
        b64({"expiration": LATER, "conditions": [{}]}),  # empty condition
        b64({"expiration": LATER, "conditions": [{"acl": 1}]}),
        b64({"expiration": LATER, "conditions": [["content-length-range", 0]]}),
        b64({"expiration": LATER, "conditions": [["content-length-range", -1, 0]]}),
        b64({"expiration": LATER, "conditions": [["content-length-range", 5, 1]]}),
        b64({"expiration": LATER, "conditions": [["content-length-range", "a", 1]]}),
        b64({"expiration": LATER, "conditions": [["in", "$key", "a"]]}),
        b64({"expiration": LATER, "conditions": [["eq", "key", "a"]]}),  # no $
        b64({"expiration": LATER, "conditions": [["eq", "$key"]]}),
        b64({"expiration": LATER, "conditions": [["eq", "$key", 5]]}),
        b64({"expiration": LATER, "conditions": ["bucket"]}),
    ],
)
def test_malformed_policies(doc: str) -> None:
    with pytest.raises(S3Error) as exc:
        parse_policy(doc)
    assert code_of(exc) == ("InvalidPolicyDocument", 400)
    assert exc.value.message.startswith("Invalid Policy: ")


def test_ranges_combine_to_the_tightest() -> None:
    conditions = [["content-length-range", 10, 100], ["content-length-range", "20", "50"]]
    policy = parse_policy(b64({"expiration": LATER, "conditions": conditions}))
    assert (policy.min_size, policy.max_size) == (20, 50)


# A published SigV4 POST vector (the s3-post-policy npm package's README): AWS's example keys.
VECTOR_POLICY = (
    "eyJleHBpcmF0aW9uIjoiMjAxMy0wOC0wNlQxMjowMDowMC4wMDBaIiwiY29uZGl0aW9ucyI6W3siYWNsIjoicHVi"
    "bGljLXJlYWQifSxbInN0YXJ0cy13aXRoIiwiJENvbnRlbnQtVHlwZSIsImltYWdlLyJdLFsic3RhcnRzLXdpdGgi"
    "LCIka2V5IiwidXNlci91c2VyMS8iXSxbInN0YXJ0cy13aXRoIiwiJHgtYW16LW1ldGEtdGFnIiwiIl0seyJ4LWFt"
    "ei1tZXRhLXV1aWQiOiIxNDM2NTEyMzY1MTI3NCJ9LHsiYnVja2V0IjoiZXhhbXBsZWJ1Y2tldCJ9LHsieC1hbXot"
    "YWxnb3JpdGhtIjoiQVdTNC1ITUFDLVNIQTI1NiJ9LHsieC1hbXotY3JlZGVudGlhbCI6IkFLSUFJT1NGT0ROTjdF"
    "WEFNUExFLzIwMTMwODA2L3VzLWVhc3QtMS9zMy9hd3M0X3JlcXVlc3QifSx7IngtYW16LWRhdGUiOiIyMDEzMDgw"
    "NlQxMjAwMDBaIn1dfQ=="
)
VECTOR_SIGNATURE = "5bc8a7be4a6fc6445b94d0f4096f8cf3dfa00303529f8a68ea7dc0c23bb83cd9"
ACCESS = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def signed_form(**change: str) -> dict[str, str]:
    fields = {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"{ACCESS}/20130806/us-east-1/s3/aws4_request",
        "x-amz-date": "20130806T120000Z",
        "policy": VECTOR_POLICY,
        "x-amz-signature": VECTOR_SIGNATURE,
    }
    fields.update(change)
    return {k: v for k, v in fields.items() if v != "<absent>"}


def lookup(access_key: str) -> str | None:
    return SECRET if access_key == ACCESS else None


def test_published_vector_verifies() -> None:
    assert is_signed_form(signed_form())
    assert verify_form(signed_form(), lookup, "us-east-1") == ACCESS
    assert (
        verify_form(
            signed_form(**{"x-amz-signature": VECTOR_SIGNATURE.upper()}), lookup, "us-east-1"
        )
        == ACCESS
    )
    # and the policy the vector signs parses, with its expiration
    policy = parse_policy(VECTOR_POLICY)
    assert policy.expiration == datetime(2013, 8, 6, 12, tzinfo=UTC)
    assert len(policy.conditions) == 9


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"x-amz-signature": "0" * 64}, "SignatureDoesNotMatch"),
        ({"policy": VECTOR_POLICY.replace("MjAxMy0w", "MjAxNC0w")}, "SignatureDoesNotMatch"),
        ({"x-amz-credential": "nobody/20130806/us-east-1/s3/aws4_request"}, "InvalidAccessKeyId"),
        (
            {"x-amz-credential": f"{ACCESS}/20130806/eu-west-1/s3/aws4_request"},
            "AuthorizationQueryParametersError",
        ),
        (
            {"x-amz-credential": f"{ACCESS}/20130806/us-east-1/ec2/aws4_request"},
            "AuthorizationQueryParametersError",
        ),
        ({"x-amz-credential": "garbage"}, "AuthorizationQueryParametersError"),
        ({"x-amz-date": "20130807T120000Z"}, "AuthorizationQueryParametersError"),
        ({"x-amz-date": "2013-08-06"}, "AuthorizationQueryParametersError"),
        ({"x-amz-algorithm": "AWS4-HMAC-SHA1"}, "InvalidArgument"),
        ({"x-amz-signature": "<absent>"}, "InvalidArgument"),
        ({"policy": "<absent>"}, "InvalidArgument"),
    ],
)
def test_form_signature_failures(change: dict[str, str], code: str) -> None:
    with pytest.raises(S3Error) as exc:
        verify_form(signed_form(**change), lookup, "us-east-1")
    assert exc.value.code == code


def test_missing_field_message_and_sigv2() -> None:
    with pytest.raises(S3Error) as exc:
        verify_form(signed_form(**{"x-amz-date": "<absent>"}), lookup, "us-east-1")
    assert exc.value.message.startswith("Bucket POST must contain a field named 'x-amz-date'.")
    assert exc.value.extra["ArgumentName"] == "x-amz-date"
    assert not is_signed_form({"key": "k"})
    with pytest.raises(S3Error) as v2:
        is_signed_form({"awsaccesskeyid": ACCESS, "signature": "x", "policy": "p"})
    assert v2.value.code == "InvalidRequest"


def test_signature_is_the_sigv4_key_over_the_policy_text() -> None:
    key = derive_signing_key(SECRET, "20260501", "us-east-1")
    policy = b64({"expiration": LATER, "conditions": []})
    fields = signed_form(
        policy=policy,
        **{
            "x-amz-credential": f"{ACCESS}/20260501/us-east-1/s3/aws4_request",
            "x-amz-date": "20260501T120000Z",
            "x-amz-signature": signature(key, policy),
        },
    )
    assert verify_form(fields, lookup, "us-east-1") == ACCESS
    assert NOW + timedelta(0) < parse_policy(policy).expiration
