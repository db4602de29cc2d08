"""Bounded HTTP inputs against a real server process (issue 8, items 3, 5, 6, 7 and 8).

Proves, with raw sockets for what no SDK would send and boto3 / botocore's signer for signed
requests, that:

* a header section over 8 KiB is refused with a small 400 before any signature work, whatever
  its shape (one huge line, many lines, just over the limit), and the health probe keeps
  answering meanwhile; a wrong signature never echoes more than a bounded canonical request;
* ``+`` in the query means one thing to signature verification and to the handler: a signed
  ``prefix=a%2Bb`` rewritten to ``prefix=a+b`` fails its signature, and a client that sent a
  space as ``+`` (signing ``%20``) gets the space;
* malformed request lines and oversized headers carrying presigned parameters or an
  Authorization header leave no signature, credential or token in the server's log, including
  aiohttp's own error lines;
* an authenticated upload (PutObject or UploadPart) that stops sending is answered
  ``RequestTimeout`` after the configured idle timeout and leaves no temporary file, while one
  that is slow but steady completes;
* a ``response-content-type`` carrying CR/LF is a 400 ``InvalidArgument``, not a 500.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from sealstore.client.signing import Credentials, sign_request
from tests.integration.server import (
    REGION,
    ROOT_PASSWORD,
    ROOT_USER,
    ServerProcess,
    base_env,
)

MASTER_KEY = "hardening-key:" + hashlib.sha256(b"hardening http").hexdigest()
IDLE_TIMEOUT = 2
# What a bounded error may weigh: S3's 4 KiB canonical-request echo plus the document around it.
MAX_ERROR_RESPONSE = 8192


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hardening")
    env = base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY, SEALSTORE_BODY_IDLE_TIMEOUT=str(IDLE_TIMEOUT))
    server = ServerProcess(root / "data", env, root / "server.log").start()
    server.wait_ready()
    yield server
    server.stop()
    log = server.log_text()
    for secret in (ROOT_PASSWORD, MASTER_KEY, MASTER_KEY.split(":")[1]):
        assert secret not in log


@pytest.fixture(scope="module")
def s3(srv: ServerProcess):
    return srv.client()


@pytest.fixture
def bucket(s3) -> str:
    name = f"h-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name)
    return name


def exchange(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before reading all of it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return out


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def error_code(body: bytes) -> str | None:
    return ElementTree.fromstring(body).findtext("Code")


def amz_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def wrong_auth(signed: str, access_key: str = ROOT_USER) -> str:
    day = amz_now()[:8]
    return (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{day}/{REGION}/s3/aws4_request, "
        f"SignedHeaders={signed}, Signature={'0' * 64}"
    )


def request_head(path: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode()


def meta_headers(count: int, size: int) -> list[tuple[str, str]]:
    return [(f"x-amz-meta-h{i}", "v" * size) for i in range(count)]


def signed_head(metas: list[tuple[str, str]]) -> list[tuple[str, str]]:
    names = ";".join(["host", "x-amz-content-sha256", "x-amz-date", *(k for k, _ in metas)])
    return [
        ("x-amz-date", amz_now()),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ("Authorization", wrong_auth(names)),
        *metas,
    ]


# ------------------------------------------------------------------- item 3: header section


@pytest.mark.parametrize(
    ("count", "size"),
    [
        (110, 60000),  # the 6.6 MB block of the attack run: one line is already too long
        (120, 8000),  # ~1 MB in lines each under aiohttp's line limit
        (3, 3000),  # just over 8 KiB in total
    ],
)
def test_oversized_header_section_is_a_small_400(srv: ServerProcess, count: int, size: int):
    metas = meta_headers(count, size)
    answer = exchange(srv.port, request_head("/b/k", signed_head(metas)))
    assert status_of(answer) == 400, answer[:300]
    assert len(answer) < 2048, len(answer)
    if count * size < 1 << 20:  # under aiohttp's own bounds: S3's XML error
        assert error_code(body_of(answer)) == "RequestHeaderSectionTooLarge"


def test_header_section_just_under_the_limit_is_authenticated(srv: ServerProcess) -> None:
    """7 KiB of headers still reach SigV4 (the bound is S3's, not stricter)."""
    metas = meta_headers(2, 3400)
    answer = exchange(srv.port, request_head("/b/k", signed_head(metas)))
    assert status_of(answer) == 403
    assert error_code(body_of(answer)) == "SignatureDoesNotMatch"


def test_health_probe_answers_while_oversized_headers_arrive(srv: ServerProcess) -> None:
    flood = request_head("/b/k", signed_head(meta_headers(110, 60000)))
    stop = threading.Event()
    answers: list[int] = []

    def hammer() -> None:
        while not stop.is_set():
            answers.append(status_of(exchange(srv.port, flood)))

    workers = [threading.Thread(target=hammer) for _ in range(2)]
    for t in workers:
        t.start()
    try:
        probes = []
        for _ in range(10):
            probes.append(srv.get("/minio/health/live")[0])
            time.sleep(0.05)
    finally:
        stop.set()
        for t in workers:
            t.join(60)
    assert probes == [200] * 10
    assert answers and set(answers) == {400}


def test_signature_mismatch_echo_is_bounded(srv: ServerProcess) -> None:
    """A wrong signature over a near-limit request line and header section gets an error of a
    few KiB: the canonical request in it is clipped, the signature provided too."""
    metas = meta_headers(2, 2400)
    head = signed_head(metas)
    head[2] = ("Authorization", head[2][1].replace("0" * 64, "f" * 2000))
    query = "prefix=" + "p" * 7000
    answer = exchange(srv.port, request_head(f"/b?{query}", head))
    assert status_of(answer) == 403
    body = body_of(answer)
    assert error_code(body) == "SignatureDoesNotMatch"
    assert len(body) < MAX_ERROR_RESPONSE, len(body)
    doc = ElementTree.fromstring(body)
    assert len(doc.findtext("CanonicalRequest") or "") < 4200
    assert len(doc.findtext("SignatureProvided") or "") < 200


# ------------------------------------------------------------------- item 5: one query reading


def test_signed_plus_rewritten_to_space_fails_the_signature(s3, bucket: str) -> None:
    for key in ("a+b", "a b"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket, "Prefix": "a+b"})
    assert "prefix=a%2Bb" in url
    ok = requests.get(url, timeout=30)
    assert ok.status_code == 200
    assert "<Key>a%2Bb</Key>" in ok.text or "<Key>a+b</Key>" in ok.text
    rewritten = requests.get(url.replace("prefix=a%2Bb", "prefix=a+b"), timeout=30)
    assert rewritten.status_code == 403, rewritten.text
    assert error_code(rewritten.content) == "SignatureDoesNotMatch"


def test_header_signed_plus_rewritten_fails_the_signature(srv: ServerProcess, bucket: str):
    creds = Credentials(ROOT_USER, ROOT_PASSWORD)
    path = f"/{bucket}?list-type=2&prefix=a%2Bb"
    headers = sign_request("GET", srv.endpoint + path, {}, creds, REGION, datetime.now(UTC))
    good = requests.get(srv.endpoint + path, headers=headers, timeout=30)
    assert good.status_code == 200
    bad = requests.get(srv.endpoint + path.replace("a%2Bb", "a+b"), headers=headers, timeout=30)
    assert bad.status_code == 403
    assert error_code(bad.content) == "SignatureDoesNotMatch"


def test_plus_sent_for_a_signed_space_reads_as_a_space(s3, srv: ServerProcess, bucket: str) -> None:
    """A client that signs ``%20`` but sends ``+`` (URLSearchParams does) gets what it signed."""
    for key in ("a+b", "a b"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    creds = Credentials(ROOT_USER, ROOT_PASSWORD)
    signed_path = f"/{bucket}?list-type=2&prefix=a%20b"
    headers = sign_request("GET", srv.endpoint + signed_path, {}, creds, REGION, datetime.now(UTC))
    sent = srv.endpoint + signed_path.replace("%20", "+")
    resp = requests.get(sent, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    keys = [k.text for k in ElementTree.fromstring(resp.content).iter() if k.tag.endswith("Key")]
    assert keys == ["a b"]


# ------------------------------------------------------------------- item 6: nothing in logs

CLOSE = "Host: x\r\nConnection: close\r\n"
SIG_MARK = "5eed" * 16
CRED_MARK = "AKIDLOGMARK7"
TOKEN_MARK = "TOKENLOGMARK9"


def _presigned_query() -> str:
    day = amz_now()[:8]
    return (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={CRED_MARK}%2F{day}%2F{REGION}%2Fs3%2Faws4_request"
        f"&X-Amz-Date={amz_now()}&X-Amz-Expires=60&X-Amz-SignedHeaders=host"
        f"&X-Amz-Security-Token={TOKEN_MARK}&X-Amz-Signature={SIG_MARK}"
    )


@pytest.mark.parametrize(
    "raw",
    [
        # junk after the version: aiohttp's "Bad status line"
        "GET /b/k?{q} HTTP/1.1 junk\r\nHost: x\r\n\r\n",
        # a control character in the query: "Invalid char in url query"
        "GET /b/k?{q}\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        # a request line over the limit
        "GET /b/k?{q}&pad=" + "p" * 9000 + " HTTP/1.1\r\nHost: x\r\n\r\n",
        # an Authorization header over the line limit
        "GET /b/k HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential="
        + CRED_MARK
        + "/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature="
        + SIG_MARK
        + "x" * 9000
        + "\r\n\r\n",
        # an unparseable header line after the presigned query
        "GET /b/k?{q} HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    ],
)
def test_malformed_requests_leave_no_credential_in_the_log(srv: ServerProcess, raw: str):
    before = len(srv.log_text())
    data = raw.replace("{q}", _presigned_query()).replace("Host: x\r\n", CLOSE)
    answer = exchange(srv.port, data.encode("latin-1"))
    assert status_of(answer) == 400
    deadline = time.monotonic() + 10
    while len(srv.log_text()) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = srv.log_text()[before:]
    assert logged, "the server logged nothing about the malformed request"
    for mark in (SIG_MARK, CRED_MARK, TOKEN_MARK):
        assert mark not in logged, logged[-2000:]


def test_presigned_requests_leave_no_credential_in_the_log(
    s3, srv: ServerProcess, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    signature = url.rsplit("X-Amz-Signature=", 1)[1]
    before = len(srv.log_text())
    assert requests.get(url, timeout=30).status_code == 200
    assert requests.get(url[:-4] + "0000", timeout=30).status_code == 403
    time.sleep(0.2)
    logged = srv.log_text()[before:]
    assert "GetObject" in logged
    assert signature not in logged and signature[:-4] not in logged


# ------------------------------------------------------------------- item 7: stalled uploads


def _temp_files(srv: ServerProcess) -> list[Path]:
    return [p for p in (srv.data_dir / "tmp").iterdir() if p.is_file()]


def _stalled_put(srv: ServerProcess, target: str, chunked: bool) -> tuple[int, bytes]:
    """A correctly signed PUT of ``target`` that sends 1 MiB of a 4 MiB body, then nothing."""
    body = os.urandom(4 << 20)
    headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(len(body))
    req = AWSRequest(method="PUT", url=srv.endpoint + target, data=b"", headers=headers)
    S3SigV4Auth(BotoCredentials(ROOT_USER, ROOT_PASSWORD), "s3", REGION).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=IDLE_TIMEOUT + 28)
    try:
        conn.putrequest("PUT", target, skip_accept_encoding=True)
        for name, value in req.headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        first = body[: 1 << 20]
        conn.send(b"%x\r\n%s\r\n" % (len(first), first) if chunked else first)
        deadline = time.monotonic() + 10
        while not _temp_files(srv) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _temp_files(srv), "the upload never reached a temporary file"
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_stalled_upload_gets_request_timeout_and_no_temp_file(
    s3, srv: ServerProcess, bucket: str, chunked: bool
) -> None:
    status, body = _stalled_put(srv, f"/{bucket}/stalled", chunked)
    assert status == 400, body
    assert error_code(body) == "RequestTimeout"
    deadline = time.monotonic() + 10
    while _temp_files(srv) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _temp_files(srv) == []
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="stalled")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # The server is unharmed: a normal upload right after works.
    s3.put_object(Bucket=bucket, Key="after", Body=b"fine")
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"fine"


def test_stalled_upload_part_gets_request_timeout_and_no_temp_file(
    s3, srv: ServerProcess, bucket: str
) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    target = f"/{bucket}/mp?partNumber=1&uploadId={quote(upload, safe='')}"
    status, body = _stalled_put(srv, target, chunked=False)
    assert status == 400, body
    assert error_code(body) == "RequestTimeout"
    deadline = time.monotonic() + 10
    while _temp_files(srv) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _temp_files(srv) == []
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload)


def test_slow_but_steady_upload_is_not_cut_off(s3, srv: ServerProcess, bucket: str) -> None:
    """The timeout is for silence, not for slowness: pieces every second for longer than the
    timeout in total still make an object."""
    pieces = [os.urandom(1000) for _ in range(IDLE_TIMEOUT * 2)]
    body = b"".join(pieces)
    req = AWSRequest(
        method="PUT",
        url=f"{srv.endpoint}/{bucket}/slow",
        data=body,
        headers={"Content-Length": str(len(body))},
    )
    S3SigV4Auth(BotoCredentials(ROOT_USER, ROOT_PASSWORD), "s3", REGION).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.putrequest("PUT", f"/{bucket}/slow", skip_accept_encoding=True)
        for name, value in req.headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        for piece in pieces:
            conn.send(piece)
            time.sleep(IDLE_TIMEOUT / 4)
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
    finally:
        conn.close()
    assert s3.get_object(Bucket=bucket, Key="slow")["Body"].read() == body


# ------------------------------------------------------------------- item 8: response overrides


@pytest.mark.parametrize(
    "value", ["text/plain\r\nX-Injected: 1", "text/plain\nX-Injected: 1", "text/\x00plain"]
)
def test_response_override_with_control_characters_is_invalid_argument(
    s3, bucket: str, value: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k", "ResponseContentType": value}
    )
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 400, resp.text
    assert error_code(resp.content) == "InvalidArgument"
    assert "X-Injected" not in resp.headers
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", ResponseContentType=value)
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"


def test_response_override_without_control_characters_still_applies(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    got = s3.get_object(
        Bucket=bucket,
        Key="k",
        ResponseContentType="text/plain; charset=utf-8",
        ResponseContentDisposition='attachment; filename="a\tb.txt"',
    )
    assert got["ContentType"] == "text/plain; charset=utf-8"
    assert got["ContentDisposition"] == 'attachment; filename="a\tb.txt"'
