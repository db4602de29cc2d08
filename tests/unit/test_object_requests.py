"""HTTP-side parsing of object requests: GET Range (S3's ignore/416 rules), partNumber,
copy-source ranges, If-* preconditions in RFC 7232 order, SSE request headers -> SSEChoice or
the right S3 error (AWS's codes for unknown methods and KMS key ids without aws:kms), and the
SSE response-header echo (a KMS key id exactly as the client spelt it). SSE-C headers:
tests/unit/test_ssec.py."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict

from sealstore.objects import metadata as md
from sealstore.objects.choice import SSE_S3, SSEChoice
from sealstore.s3 import sse_headers as sh
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.preconditions import (
    ByteRange,
    check_conditions,
    parse_range,
    part_range,
)
from sealstore.storage.base import ObjectMeta, PartMeta

MTIME = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
META = ObjectMeta(bucket="b", key="k", size=100, etag="abc123", last_modified=MTIME.timestamp())


def code_of(fn, *args) -> str:
    with pytest.raises(S3Error) as ei:
        fn(*args)
    return ei.value.code


# ------------------------------------------------------------------------------ Range


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (None, None),
        ("bytes=0-9", ByteRange(0, 10)),
        ("bytes=90-", ByteRange(90, 10)),
        ("bytes=90-1000", ByteRange(90, 10)),  # clipped to the object
        ("bytes=-10", ByteRange(90, 10)),
        ("bytes=-1000", ByteRange(0, 100)),  # suffix longer than the object: all of it
        (" bytes=5-5 ", ByteRange(5, 1)),
        ("bytes=0-1,5-6", None),  # multi-range: ignored, whole object
        ("bytes=9-3", None),  # inverted: ignored
        ("items=0-9", None),
        ("bytes=a-b", None),
        ("bytes=5", None),
    ],
)
def test_parse_range(header: str | None, want: ByteRange | None) -> None:
    assert parse_range(header, 100) == want


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-5", 0)]
)
def test_unsatisfiable_range_is_416_naming_the_size(header: str, size: int) -> None:
    with pytest.raises(S3Error) as ei:
        parse_range(header, size)
    assert (ei.value.code, ei.value.status) == ("InvalidRange", 416)
    assert ei.value.headers["Content-Range"] == f"bytes */{size}"


def test_part_number_ranges() -> None:
    mp = ObjectMeta(
        bucket="b",
        key="k",
        size=30,
        parts=[PartMeta(1, "e1", 10, 0, 0.0), PartMeta(2, "e2", 20, 0, 0.0)],
    )
    assert part_range(None, None, mp) is None
    assert part_range("2", None, mp) == ByteRange(10, 20)
    assert part_range("1", None, META) == ByteRange(0, 100)  # single-part object: part 1
    assert code_of(part_range, "3", None, mp) == "InvalidRange"
    assert code_of(part_range, "2", None, META) == "InvalidRange"
    assert code_of(part_range, "0", None, mp) == "InvalidArgument"
    assert code_of(part_range, "1", "bytes=0-1", mp) == "InvalidRequest"


# ------------------------------------------------------------------------- conditions


def _h(**kw: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in kw.items()})


BEFORE = format_datetime(datetime(2024, 4, 1, tzinfo=UTC), usegmt=True)
AFTER = format_datetime(datetime(2024, 6, 1, tzinfo=UTC), usegmt=True)


@pytest.mark.parametrize(
    ("headers", "want"),
    [
        ({}, None),
        ({"if_match": '"abc123"'}, None),
        ({"if_match": '"other", "abc123"'}, None),
        ({"if_match": "*"}, None),
        ({"if_match": '"other"'}, 412),
        ({"if_unmodified_since": BEFORE}, 412),
        ({"if_unmodified_since": AFTER}, None),
        # If-Match wins over If-Unmodified-Since (RFC 7232 §6 step 2 skipped)
        ({"if_match": '"abc123"', "if_unmodified_since": BEFORE}, None),
        ({"if_none_match": '"abc123"'}, 304),
        ({"if_none_match": 'W/"abc123"'}, 304),
        ({"if_none_match": '"other"'}, None),
        ({"if_modified_since": AFTER}, 304),
        ({"if_modified_since": BEFORE}, None),
        # If-None-Match wins over If-Modified-Since
        ({"if_none_match": '"other"', "if_modified_since": AFTER}, None),
        # a failed If-Match is 412 even when If-None-Match would say 304
        ({"if_match": '"other"', "if_none_match": '"abc123"'}, 412),
        ({"if_modified_since": "not a date"}, None),  # unparseable dates are ignored
    ],
)
def test_check_conditions_order(headers: dict[str, str], want: int | None) -> None:
    assert check_conditions(_h(**headers), META) == want


def test_copy_source_conditions_fail_with_412_only() -> None:
    prefix = "x-amz-copy-source-"
    headers = CIMultiDict({prefix + "if-none-match": '"abc123"'})
    assert check_conditions(headers, META, prefix=prefix, copy=True) == 412
    headers = CIMultiDict({prefix + "if-modified-since": AFTER})
    assert check_conditions(headers, META, prefix=prefix, copy=True) == 412
    assert check_conditions(CIMultiDict({"if-none-match": '"abc123"'}), META, prefix=prefix) is None


# ------------------------------------------------------------------------ SSE headers


def _ctx(doc: object) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


@pytest.mark.parametrize(
    ("headers", "want"),
    [
        ({}, None),
        ({"x-amz-server-side-encryption": "AES256"}, SSE_S3),
        ({"x-amz-server-side-encryption": "aws:kms"}, SSEChoice(md.DOMAIN_SSE_KMS)),
        (
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:my-key",
            },
            SSEChoice(md.DOMAIN_SSE_KMS, "my-key", key_id_given="arn:aws:kms:my-key"),
        ),
        (
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": "k2",
            },
            SSEChoice(md.DOMAIN_SSE_KMS, "k2", key_id_given="k2"),
        ),
        (
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-context": _ctx({"a": "b"}),
            },
            SSEChoice(md.DOMAIN_SSE_KMS, None, {"a": "b"}),
        ),
    ],
)
def test_requested_sse(headers: dict[str, str], want: SSEChoice | None) -> None:
    assert sh.requested_sse(CIMultiDict(headers)) == want


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        # AWS: an unknown method is InvalidArgument "The encryption method specified is not
        # supported" (values are case-sensitive); a KMS key id or context needs aws:kms.
        ({"x-amz-server-side-encryption": "aes256"}, "InvalidArgument"),
        ({"x-amz-server-side-encryption": "AWS:KMS"}, "InvalidArgument"),
        ({"x-amz-server-side-encryption": "DES"}, "InvalidArgument"),
        ({"x-amz-server-side-encryption": ""}, "InvalidArgument"),
        ({"x-amz-server-side-encryption": "aws:kms:dsse"}, "NotImplemented"),
        ({"x-amz-server-side-encryption-aws-kms-key-id": "k2"}, "InvalidArgument"),
        ({"x-amz-server-side-encryption-context": _ctx({"a": "b"})}, "InvalidArgument"),
        (
            {
                "x-amz-server-side-encryption": "AES256",
                "x-amz-server-side-encryption-aws-kms-key-id": "k",
            },
            "InvalidArgument",
        ),
        (
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": " k",
            },
            "InvalidArgument",
        ),
        (
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-context": "not base64!",
            },
            "InvalidArgument",
        ),
        (
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-context": _ctx({"a": 1}),
            },
            "InvalidArgument",
        ),
    ],
)
def test_requested_sse_errors(headers: dict[str, str], code: str) -> None:
    assert code_of(sh.requested_sse, CIMultiDict(headers)) == code


def test_sse_errors_name_the_argument_as_aws() -> None:
    unsupported = CIMultiDict({"x-amz-server-side-encryption": "DES"})
    with pytest.raises(S3Error) as ei:
        sh.requested_sse(unsupported)
    assert ei.value.message == "The encryption method specified is not supported"
    assert ei.value.extra == {
        "ArgumentName": "x-amz-server-side-encryption",
        "ArgumentValue": "DES",
    }
    bare = CIMultiDict({"x-amz-server-side-encryption-aws-kms-key-id": "k2"})
    with pytest.raises(S3Error) as ei:
        sh.requested_sse(bare)
    assert "requires HTTP header x-amz-server-side-encryption : aws:kms" in ei.value.message
    assert ei.value.extra["ArgumentValue"] == "k2"


def test_sse_header_on_reads_is_refused() -> None:
    sse = CIMultiDict({"x-amz-server-side-encryption": "AES256"})
    assert code_of(sh.reject_sse_on_read, sse) == "InvalidArgument"
    sh.reject_sse_on_read(CIMultiDict())


def test_sse_response_headers_echo_the_stored_kind() -> None:
    assert sh.sse_response_headers({}) == {}
    s3 = {md.META_S3_SEALED_KEY: "x"}
    assert sh.sse_response_headers(s3) == {sh.SSE_HEADER: "AES256"}
    kms = {md.META_KMS_SEALED_KEY: "x", md.META_S3_KMS_KEY_ID: "my-key"}
    assert sh.sse_response_headers(kms) == {  # the bare id the client sent (or the default)
        sh.SSE_HEADER: "aws:kms",
        sh.SSE_KMS_KEY_ID_HEADER: "my-key",
    }
    arn = "arn:aws:kms:my-key"
    assert sh.sse_response_headers({**kms, md.META_KMS_KEY_ID_GIVEN: arn}) == {
        sh.SSE_HEADER: "aws:kms",
        sh.SSE_KMS_KEY_ID_HEADER: arn,
    }
