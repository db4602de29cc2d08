"""SigV4 parsing and canonicalisation never fail with anything but S3Error.

Proves, on inputs the HTTP layer can deliver (any bytes decoded with surrogateescape), that
``sigv4_parse`` (Authorization header, query parameters, presigned form, payload mode),
``sigv4_canonical`` (URI, query, headers) and the whole ``sigv4.authenticate`` either return
a result or raise the module's own typed ``S3Error`` (a 4xx the app renders), never another
exception (a 500), and that a request signed by botocore still verifies after the fuzzer's
own round trip through the canonicaliser.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from sealstore.s3 import sigv4_canonical as canon
from sealstore.s3 import sigv4_parse as parse
from sealstore.s3.errors import S3Error
from sealstore.s3.sigv4 import authenticate

from .strategies import AMZ_DATE, ANY_TEXT, HEADERISH, HEX64, around, budget, typed

NOW = datetime(2026, 12, 2, tzinfo=UTC)
AK, SK = "fuzzaccesskey", "fuzz-secret-key-0123456789"
GOOD_AUTH = (
    f"AWS4-HMAC-SHA256 Credential={AK}/20261202/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + "a" * 64
)
PAYLOADS = st.one_of(
    st.sampled_from([m.value for m in parse.PayloadMode]),
    HEX64,
    HEADERISH,
    st.none(),
)


def lookup(access_key: str) -> str | None:
    return SK if access_key == AK else None


@st.composite
def header_maps(draw: st.DrawFn) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    headers["host"] = draw(around("127.0.0.1:9000"))
    if draw(st.booleans()):
        headers["x-amz-date"] = draw(AMZ_DATE)
    if draw(st.booleans()):
        headers["date"] = draw(around("Wed, 02 Dec 2026 00:00:00 GMT"))
    payload = draw(PAYLOADS)
    if payload is not None:
        headers["x-amz-content-sha256"] = payload
    for name, value in draw(st.lists(st.tuples(HEADERISH, ANY_TEXT), max_size=4)):
        headers.add(name or "x", value)
    if draw(st.booleans()):
        headers["authorization"] = draw(around(GOOD_AUTH))
    return headers


@st.composite
def presigned_queries(draw: st.DrawFn) -> str:
    fields = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{AK}%2F20261202%2Fus-east-1%2Fs3%2Faws4_request",
        "X-Amz-Date": "20261202T000000Z",
        "X-Amz-Expires": "300",
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": "b" * 64,
    }
    items = []
    for name, value in fields.items():
        if draw(st.integers(0, 5)) == 0:
            continue  # drop a field
        items.append(f"{name}={draw(around(value))}")
    items += [f"{k}={v}" for k, v in draw(st.lists(st.tuples(ANY_TEXT, ANY_TEXT), max_size=3))]
    return "&".join(draw(st.permutations(items)))


@settings(max_examples=budget())
@given(auth=around(GOOD_AUTH), headers=header_maps())
def test_parse_header_auth(auth: str, headers: CIMultiDict[str]) -> None:
    result = typed(parse.parse_header_auth, auth, headers)
    if result is not None:
        assert isinstance(result, parse.ParsedAuth)


@settings(max_examples=budget())
@given(query=st.one_of(presigned_queries(), ANY_TEXT))
def test_query_params_and_presigned(query: str) -> None:
    params = typed(parse.query_params, query)
    if params is not None:
        assert isinstance(params, dict)
        typed(parse.parse_query_auth, params)


@settings(max_examples=budget(0.5))
@given(value=PAYLOADS, presigned=st.booleans())
def test_payload_mode(value: str | None, presigned: bool) -> None:
    typed(parse.payload_mode, value, presigned)


@settings(max_examples=budget())
@given(path=ANY_TEXT, query=st.one_of(ANY_TEXT, presigned_queries()), headers=header_maps())
def test_canonical_parts(path: str, query: str, headers: CIMultiDict[str]) -> None:
    uri = canon.canonical_uri(path)
    assert uri.startswith("/") or path
    canon.canonical_query(query)
    canon.canonical_query(query, exclude="X-Amz-Signature")
    signed = sorted({k.lower() for k in headers})
    text = typed(canon.canonical_headers, headers, signed)
    assert text is None or isinstance(text, str)


@settings(max_examples=budget(2))
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]) | HEADERISH,
    path=around("/bucket/key") | ANY_TEXT,
    query=st.one_of(presigned_queries(), around("list-type=2&prefix=a%2Bb"), ANY_TEXT),
    headers=header_maps(),
)
def test_authenticate_any_request(
    method: str, path: str, query: str, headers: CIMultiDict[str]
) -> None:
    """The whole verifier: any request is either authenticated or refused with S3Error."""
    typed(authenticate, method, path, query, headers, lookup, "us-east-1", NOW)


@settings(max_examples=budget(0.5))
@given(
    key=st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.~/%+ ", min_size=1, max_size=40),
    query=st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10),
        st.text(max_size=20),
        max_size=3,
    ),
)
def test_botocore_signed_request_verifies(key: str, query: dict[str, str]) -> None:
    """A botocore-signed request verifies; flipping one signature digit makes it S3Error."""
    from urllib.parse import quote, urlencode, urlsplit

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = "http://127.0.0.1:9000/bucket/" + quote(key.lstrip("/") or "k", safe="/~")
    if query:
        url += "?" + urlencode(query)
    req = AWSRequest(method="GET", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    signer = S3SigV4Auth(Credentials(AK, SK), "s3", "us-east-1")
    signer.add_auth(req)
    parts = urlsplit(req.url)
    headers: CIMultiDict[str] = CIMultiDict({k: str(v) for k, v in req.headers.items()})
    headers["host"] = parts.netloc
    now = datetime.now(UTC)
    result = authenticate("GET", parts.path, parts.query, headers, lookup, "us-east-1", now)
    assert result.access_key == AK
    auth = headers["authorization"]
    last = auth[-1]
    headers["authorization"] = auth[:-1] + ("0" if last != "0" else "1")
    try:
        authenticate("GET", parts.path, parts.query, headers, lookup, "us-east-1", now)
    except S3Error as exc:
        assert exc.code == "SignatureDoesNotMatch"
    else:
        raise AssertionError("a tampered signature was accepted")
