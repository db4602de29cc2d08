"""One reading of the query string for SigV4 and the handlers (issue 8, item 5), and the bounds
on what SigV4 verification tries and echoes (item 3).

Proves that ``+`` is a space and ``%2B`` a plus for both readers; that any two raw query strings
with the same canonical query (what a signature covers) give the handlers the same parameters,
over 6,000 generated queries mixing ``+``, ``%2B``, ``%20``, spaces, bare names and
invalid UTF-8; that botocore-signed requests with a ``%2B`` rewritten to ``+`` (header and
presigned form) are refused; and that a mismatch tries at most ``MAX_CANDIDATES`` canonical
requests and echoes at most ``MAX_ECHO`` characters of one.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from multidict import CIMultiDict

from sealstore.s3 import sigv4
from sealstore.s3.errors import S3Error
from sealstore.s3.query import query_multidict, query_pairs
from sealstore.s3.sigv4 import MAX_CANDIDATES, MAX_ECHO, authenticate, canonical_query

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
ENDPOINT = "http://127.0.0.1:9000"


def _lookup(ak: str) -> str | None:
    return SK if ak == AK else None


def _verify(url: str, headers: dict[str, str], now: datetime) -> sigv4.AuthResult:
    parts = urlsplit(url)
    hdrs = CIMultiDict(headers)
    hdrs.setdefault("Host", parts.netloc)
    return authenticate("GET", parts.path, parts.query, hdrs, _lookup, REGION, now)


def _amz_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def test_plus_is_a_space_and_percent_2b_a_plus_for_both_readers() -> None:
    raw = "prefix=a+b&marker=a%2Bb&x=a%20b&uploads"
    q = query_multidict(raw)
    assert q["prefix"] == "a b"
    assert q["marker"] == "a+b"
    assert q["x"] == "a b"
    assert q["uploads"] == ""
    assert next(query_pairs(raw)) == (b"prefix", b"a b")
    assert canonical_query(raw) == "marker=a%2Bb&prefix=a%20b&uploads=&x=a%20b"


def test_repeated_parameters_and_invalid_utf8() -> None:
    q = query_multidict("a=1&a=2&k=%FF%FE&%C3%BC=%E2%82%AC")
    assert q.getall("a") == ["1", "2"] and q["a"] == "1"
    assert q["k"] == "\ufffd\ufffd"
    assert q["ü"] == "€"
    assert canonical_query("k=%FF%FE") == "k=%FF%FE"


_PIECES = ["a", "b", "+", "%2B", "%2b", "%20", " ", "%3D", "=", "%26", "~", "%7E", "/", "%FF"]


def _random_query(rng: random.Random) -> str:
    params = []
    for _ in range(rng.randint(0, 4)):
        name = "".join(rng.choice(["p", "q", "+", "%2B", "%20"]) for _ in range(rng.randint(1, 2)))
        value = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 4)))
        params.append(name if rng.random() < 0.1 else f"{name}={value}")
    return "&".join(params)


def test_same_canonical_query_means_same_parameters() -> None:
    """The property the signature relies on: canonical form -> one handler reading."""
    rng = random.Random(8)
    seen: dict[str, list[tuple[str, str]]] = {}
    collisions = 0
    for _ in range(6000):
        raw = _random_query(rng)
        reading = sorted(query_multidict(raw).items())
        canon = canonical_query(raw)
        if canon in seen:
            collisions += 1
            assert seen[canon] == reading, (raw, canon)
        else:
            seen[canon] = reading
    assert collisions > 300  # the generator does produce distinct spellings of one query


def _botocore_header_signed(url: str) -> AWSRequest:
    req = AWSRequest(method="GET", url=url, data=b"")
    S3SigV4Auth(BotoCredentials(AK, SK), "s3", REGION).add_auth(req)
    return req


@pytest.mark.parametrize("param", ["prefix", "marker", "response-content-type"])
def test_header_signed_plus_rewritten_is_refused(param: str) -> None:
    url = f"{ENDPOINT}/bucket?{param}=a%2Bb"
    req = _botocore_header_signed(url)
    headers = dict(req.headers.items())
    now = _amz_time(headers["X-Amz-Date"])
    assert _verify(url, headers, now).access_key == AK
    with pytest.raises(S3Error) as err:
        _verify(url.replace("a%2Bb", "a+b"), headers, now)
    assert err.value.code == "SignatureDoesNotMatch"


def test_presigned_plus_rewritten_is_refused() -> None:
    req = AWSRequest(method="GET", url=f"{ENDPOINT}/bucket?list-type=2&prefix=a%2Bb")
    S3SigV4QueryAuth(BotoCredentials(AK, SK), "s3", REGION, expires=300).add_auth(req)
    url = req.url
    now = _amz_time(url.split("X-Amz-Date=")[1][:16])
    assert _verify(url, {}, now).presigned
    with pytest.raises(S3Error) as err:
        _verify(url.replace("prefix=a%2Bb", "prefix=a+b"), {}, now)
    assert err.value.code == "SignatureDoesNotMatch"


def test_space_signed_as_percent_20_may_be_sent_as_plus() -> None:
    url = f"{ENDPOINT}/bucket?prefix=a%20b"
    req = _botocore_header_signed(url)
    headers = dict(req.headers.items())
    now = _amz_time(headers["X-Amz-Date"])
    assert _verify(url.replace("%20", "+"), headers, now).access_key == AK


def test_mismatch_tries_a_bounded_number_of_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = sigv4.canonical_request

    def counting(*args: str) -> str:
        nonlocal calls
        calls += 1
        return real(*args)

    monkeypatch.setattr(sigv4, "canonical_request", counting)
    # Every alternative form differs: unencoded path characters, a non-canonical query and a
    # header value botocore would trim differently.
    url = f"{ENDPOINT}/bucket/a*b?x=%7e&y=(1)"
    req = _botocore_header_signed(url)
    headers = dict(req.headers.items())
    headers["x-amz-meta-t"] = "a\t b"
    headers["Authorization"] = headers["Authorization"].replace(
        "SignedHeaders=", "SignedHeaders=x-amz-meta-t;"
    )
    headers["Authorization"] = headers["Authorization"][:-64] + "0" * 64
    with pytest.raises(S3Error) as err:
        _verify(url, headers, _amz_time(headers["X-Amz-Date"]))
    assert err.value.code == "SignatureDoesNotMatch"
    assert 1 < calls <= MAX_CANDIDATES


def test_mismatch_echo_is_clipped() -> None:
    url = f"{ENDPOINT}/bucket?prefix=" + "p" * 20000
    req = _botocore_header_signed(url)
    headers = dict(req.headers.items())
    headers["Authorization"] = headers["Authorization"][:-64] + "f" * 5000
    with pytest.raises(S3Error) as err:
        _verify(url, headers, _amz_time(headers["X-Amz-Date"]))
    extra = err.value.extra
    assert len(extra["CanonicalRequest"]) < MAX_ECHO + 100
    assert extra["CanonicalRequest"].endswith("more characters not shown]")
    assert len(extra["SignatureProvided"]) < 200
    assert len(err.value.to_xml("/bucket", "id")) < MAX_ECHO + 2000
