"""SigV4 verification against botocore's real signers, plus tampering and expiry cases."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from multidict import CIMultiDict

from sealstore.client.signing import Credentials, presign_url, sign_request
from sealstore.s3.errors import S3Error
from sealstore.s3.sigv4 import (
    AuthResult,
    PayloadMode,
    authenticate,
    canonical_query,
    canonical_uri,
)

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
ENDPOINT = "http://127.0.0.1:9000"
SECRETS = {AK: SK, "other": "other-secret"}


def lookup(ak: str) -> str | None:
    return SECRETS.get(ak)


def _botocore_url(bucket: str, key: str, query: str = "") -> str:
    """Path-style URL as botocore's serializer builds it (key quoted with safe '/~')."""
    path = "/" + bucket + ("/" + quote(key, safe="/~") if key else "")
    return ENDPOINT + path + (("?" + query) if query else "")


def _botocore_sign(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    payload: str | None = None,
    secret: str = SK,
) -> AWSRequest:
    req = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    signer = S3SigV4Auth if payload is None else _fixed_payload_signer(payload)
    signer(BotoCredentials(AK, secret), "s3", REGION).add_auth(req)
    return req


def _fixed_payload_signer(payload: str) -> type[S3SigV4Auth]:
    """botocore's S3 signer with the x-amz-content-sha256 value forced (streaming modes)."""

    class FixedPayload(S3SigV4Auth):
        def payload(self, request):  # type: ignore[no-untyped-def]
            return payload

    return FixedPayload


def _host() -> str:
    return urlsplit(ENDPOINT).netloc


def _verify(
    req: AWSRequest,
    *,
    now: datetime | None = None,
    method: str | None = None,
    extra_headers: dict[str, str] | None = None,
    url: str | None = None,
) -> AuthResult:
    parts = urlsplit(url or req.url)
    headers = CIMultiDict(req.headers.items())
    headers.setdefault("Host", _host())
    for k, v in (extra_headers or {}).items():
        headers[k] = v
    when = now or datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return authenticate(
        method or req.method, parts.path, parts.query, headers, lookup, REGION, when
    )


KEYS = [
    "simple.txt",
    "dir/sub/file",
    "with space and+plus=equals",
    "tilde~and-under_score.dot",
    "unicodé/ключ/日本語",
    "percent%2Fliteral",
    "weird !'()*@$&,;:[]",
    "trailing/",
    "a//double//slash/../dot",
]

QUERIES = [
    "",
    "uploads",
    "partNumber=3&uploadId=abc%2Bdef%3D%3D",
    "list-type=2&prefix=a%2Fb&delimiter=%2F",
    "list-type=2&prefix=sp%20ace&start-after=z~",
    "delete",
    "versionId=null",
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("query", QUERIES)
def test_botocore_header_auth_verifies(key: str, query: str) -> None:
    body = b"hello world"
    req = _botocore_sign(
        "PUT", _botocore_url("bucket", key, query), {"Content-Type": "text/plain"}, body
    )
    res = _verify(req)
    assert res.access_key == AK
    assert res.payload_mode is PayloadMode.SIGNED
    assert res.declared_sha256 == hashlib.sha256(body).hexdigest()
    assert not res.presigned
    assert res.scope.endswith("/us-east-1/s3/aws4_request")


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "POST", "PUT"])
def test_methods(method: str) -> None:
    req = _botocore_sign(method, _botocore_url("bkt", "obj"))
    assert _verify(req).payload_mode is PayloadMode.SIGNED


@pytest.mark.parametrize(
    "payload",
    [
        "UNSIGNED-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    ],
)
def test_payload_modes(payload: str) -> None:
    req = _botocore_sign("PUT", _botocore_url("b", "k"), payload=payload)
    res = _verify(req)
    assert res.payload_mode.value == payload
    assert res.declared_sha256 is None
    # The seed signature is the one from the Authorization header.
    assert req.headers["Authorization"].endswith("Signature=" + res.seed_signature)


def test_bucket_level_and_root() -> None:
    for url in (ENDPOINT + "/", ENDPOINT + "/bucket", ENDPOINT + "/bucket?location"):
        req = _botocore_sign("GET", url)
        assert _verify(req).access_key == AK


def test_header_whitespace_and_multivalue() -> None:
    req = _botocore_sign("PUT", _botocore_url("b", "k"), {"x-amz-meta-a": "  two   spaces  here "})
    assert _verify(req).access_key == AK


def test_unencoded_client_path_is_accepted() -> None:
    """A client that sends and signs a path with characters it did not encode (raw form)."""
    creds = Credentials(AK, SK)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    headers = sign_request("GET", ENDPOINT + "/b/k%7Ex", {}, creds, REGION, now)
    # sign_request encodes canonically (~ unescaped); a raw-form signer would have signed %7E.
    res = authenticate("GET", "/b/k%7Ex", "", CIMultiDict(headers), lookup, REGION, now)
    assert res.access_key == AK


# ------------------------------------------------------------------ tampering


def _expect(code: str, fn: object, *args: object, **kwargs: object) -> S3Error:
    with pytest.raises(S3Error) as exc:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert exc.value.code == code, (exc.value.code, exc.value.message)
    return exc.value


def test_tamper_method() -> None:
    req = _botocore_sign("GET", _botocore_url("b", "k"))
    err = _expect("SignatureDoesNotMatch", _verify, req, method="DELETE")
    assert err.status == 403
    assert "CanonicalRequest" in err.extra and "StringToSign" in err.extra


def test_tamper_path() -> None:
    req = _botocore_sign("GET", _botocore_url("b", "k"))
    _expect("SignatureDoesNotMatch", _verify, req, url=_botocore_url("b", "k2"))


def test_tamper_query() -> None:
    req = _botocore_sign("GET", _botocore_url("b", "", "list-type=2&prefix=a"))
    _expect(
        "SignatureDoesNotMatch", _verify, req, url=_botocore_url("b", "", "list-type=2&prefix=b")
    )
    _expect(
        "SignatureDoesNotMatch",
        _verify,
        req,
        url=_botocore_url("b", "", "list-type=2&prefix=a&max-keys=1"),
    )


def test_tamper_signed_header() -> None:
    req = _botocore_sign("PUT", _botocore_url("b", "k"), {"Content-Type": "text/plain"})
    _expect("SignatureDoesNotMatch", _verify, req, extra_headers={"Content-Type": "text/html"})


def test_tamper_payload_hash() -> None:
    req = _botocore_sign("PUT", _botocore_url("b", "k"), body=b"x")
    _expect(
        "SignatureDoesNotMatch",
        _verify,
        req,
        extra_headers={"X-Amz-Content-SHA256": hashlib.sha256(b"y").hexdigest()},
    )


def test_tamper_signature() -> None:
    req = _botocore_sign("GET", _botocore_url("b", "k"))
    auth = req.headers["Authorization"]
    flipped = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    _expect("SignatureDoesNotMatch", _verify, req, extra_headers={"Authorization": flipped})


def test_wrong_secret() -> None:
    req = _botocore_sign("GET", _botocore_url("b", "k"), secret="not-the-secret")
    _expect("SignatureDoesNotMatch", _verify, req)


def test_unknown_access_key() -> None:
    req = _botocore_sign("GET", _botocore_url("b", "k"))
    auth = req.headers["Authorization"].replace(AK, "NOSUCHKEY")
    err = _expect("InvalidAccessKeyId", _verify, req, extra_headers={"Authorization": auth})
    assert err.status == 403


def test_unsigned_amz_header_rejected() -> None:
    req = _botocore_sign("PUT", _botocore_url("b", "k"))
    err = _expect("AccessDenied", _verify, req, extra_headers={"x-amz-copy-source": "/other/obj"})
    assert "x-amz-copy-source" in err.extra["HeadersNotSigned"]


def test_host_must_be_signed() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    headers = sign_request("GET", ENDPOINT + "/b/k", {}, Credentials(AK, SK), REGION, now)
    headers["Authorization"] = headers["Authorization"].replace(
        "SignedHeaders=host;", "SignedHeaders="
    )
    _expect(
        "AuthorizationHeaderMalformed",
        authenticate,
        "GET",
        "/b/k",
        "",
        CIMultiDict(headers),
        lookup,
        REGION,
        now,
    )


def test_clock_skew() -> None:
    req = _botocore_sign("GET", _botocore_url("b", "k"))
    signed_at = datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert _verify(req, now=signed_at + timedelta(minutes=14)).access_key == AK
    err = _expect("RequestTimeTooSkewed", _verify, req, now=signed_at + timedelta(minutes=16))
    assert err.status == 403
    assert err.extra["ServerTime"] == (signed_at + timedelta(minutes=16)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    _expect("RequestTimeTooSkewed", _verify, req, now=signed_at - timedelta(minutes=16))


_AH = "AWS4-HMAC-SHA256 Credential="
_REST = ", SignedHeaders=host, Signature=00"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (
            "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request",
            "AuthorizationHeaderMalformed",
        ),
        ("AWS4-HMAC-SHA256 garbage", "AuthorizationHeaderMalformed"),
        (
            _AH + "AK/2026/us-east-1/s3/aws4_request" + _REST,
            "AuthorizationHeaderMalformed",
        ),
        (
            _AH + "AK/20260101/us-east-1/ec2/aws4_request" + _REST,
            "AuthorizationHeaderMalformed",
        ),
        (
            _AH + "AK/20260101/eu-west-1/s3/aws4_request" + _REST,
            "AuthorizationHeaderMalformed",
        ),
        (
            _AH + "AK/20251231/us-east-1/s3/aws4_request" + _REST,
            "AuthorizationHeaderMalformed",
        ),
        ("AWS AKIA:c2lnbmF0dXJl", "InvalidRequest"),
        ("Bearer token", "AccessDenied"),
    ],
)
def test_malformed_authorization(authorization: str, code: str) -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    headers = CIMultiDict(
        {
            "Host": _host(),
            "Authorization": authorization,
            "x-amz-date": "20260101T120000Z",
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        }
    )
    err = _expect(code, authenticate, "GET", "/b/k", "", headers, lookup, REGION, now)
    assert err.status in (400, 403)


def test_anonymous_denied() -> None:
    err = _expect(
        "AccessDenied",
        authenticate,
        "GET",
        "/b/k",
        "",
        CIMultiDict({"Host": "h"}),
        lookup,
        REGION,
        datetime.now(UTC),
    )
    assert err.status == 403


def test_missing_content_sha256() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    headers = sign_request("GET", ENDPOINT + "/b/k", {}, Credentials(AK, SK), REGION, now)
    del headers["x-amz-content-sha256"]
    _expect(
        "InvalidRequest", authenticate, "GET", "/b/k", "", CIMultiDict(headers), lookup, REGION, now
    )


def test_bad_content_sha256() -> None:
    req = _botocore_sign("PUT", _botocore_url("b", "k"), payload="not-a-hash")
    _expect("InvalidArgument", _verify, req)


def test_date_header_fallback() -> None:
    """SigV4 allows Date instead of x-amz-date; the string to sign uses its ISO form."""
    req = AWSRequest(
        method="GET", url=_botocore_url("b", "k"), headers={"Date": "Fri, 02 Jan 2026 03:04:05 GMT"}
    )
    # botocore keeps a Date header (re-stamped to now) and then signs it, not x-amz-date.
    S3SigV4Auth(BotoCredentials(AK, SK), "s3", REGION).add_auth(req)
    assert "X-Amz-Date" not in req.headers
    assert "SignedHeaders=date;" in req.headers["Authorization"]
    headers = CIMultiDict(req.headers.items())
    headers.setdefault("Host", _host())
    now = parsedate_to_datetime(req.headers["Date"])
    assert authenticate("GET", "/b/k", "", headers, lookup, REGION, now).access_key == AK
    headers["Date"] = "Sat, 03 Jan 2026 03:04:05 GMT"
    _expect(
        "AuthorizationHeaderMalformed",
        authenticate,
        "GET",
        "/b/k",
        "",
        headers,
        lookup,
        REGION,
        now,
    )


# ------------------------------------------------------------------ presigned


def _botocore_presign(
    method: str, url: str, expires: int = 3600, headers: dict[str, str] | None = None
) -> AWSRequest:
    req = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    S3SigV4QueryAuth(BotoCredentials(AK, SK), "s3", REGION, expires=expires).add_auth(req)
    return req


def _presigned_time(url: str) -> datetime:
    q = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))
    return datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _verify_presigned(
    url: str, now: datetime, method: str = "GET", headers: dict[str, str] | None = None
) -> AuthResult:
    parts = urlsplit(url)
    h = CIMultiDict({"Host": parts.netloc, **(headers or {})})
    return authenticate(method, parts.path, parts.query, h, lookup, REGION, now)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    "query", ["", "partNumber=1&uploadId=x%2By", "response-content-type=text%2Fplain"]
)
def test_botocore_presigned_verifies(key: str, query: str) -> None:
    req = _botocore_presign("GET", _botocore_url("bucket", key, query))
    res = _verify_presigned(req.url, _presigned_time(req.url) + timedelta(seconds=5))
    assert res.presigned
    assert res.payload_mode is PayloadMode.UNSIGNED


def test_presigned_with_signed_header() -> None:
    req = _botocore_presign(
        "PUT", _botocore_url("b", "k"), headers={"x-amz-server-side-encryption": "AES256"}
    )
    now = _presigned_time(req.url)
    assert _verify_presigned(req.url, now, "PUT", {"x-amz-server-side-encryption": "AES256"})
    _expect(
        "SignatureDoesNotMatch",
        _verify_presigned,
        req.url,
        now,
        "PUT",
        {"x-amz-server-side-encryption": "aws:kms"},
    )


def test_presigned_expiry() -> None:
    req = _botocore_presign("GET", _botocore_url("b", "k"), expires=60)
    t = _presigned_time(req.url)
    assert _verify_presigned(req.url, t + timedelta(seconds=60)).access_key == AK
    err = _expect("AccessDenied", _verify_presigned, req.url, t + timedelta(seconds=61))
    assert err.message == "Request has expired"
    assert err.status == 403
    _expect("AccessDenied", _verify_presigned, req.url, t - timedelta(minutes=20))


def test_presigned_tamper() -> None:
    req = _botocore_presign("GET", _botocore_url("b", "k"))
    now = _presigned_time(req.url)
    _expect("SignatureDoesNotMatch", _verify_presigned, req.url.replace("/b/k", "/b/j"), now)
    _expect("SignatureDoesNotMatch", _verify_presigned, req.url, now, "DELETE")
    _expect(
        "SignatureDoesNotMatch",
        _verify_presigned,
        req.url.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200"),
        now,
    )
    _expect("SignatureDoesNotMatch", _verify_presigned, req.url + "&extra=1", now)
    err = _expect("AccessDenied", _verify_presigned, req.url, now, "GET", {"x-amz-meta-x": "1"})
    assert "HeadersNotSigned" in err.extra


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (
            lambda u: u.replace("X-Amz-Expires=3600", "X-Amz-Expires=604801"),
            "AuthorizationQueryParametersError",
        ),
        (
            lambda u: u.replace("X-Amz-Expires=3600", "X-Amz-Expires=abc"),
            "AuthorizationQueryParametersError",
        ),
        (
            lambda u: u.replace(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1"
            ),
            "AuthorizationQueryParametersError",
        ),
        (lambda u: u.replace("&X-Amz-SignedHeaders=host", ""), "AuthorizationQueryParametersError"),
        (lambda u: u.replace("us-east-1", "eu-west-1"), "AuthorizationQueryParametersError"),
        (lambda u: u.replace(AK, "UNKNOWN"), "InvalidAccessKeyId"),
    ],
)
def test_presigned_bad_parameters(mutate: object, code: str) -> None:
    req = _botocore_presign("GET", _botocore_url("b", "k"))
    _expect(code, _verify_presigned, mutate(req.url), _presigned_time(req.url))  # type: ignore[operator]


# What S3 answers for an X-Amz-Expires that cannot be valid (s3-tests
# test_object_raw_get_x_amz_expires_out_*, test_object_raw_*_authenticated_expired): 403 with
# S3's code and message; a non-number stays a 400 parse error.
EXPIRES_TABLE = [
    ("604801", 403, "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week"),
    ("99999999", 403, "AuthorizationQueryParametersError", "X-Amz-Expires must be less than"),
    ("-1", 403, "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative"),
    ("-7200", 403, "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative"),
    ("0", 403, "AccessDenied", "Request has expired"),
    ("abc", 400, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number"),
    ("-", 400, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number"),
    ("1.5", 400, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number"),
]


@pytest.mark.parametrize(("value", "status", "code", "message"), EXPIRES_TABLE)
def test_presigned_expires_out_of_range(value: str, status: int, code: str, message: str) -> None:
    # Signed with the bad value itself, so only the value (not the signature) is wrong.
    req = AWSRequest(method="GET", url=_botocore_url("b", "k"), headers={})
    auth = S3SigV4QueryAuth(BotoCredentials(AK, SK), "s3", REGION, expires=3600)
    auth._expires = value  # type: ignore[assignment]  # botocore refuses nothing; S3 must
    auth.add_auth(req)
    assert f"X-Amz-Expires={value}" in req.url
    err = _expect(code, _verify_presigned, req.url, _presigned_time(req.url))
    assert err.status == status
    assert err.message.startswith(message), err.message


def test_presigned_expires_boundaries() -> None:
    req = _botocore_presign("GET", _botocore_url("b", "k"), expires=604800)
    t = _presigned_time(req.url)
    assert _verify_presigned(req.url, t + timedelta(seconds=604800)).presigned
    _expect("AccessDenied", _verify_presigned, req.url, t + timedelta(seconds=604801))


def test_both_auth_mechanisms_rejected() -> None:
    req = _botocore_presign("GET", _botocore_url("b", "k"))
    _expect(
        "InvalidArgument",
        _verify_presigned,
        req.url,
        _presigned_time(req.url),
        "GET",
        {"Authorization": "AWS4-HMAC-SHA256 Credential=x"},
    )


def test_sigv2_query_rejected() -> None:
    _expect(
        "InvalidRequest",
        authenticate,
        "GET",
        "/b/k",
        "AWSAccessKeyId=AK&Signature=abc&Expires=1",
        CIMultiDict({"Host": "h"}),
        lookup,
        REGION,
        datetime.now(UTC),
    )


# ------------------------------------------------------------------ own signers


def test_presign_url_helper_matches_botocore() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    url = presign_url(
        "GET",
        _botocore_url("bucket", "a b/c~d", "partNumber=2"),
        Credentials(AK, SK),
        REGION,
        now,
        expires=300,
    )
    res = _verify_presigned(url, now + timedelta(seconds=1))
    assert res.presigned and res.access_key == AK
    _expect("AccessDenied", _verify_presigned, url, now + timedelta(seconds=301))


def test_sign_request_helper_equals_botocore_signature() -> None:
    """Our signer and botocore produce the same signature for the same request."""
    req = _botocore_sign(
        "PUT",
        _botocore_url("bucket", "x y+z", "partNumber=1&uploadId=u"),
        {"Content-Type": "application/octet-stream"},
        b"data",
    )
    now = datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sign_request(
        "PUT",
        req.url,
        {"Content-Type": "application/octet-stream", "Host": _host()},
        Credentials(AK, SK),
        REGION,
        now,
        payload_sha256=hashlib.sha256(b"data").hexdigest(),
    )
    assert (
        ours["Authorization"].split("Signature=")[1]
        == req.headers["Authorization"].split("Signature=")[1]
    )


def test_canonical_forms() -> None:
    assert canonical_uri("/b/a%20b+c~d%7E") == "/b/a%20b%2Bc~d~"
    assert canonical_uri("") == "/"
    assert canonical_uri("/b/a//b/../c") == "/b/a//b/../c"
    assert canonical_query("uploads") == "uploads="
    assert canonical_query("b=2&a=1&a=0") == "a=0&a=1&b=2"
    assert canonical_query("prefix=a/b&x=%7e") == "prefix=a%2Fb&x=~"
    assert canonical_query("a=1&X-Amz-Signature=s", exclude="X-Amz-Signature") == "a=1"


def test_aws_documented_get_object_vector() -> None:
    """AWS S3 docs 'Example: GET Object' (sig-v4-header-based-auth) fixed vector."""
    headers = CIMultiDict(
        {
            "Host": "examplebucket.s3.amazonaws.com",
            "Range": "bytes=0-9",
            "x-amz-content-sha256": hashlib.sha256(b"").hexdigest(),
            "x-amz-date": "20130524T000000Z",
            "Authorization": _AH + "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            "aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        }
    )
    now = datetime(2013, 5, 24, 0, 1, tzinfo=UTC)
    res = authenticate("GET", "/test.txt", "", headers, lookup, REGION, now)
    assert res.access_key == AK
    assert res.signing_key  # derived, used for chunk signatures


def test_raw_non_utf8_path_bytes() -> None:
    """aiohttp hands undecodable request bytes over as surrogates; they must verify, not crash."""
    now = datetime(2026, 1, 2, tzinfo=UTC)
    headers = sign_request("GET", ENDPOINT + "/b/%FF%20x", {}, Credentials(AK, SK), REGION, now)
    res = authenticate("GET", "/b/\udcff x", "", CIMultiDict(headers), lookup, REGION, now)
    assert res.access_key == AK
    headers["x-amz-meta-odd"] = "\udcfe"
    err = _expect(
        "AccessDenied",
        authenticate,
        "GET",
        "/b/\udcff x",
        "",
        CIMultiDict(headers),
        lookup,
        REGION,
        now,
    )
    assert "x-amz-meta-odd" in err.extra["HeadersNotSigned"]


def test_header_with_tab_signed_by_botocore() -> None:
    req = _botocore_sign("PUT", _botocore_url("b", "k"), {"x-amz-meta-t": "a\tb   c"})
    assert _verify(req).access_key == AK


def test_error_document_redacts_key_material() -> None:
    key = "c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcy1sb25nISE="
    req = _botocore_sign(
        "GET", _botocore_url("b", "k"), {"x-amz-server-side-encryption-customer-key": key}
    )
    err = _expect("SignatureDoesNotMatch", _verify, req, method="DELETE")
    assert key not in err.extra["CanonicalRequest"]
    assert "x-amz-server-side-encryption-customer-key:<redacted>" in err.extra["CanonicalRequest"]
    assert key not in err.to_xml("/b/k", "r").decode()


def test_presign_url_with_signed_headers() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sse = {"x-amz-server-side-encryption": "AES256"}
    url = presign_url(
        "PUT", _botocore_url("b", "k"), Credentials(AK, SK), REGION, now, 60, headers=sse
    )
    assert "X-Amz-SignedHeaders=host%3Bx-amz-server-side-encryption" in url
    assert _verify_presigned(url, now, "PUT", sse).presigned
    _expect("AccessDenied", _verify_presigned, url, now, "PUT")  # signed header missing
    _expect(
        "SignatureDoesNotMatch",
        _verify_presigned,
        url,
        now,
        "PUT",
        {"x-amz-server-side-encryption": "aws:kms"},
    )


def test_secrets_stay_out_of_reprs() -> None:
    assert SK not in repr(Credentials(AK, SK))
    req = _botocore_sign("GET", _botocore_url("b", "k"))
    res = _verify(req)
    assert res.signing_key.hex() not in repr(res) and str(res.signing_key) not in repr(res)
