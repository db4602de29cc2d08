"""S3Error, its catalogue (codes and statuses as AWS documents them), the XML document, and the
one exception table (s3_error_for) for the object service's own errors and MRO lookup."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sealstore.s3.errors import CATALOGUE, S3Error, kms_not_configured, kms_unavailable

# Status codes from the AWS S3 "List of error codes" table (and MinIO for its own code).
AWS_STATUS = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BadRequest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "ExpiredToken": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidEncryptionAlgorithmError": 400,
    "InvalidObjectState": 403,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "InvalidTag": 400,
    "KeyTooLongError": 400,
    "KMS.NotFoundException": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "MissingSecurityHeader": 400,
    "NoSuchBucket": 404,
    "NoSuchBucketPolicy": 404,
    "NoSuchKey": 404,
    "NoSuchTagSet": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "OperationAborted": 409,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "ServerSideEncryptionConfigurationNotFoundError": 404,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "TooManyParts": 400,
    "XAmzContentSHA256Mismatch": 400,
    "XMinioStorageFull": 507,
}


@pytest.mark.parametrize(("code", "status"), sorted(AWS_STATUS.items()))
def test_catalogue_status(code: str, status: int) -> None:
    assert CATALOGUE[code][0] == status
    err = S3Error(code)
    assert err.status == status
    assert err.message == CATALOGUE[code][1] and err.message


def test_every_entry_is_sane() -> None:
    for code, (status, message) in CATALOGUE.items():
        assert 400 <= status <= 599, code
        assert message.strip(), code


def test_default_and_override() -> None:
    err = S3Error("NoSuchKey", resource="/bucket/key")
    assert (err.code, err.status, err.resource) == ("NoSuchKey", 404, "/bucket/key")
    custom = S3Error(
        "InvalidArgument", "Part number must be 1..10000", extra={"ArgumentName": "partNumber"}
    )
    assert custom.message == "Part number must be 1..10000" and custom.status == 400
    assert S3Error("InternalError", status=503).status == 503


def test_unknown_code_needs_status_and_message() -> None:
    with pytest.raises(ValueError, match="unknown S3 error code"):
        S3Error("NoSuchKee")
    err = S3Error("XCustom", "custom message", 418)
    assert (err.status, err.message) == (418, "custom message")


def test_xml_document() -> None:
    err = S3Error(
        "SignatureDoesNotMatch",
        extra={"StringToSign": "AWS4-HMAC-SHA256\n2026<&>", "AWSAccessKeyId": "AK"},
    )
    doc = ET.fromstring(err.to_xml("/bucket/k<e>y&", "REQ123"))
    assert doc.tag == "Error"
    assert doc.findtext("Code") == "SignatureDoesNotMatch"
    assert doc.findtext("Message") == CATALOGUE["SignatureDoesNotMatch"][1]
    assert doc.findtext("Resource") == "/bucket/k<e>y&"
    assert doc.findtext("RequestId") == "REQ123"
    assert doc.findtext("StringToSign") == "AWS4-HMAC-SHA256\n2026<&>"
    assert doc.findtext("AWSAccessKeyId") == "AK"


def test_resource_given_at_raise_wins() -> None:
    doc = ET.fromstring(S3Error("NoSuchBucket", resource="mybucket").to_xml("/mybucket/x", "r"))
    assert doc.findtext("Resource") == "mybucket"


def test_xml_survives_control_characters() -> None:
    """Object keys may contain bytes XML 1.0 cannot carry; the document must still parse."""
    raw = S3Error("NoSuchKey").to_xml("/b/a\x01b\x00c\udcff", "r")
    doc = ET.fromstring(raw)
    assert doc.findtext("Resource") == "/b/a\ufffdb\ufffdc\ufffd"


def test_kms_unavailable() -> None:
    err = kms_unavailable("connection refused")
    assert err.status == 503 and err.code == "ServiceUnavailable"
    assert "KMS is unreachable" in err.message and "connection refused" in err.message
    assert err.headers["Retry-After"].isdigit()


def test_kms_not_configured() -> None:
    err = kms_not_configured()
    assert err.status == 501 and "KMS is not configured" in err.message


def test_str_and_repr() -> None:
    err = S3Error("AccessDenied")
    assert "AccessDenied" in str(err) and "403" in repr(err)


# --------------------------------------------------------------------------- the exception table


def test_object_service_errors_map_to_their_code_and_message() -> None:
    from sealstore.objects import errors as oe
    from sealstore.s3.errors import s3_error_for

    cases = [
        (oe.BadDigest(), "BadDigest", 400, CATALOGUE["BadDigest"][1]),
        (oe.InvalidRequest("copy to itself"), "InvalidRequest", 400, "copy to itself"),
        (oe.KMSNotConfigured(), "NotImplemented", 501, kms_not_configured().message),
        (oe.EntityTooLarge("A part may be at most 5 bytes"), "EntityTooLarge", 400, None),
        (oe.InvalidPartETag(), "InvalidPart", 400, None),
        (oe.BucketConfigUnreadable(), "InternalError", 500, None),
    ]
    for exc, code, status, message in cases:
        err = s3_error_for(exc)
        assert err is not None and (err.code, err.status) == (code, status), exc
        if message is not None:
            assert err.message == message
    too_large = s3_error_for(oe.EntityTooLarge("A part may be at most 5 bytes"))
    assert too_large is not None and too_large.message.endswith("5 bytes")


def test_lookup_follows_the_mro_most_specific_first() -> None:
    from sealstore.kms import base as kms_base
    from sealstore.s3.errors import ERROR_TABLE, s3_error_for

    class CustomLogin(kms_base.KMSLoginError):
        pass

    err = s3_error_for(CustomLogin("KMS login failed: bad secret"))
    assert err is not None and err.message.startswith("KMS login failed")  # not "unreachable"
    err = s3_error_for(kms_base.KMSError("odd"))
    assert err is not None and (err.code, err.message) == ("InternalError", "KMS error: odd")
    same = S3Error("NoSuchKey")
    assert s3_error_for(same) is same
    assert s3_error_for(ValueError("x")) is None
    assert all(isinstance(k, type) for k in ERROR_TABLE)
