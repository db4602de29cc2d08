"""Wire-level fuzzing of a real sealstore server process (master-key KMS, loopback).

Proves that Hypothesis-generated HTTP requests (raw request lines, random header names,
values and sizes, query strings, botocore-signed requests with one part mutated after
signing, aws-chunked uploads with mutated framing, XML bodies in several encodings, random
object keys and Range headers) are always answered, within a timeout, with a status below
500 (S3's deliberate 501 NotImplemented aside), and that the server process is still alive
and live after every test. A successful PUT of a fuzzed key reads back byte-exact through
any satisfiable Range.

Control characters in ``response-*`` overrides (issue 8 item 8, once a 500) are generated like
any other input; one fixed case pins the 400 ``InvalidArgument`` answer.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealstore.client.chunked_encoder import encode_aws_chunked
from sealstore.s3.sigv4_canonical import derive_signing_key
from sealstore.s3.sigv4_parse import PayloadMode
from tests.integration.server import REGION, ROOT_PASSWORD, ServerProcess, base_env

from . import wire
from .strategies import ANY_TEXT, DIGITS_TEXT, HEADERISH, budget, mutated, object_keys
from .xmldocs import encoded

MASTER_KEY = "fuzz-key:" + hashlib.sha256(b"sealstore fuzz master").hexdigest()
BUCKET = "fuzz-bucket"
UPLOAD: dict[str, str] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = Path(tmp_path_factory.mktemp("fuzz-server"))
    srv = ServerProcess(
        root / "data", base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY), root / "server.log"
    )
    srv.start()
    try:
        answer = wire.signed_exchange(srv.port, "PUT", f"/{BUCKET}")
        assert answer.status == 200, answer
        answer = wire.signed_exchange(srv.port, "PUT", f"/{BUCKET}/seed", b"0123456789" * 10)
        assert answer.status == 200, answer
        answer = wire.signed_exchange(srv.port, "POST", key_path("mp/obj") + "?uploads")
        assert answer.status == 200, answer
        m = re.search(rb"<UploadId>([^<]+)</UploadId>", answer.body)
        assert m, answer.body
        UPLOAD["id"] = m.group(1).decode()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def still_healthy(server: ServerProcess) -> Iterator[None]:
    """After every test the process runs and /minio/health/live answers 200."""
    yield
    assert server.proc is not None and server.proc.poll() is None, server.log_text()[-3000:]
    assert server.get("/minio/health/live")[0] == 200


def answered(srv: ServerProcess, answer: wire.Answer, what: object) -> None:
    """Answered, below 500, server alive. 501 NotImplemented is S3's deliberate answer for a
    feature it lacks (e.g. ``?list-type`` on an object), not a failure."""
    assert answer.status is not None, f"closed without answering: {what!r}"
    code = answer.headers.get("x-minio-error-code", "")  # HEAD answers carry no body
    deliberate = answer.status == 501 and (
        code == "NotImplemented" or b"<Code>NotImplemented</Code>" in answer.body
    )
    assert answer.status < 500 or deliberate, f"{answer.status} for {what!r}: {answer.body[:500]!r}"
    assert srv.proc is not None and srv.proc.poll() is None, "server died"


def q(text: str, safe: str = "") -> str:
    """Percent-encode any text, lone surrogates included (as their UTF-8-like bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe)


def key_path(key: str) -> str:
    return "/" + BUCKET + "/" + q(key, safe="/~")


HEADER_VALUES = st.one_of(
    ANY_TEXT.map(lambda s: s.replace("\r", "").replace("\n", "")),
    st.integers(0, 9000).map(lambda n: "v" * n),
)
QUERIES = st.one_of(
    st.just(""),
    st.sampled_from(
        ["list-type=2", "uploads", "delete", "location", "encryption", "acl", "prefix=a%2Bb"]
    ),
    st.lists(
        st.tuples(HEADERISH, HEADERISH).map(lambda t: q(t[0]) + "=" + q(t[1])), max_size=4
    ).map("&".join),
    ANY_TEXT.map(lambda s: q(s, safe="=&%+")),
)
METHODS = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH"])


@settings(max_examples=budget(0.6))
@given(
    method=METHODS | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10),
    key=st.none() | object_keys(),
    query=QUERIES,
    headers=st.lists(st.tuples(HEADERISH, HEADER_VALUES), max_size=6),
)
def test_unsigned_requests(
    server: ServerProcess,
    method: str,
    key: str | None,
    query: str,
    headers: list[tuple[str, str]],
) -> None:
    """Anything unauthenticated is answered (403/400/405...), never with a 5xx or a hang."""
    target = (key_path(key) if key is not None else f"/{BUCKET}") + (f"?{query}" if query else "")
    names = [(re.sub(r"[\s:]", "", n) or "x", v) for n, v in headers]
    raw = wire.build(method, target, [("Host", f"127.0.0.1:{server.port}"), *names])
    answered(server, wire.exchange(server.port, raw, head=method == "HEAD"), raw[:300])


@settings(max_examples=budget(0.1))
@given(raw=st.binary(max_size=400) | ANY_TEXT.map(lambda s: s.encode("utf-8", "surrogateescape")))
def test_garbage_on_the_wire(server: ServerProcess, raw: bytes) -> None:
    """Raw bytes instead of HTTP: a 400 or a closed connection, never a hang or a crash."""
    answer = wire.exchange(server.port, raw, half_close=True)
    assert answer.status is None or answer.status < 500, (raw, answer)


MUTATIONS = st.sampled_from(
    ["none", "signature", "date", "path", "query", "header", "drop", "authorization"]
)


@settings(max_examples=budget(0.6))
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE"]),
    key=object_keys(),
    query=QUERIES,
    body=st.binary(max_size=64),
    mutation=MUTATIONS,
    data=st.data(),
)
def test_signed_requests_mutated(
    server: ServerProcess,
    method: str,
    key: str,
    query: str,
    body: bytes,
    mutation: str,
    data: st.DataObject,
) -> None:
    """botocore-signed requests, one part changed after signing: 4xx (or 2xx), never 5xx."""
    target = key_path(key) + (f"?{query}" if query else "")
    body = body if method == "PUT" else b""
    headers = wire.sign(server.port, method, target, body)
    if mutation == "signature":
        headers = [
            (k, v[:-1] + ("0" if v[-1] != "0" else "1")) if k == "Authorization" else (k, v)
            for k, v in headers
        ]
    elif mutation == "authorization":
        headers = [
            (k, data.draw(mutated(v))) if k == "Authorization" else (k, v) for k, v in headers
        ]
    elif mutation == "date":
        headers = [(k, data.draw(mutated(v))) if k == "X-Amz-Date" else (k, v) for k, v in headers]
    elif mutation == "path":
        target = data.draw(mutated(target)).replace(" ", "%20") or "/"
    elif mutation == "query":
        target += ("&" if "?" in target else "?") + q(data.draw(HEADERISH), safe="=&")
    elif mutation == "header":
        headers.append(("x-amz-meta-" + data.draw(st.text("abc", min_size=1)), "v"))
    elif mutation == "drop" and len(headers) > 1:
        headers.pop(data.draw(st.integers(0, len(headers) - 1)))
    headers = [(k, v.replace("\r", "").replace("\n", "")) for k, v in headers]
    raw = wire.build(method, target.replace(" ", "%20"), headers, body)
    answered(server, wire.exchange(server.port, raw, head=method == "HEAD"), raw[:400])


@settings(max_examples=budget(0.4))
@given(key=object_keys(), content=st.binary(max_size=3000), range_=st.data())
def test_put_then_ranged_get(
    server: ServerProcess, key: str, content: bytes, range_: st.DataObject
) -> None:
    """A fuzzed key either is refused (4xx) or stores data that any Range reads back exactly."""
    path = key_path(key)
    put = wire.signed_exchange(server.port, "PUT", path, content)
    answered(server, put, ("PUT", path))
    if put.status != 200:
        return
    first = range_.draw(st.integers(-5, len(content) + 5))
    last = range_.draw(st.none() | st.integers(-5, len(content) + 5))
    spec = range_.draw(
        st.sampled_from(
            [f"bytes={first}-{'' if last is None else last}", f"bytes=-{abs(first)}", "bytes=x"]
        )
        | DIGITS_TEXT.map(lambda s: "bytes=" + s)
    )
    got = wire.signed_exchange(server.port, "GET", path, headers={"Range": spec})
    answered(server, got, ("GET", path, spec))
    if got.status == 206:
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", got.headers["content-range"])
        assert m, got.headers
        lo, hi, total = map(int, m.groups())
        assert total == len(content) and got.body == content[lo : hi + 1]
    elif got.status == 200:
        assert got.body == content
    else:
        assert got.status == 416, got
    answered(server, wire.signed_exchange(server.port, "DELETE", path), ("DELETE", path))


CHUNK_MODES = [PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_UNSIGNED_TRAILER]


@settings(max_examples=budget(0.4))
@given(
    mode=st.sampled_from(CHUNK_MODES),
    chunks=st.lists(st.binary(min_size=1, max_size=200), max_size=4),
    edits=st.lists(st.tuples(st.integers(0, 10**5), st.binary(max_size=4)), max_size=2),
    lie_length=st.booleans(),
)
def test_chunked_uploads(
    server: ServerProcess,
    mode: PayloadMode,
    chunks: list[bytes],
    edits: list[tuple[int, bytes]],
    lie_length: bool,
) -> None:
    """aws-chunked PUTs: intact ones store the data (200), mutated ones answer 4xx."""
    data = b"".join(chunks)
    path = key_path("chunked/obj")
    extra = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data) + (1 if lie_length else 0)),
    }
    if mode.has_trailer:
        extra["x-amz-trailer"] = "x-amz-checksum-crc32"
    headers = wire.sign(server.port, "PUT", path, headers=extra, payload_hash=mode.value)
    auth = dict(headers)["Authorization"]
    seed = auth.rsplit("Signature=", 1)[1]
    amz_date = dict(headers)["X-Amz-Date"]
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/", 1)[1]
    trailers = None
    if mode.has_trailer:
        crc = zlib.crc32(data).to_bytes(4, "big")
        trailers = {"x-amz-checksum-crc32": base64.b64encode(crc).decode()}
    body = b"".join(
        encode_aws_chunked(
            chunks,
            mode,
            signing_key=derive_signing_key(ROOT_PASSWORD, amz_date[:8], REGION),
            seed_signature=seed,
            amz_date=amz_date,
            scope=scope,
            trailers=trailers,
        )
    )
    intact = body
    for at, repl in edits:
        at %= len(body) + 1
        body = body[:at] + repl + body[at + 1 :]
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(body))))
    answer = wire.exchange(server.port, wire.build("PUT", path, headers, body))
    answered(server, answer, body[:300])
    if body == intact and not lie_length:
        assert answer.status == 200, answer


@settings(max_examples=budget(0.5))
@given(
    root=st.sampled_from(["Delete", "CompleteMultipartUpload"]),
    doc=st.data(),
    upload=st.booleans(),
)
def test_xml_bodies(server: ServerProcess, root: str, doc: st.DataObject, upload: bool) -> None:
    """XML bodies in any encoding: answered below 500; any DTD is 400 MalformedXML."""
    text, body = doc.draw(encoded(root))
    if root == "Delete":
        path = f"/{BUCKET}?delete"
    else:
        path = key_path("mp/obj") + "?uploadId=" + (UPLOAD["id"] if upload else "nosuchupload")
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    answer = wire.signed_exchange(server.port, "POST", path, body, {"Content-MD5": md5})
    answered(server, answer, body[:300])
    if "<!DOCTYPE" in text.upper() and answer.status == 200:
        raise AssertionError(f"a DTD body was accepted: {text!r} -> {answer.body[:300]!r}")
    assert b"expanded" not in answer.body and b"root:" not in answer.body


def test_crlf_in_response_content_type_is_invalid_argument(server: ServerProcess) -> None:
    answer = wire.signed_exchange(
        server.port, "GET", f"/{BUCKET}/seed?response-content-type=text%0d%0aX-Evil:%201"
    )
    answered(server, answer, "response-content-type with CRLF")
    assert answer.status == 400 and b"<Code>InvalidArgument</Code>" in answer.body, answer.body
