"""RequestBody: verification before the loop ends, on real streams.

Two layers: direct tests over an aiohttp StreamReader (every digest and length rule), and an
end-to-end check where a real aiohttp server authenticates with sigv4 and reads RequestBody
while real clients (boto3 over HTTP and HTTPS, minio-py, presigned URLs via urllib) upload.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import http.client
import io
import ipaddress
import os
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from minio import Minio
from multidict import CIMultiDict

from sealstore.client.chunked_encoder import encode_aws_chunked
from sealstore.client.signing import Credentials, presign_url, sign_request
from sealstore.s3.body import RequestBody
from sealstore.s3.checksums import new_checksum
from sealstore.s3.errors import S3Error
from sealstore.s3.sigv4 import (
    AuthResult,
    PayloadMode,
    authenticate,
    derive_signing_key,
)

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def make_auth(mode: PayloadMode, declared: str | None = None) -> AuthResult:
    date = "20260101T000000Z"
    return AuthResult(
        access_key=AK,
        payload_mode=mode,
        declared_sha256=declared,
        signing_key=derive_signing_key(SK, date[:8], REGION),
        seed_signature="a" * 64,
        amz_date=date,
        scope=f"{date[:8]}/{REGION}/s3/aws4_request",
        region=REGION,
        presigned=False,
        signed_headers=("host",),
    )


async def _read_async(
    body: bytes, auth: AuthResult, headers: Mapping[str, str], eof: bool, **kwargs: Any
) -> tuple[bytes, RequestBody]:
    loop = asyncio.get_running_loop()
    sock_a, sock_b = socket.socketpair()
    protocol = BaseProtocol(loop)
    transport, _ = await loop.create_connection(lambda: protocol, sock=sock_a)
    protocol.transport = transport  # type: ignore[assignment]
    reader = StreamReader(protocol, 2**16, loop=loop)

    async def feed() -> None:
        for i in range(0, len(body), 40000):
            reader.feed_data(body[i : i + 40000])
            await asyncio.sleep(0)
        if eof:
            reader.feed_eof()
        else:  # what aiohttp does when the client disconnects before Content-Length
            reader.set_exception(ConnectionResetError("peer closed"))

    feeder = loop.create_task(feed())
    try:
        rb = RequestBody(reader, auth, CIMultiDict(headers), **kwargs)
        out = [chunk async for chunk in rb]
    finally:
        feeder.cancel()
        transport.close()
        sock_b.close()
    return b"".join(out), rb


def read(
    body: bytes, auth: AuthResult, headers: Mapping[str, str], eof: bool = True, **kwargs: Any
) -> tuple[bytes, RequestBody]:
    return asyncio.run(_read_async(body, auth, headers, eof, **kwargs))


def expect(code: str, *args: Any, **kwargs: Any) -> S3Error:
    with pytest.raises(S3Error) as exc:
        read(*args, **kwargs)
    assert exc.value.code == code, (exc.value.code, exc.value.message)
    return exc.value


DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).digest()


# ------------------------------------------------------------------ plain bodies


def test_signed_payload_ok() -> None:
    data, rb = read(DATA, make_auth(PayloadMode.SIGNED, SHA), {"Content-Length": str(len(DATA))})
    assert data == DATA
    assert rb.size == len(DATA) and rb.complete
    assert rb.md5_hex == MD5.hex()


def test_signed_payload_mismatch() -> None:
    err = expect(
        "XAmzContentSHA256Mismatch",
        DATA,
        make_auth(PayloadMode.SIGNED, hashlib.sha256(b"other").hexdigest()),
        {"Content-Length": str(len(DATA))},
    )
    assert err.status == 400


def test_error_comes_before_loop_end() -> None:
    """The handler sees every chunk but the loop raises instead of finishing."""
    seen: list[int] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        sock_a, sock_b = socket.socketpair()
        protocol = BaseProtocol(loop)
        transport, _ = await loop.create_connection(lambda: protocol, sock=sock_a)
        protocol.transport = transport  # type: ignore[assignment]
        reader = StreamReader(protocol, 2**16, loop=loop)
        reader.feed_data(b"abc")
        reader.feed_eof()
        auth = make_auth(PayloadMode.SIGNED, hashlib.sha256(b"abd").hexdigest())
        rb = RequestBody(reader, auth, CIMultiDict({"Content-Length": "3"}))
        committed = False
        try:
            async for chunk in rb:
                seen.append(len(chunk))
            committed = True
        except S3Error as exc:
            assert exc.code == "XAmzContentSHA256Mismatch"
        finally:
            transport.close()
            sock_b.close()
        assert not committed and not rb.complete

    asyncio.run(go())
    assert seen == [3]


def test_unsigned_payload_ok() -> None:
    data, rb = read(DATA, make_auth(PayloadMode.UNSIGNED), {"Content-Length": str(len(DATA))})
    assert data == DATA and rb.md5_hex == MD5.hex()


def test_content_md5() -> None:
    auth = make_auth(PayloadMode.UNSIGNED)
    headers = {"Content-Length": str(len(DATA)), "Content-MD5": b64(MD5)}
    assert read(DATA, auth, headers)[0] == DATA
    bad = {**headers, "Content-MD5": b64(hashlib.md5(b"x").digest())}
    assert expect("BadDigest", DATA, auth, bad).status == 400
    assert (
        expect("InvalidDigest", DATA, auth, {**headers, "Content-MD5": "not base64!"}).status == 400
    )
    expect("InvalidDigest", DATA, auth, {**headers, "Content-MD5": b64(b"short")})


@pytest.mark.parametrize("alg", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
def test_checksum_headers(alg: str) -> None:
    h = new_checksum(alg)
    h.update(DATA)
    auth = make_auth(PayloadMode.UNSIGNED)
    headers = {"Content-Length": str(len(DATA)), f"x-amz-checksum-{alg}": h.b64()}
    _, rb = read(DATA, auth, headers)
    assert rb.checksums == {f"x-amz-checksum-{alg}": h.b64()}
    wrong = new_checksum(alg)
    wrong.update(DATA[:-1])
    err = expect("BadDigest", DATA, auth, {**headers, f"x-amz-checksum-{alg}": wrong.b64()})
    assert alg.upper() in err.message
    expect("InvalidRequest", DATA, auth, {**headers, f"x-amz-checksum-{alg}": "AAA"})


def test_multiple_checksum_headers_rejected() -> None:
    auth = make_auth(PayloadMode.UNSIGNED)
    headers = {
        "Content-Length": "3",
        "x-amz-checksum-crc32": b64(zlib.crc32(b"abc").to_bytes(4, "big")),
        "x-amz-checksum-sha1": b64(hashlib.sha1(b"abc").digest()),
    }
    expect("InvalidRequest", b"abc", auth, headers)


def test_sdk_algorithm() -> None:
    auth = make_auth(PayloadMode.UNSIGNED)
    # Algorithm only: the server computes it and reports it.
    _, rb = read(b"abc", auth, {"Content-Length": "3", "x-amz-sdk-checksum-algorithm": "SHA256"})
    assert rb.checksums == {"x-amz-checksum-sha256": b64(hashlib.sha256(b"abc").digest())}
    mismatch = {
        "Content-Length": "3",
        "x-amz-sdk-checksum-algorithm": "SHA256",
        "x-amz-checksum-crc32": b64(zlib.crc32(b"abc").to_bytes(4, "big")),
    }
    expect("InvalidRequest", b"abc", auth, mismatch)
    expect(
        "InvalidRequest",
        b"abc",
        auth,
        {"Content-Length": "3", "x-amz-sdk-checksum-algorithm": "MD4"},
    )


def test_length_rules() -> None:
    auth = make_auth(PayloadMode.UNSIGNED)
    # Client disconnects before sending Content-Length bytes.
    expect("IncompleteBody", DATA[:1000], auth, {"Content-Length": str(len(DATA))}, eof=False)
    expect("IncompleteBody", DATA[:1000], auth, {"Content-Length": str(len(DATA))})
    expect("InvalidArgument", DATA, auth, {"Content-Length": "-1"})


def test_max_size() -> None:
    auth = make_auth(PayloadMode.UNSIGNED)
    err = expect("EntityTooLarge", DATA, auth, {"Content-Length": str(len(DATA))}, max_size=1000)
    assert err.status == 400
    # Unknown length (HTTP chunked transfer): caught while streaming.
    expect("EntityTooLarge", DATA, auth, {}, max_size=1000)
    data, rb = read(DATA, auth, {}, max_size=len(DATA))
    assert data == DATA and rb.size == len(DATA)


def test_read_all_small_document() -> None:
    async def go() -> bytes:
        loop = asyncio.get_running_loop()
        sock_a, sock_b = socket.socketpair()
        protocol = BaseProtocol(loop)
        transport, _ = await loop.create_connection(lambda: protocol, sock=sock_a)
        protocol.transport = transport  # type: ignore[assignment]
        reader = StreamReader(protocol, 2**16, loop=loop)
        reader.feed_data(b"<Delete/>")
        reader.feed_eof()
        doc = b"<Delete/>"
        rb = RequestBody(
            reader,
            make_auth(PayloadMode.SIGNED, hashlib.sha256(doc).hexdigest()),
            CIMultiDict({"Content-Length": "9"}),
        )
        try:
            return await rb.read(1024)
        finally:
            transport.close()
            sock_b.close()

    assert asyncio.run(go()) == b"<Delete/>"


def test_read_all_limit() -> None:
    async def go(headers: dict[str, str]) -> bytes:
        loop = asyncio.get_running_loop()
        sock_a, sock_b = socket.socketpair()
        protocol = BaseProtocol(loop)
        transport, _ = await loop.create_connection(lambda: protocol, sock=sock_a)
        protocol.transport = transport  # type: ignore[assignment]
        reader = StreamReader(protocol, 2**16, loop=loop)
        reader.feed_data(DATA[:5000])  # below the reader's high-water mark
        reader.feed_eof()
        rb = RequestBody(reader, make_auth(PayloadMode.UNSIGNED), CIMultiDict(headers))
        try:
            return await rb.read(1024)
        finally:
            transport.close()
            sock_b.close()

    for headers in ({"Content-Length": "5000"}, {}):
        with pytest.raises(S3Error) as exc:
            asyncio.run(go(headers))
        assert exc.value.code == "EntityTooLarge"


# ------------------------------------------------------------------ aws-chunked bodies


def chunked(auth: AuthResult, data: bytes, trailers: dict[str, str] | None = None) -> bytes:
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    return b"".join(
        encode_aws_chunked(
            pieces,
            auth.payload_mode,
            signing_key=auth.signing_key,
            seed_signature=auth.seed_signature,
            amz_date=auth.amz_date,
            scope=auth.scope,
            trailers=trailers,
        )
    )


@pytest.mark.parametrize("alg", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
@pytest.mark.parametrize(
    "mode", [PayloadMode.STREAMING_SIGNED_TRAILER, PayloadMode.STREAMING_UNSIGNED_TRAILER]
)
def test_trailer_checksums(alg: str, mode: PayloadMode) -> None:
    h = new_checksum(alg)
    h.update(DATA)
    auth = make_auth(mode)
    name = f"x-amz-checksum-{alg}"
    headers = {"x-amz-decoded-content-length": str(len(DATA)), "x-amz-trailer": name}
    data, rb = read(chunked(auth, DATA, {name: h.b64()}), auth, headers)
    assert data == DATA and rb.checksums == {name: h.b64()}
    wrong = new_checksum(alg)
    wrong.update(b"nope")
    expect("BadDigest", chunked(auth, DATA, {name: wrong.b64()}), auth, headers)


def test_streaming_requires_decoded_length() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    err = expect("MissingContentLength", chunked(auth, b"abc"), auth, {})
    assert err.status == 411


def test_streaming_signed_with_content_md5() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    headers = {"x-amz-decoded-content-length": str(len(DATA)), "Content-MD5": b64(MD5)}
    assert read(chunked(auth, DATA), auth, headers)[0] == DATA
    headers["Content-MD5"] = b64(hashlib.md5(b"x").digest())
    expect("BadDigest", chunked(auth, DATA), auth, headers)


def test_trailer_header_requires_trailer_mode() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    headers = {"x-amz-decoded-content-length": "3", "x-amz-trailer": "x-amz-checksum-crc32"}
    expect("InvalidRequest", chunked(auth, b"abc"), auth, headers)


def test_unknown_trailer_rejected() -> None:
    auth = make_auth(PayloadMode.STREAMING_UNSIGNED_TRAILER)
    headers = {"x-amz-decoded-content-length": "3", "x-amz-trailer": "x-amz-meta-foo"}
    expect("InvalidRequest", chunked(auth, b"abc", {"x-amz-meta-foo": "1"}), auth, headers)


def test_checksum_reference_vectors() -> None:
    """RevEng catalogue check values for "123456789"."""
    expected = {
        "crc32": 0xCBF43926.to_bytes(4, "big"),
        "crc32c": 0xE3069283.to_bytes(4, "big"),
        "crc64nvme": 0xAE8B14860A799888.to_bytes(8, "big"),
    }
    for alg, want in expected.items():
        h = new_checksum(alg)
        h.update(b"1234")
        h.update(memoryview(b"56789"))
        assert h.digest() == want, alg
        empty = new_checksum(alg)
        assert len(empty.digest()) == len(want)


def _bitwise_crc(data: bytes, poly_reflected: int, width: int) -> int:
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (poly_reflected if crc & 1 else 0)
    return crc ^ mask


def test_crc_against_bitwise_reference() -> None:
    data = os.urandom(3000)
    for alg, poly, width in (("crc32c", 0x82F63B78, 32), ("crc64nvme", 0x9A6C9329AC4BC9B5, 64)):
        h = new_checksum(alg)
        for i in range(0, len(data), 777):
            h.update(data[i : i + 777])
        assert int.from_bytes(h.digest(), "big") == _bitwise_crc(data, poly, width), alg


# ------------------------------------------------------------------ real server, real clients


class _Server:
    """aiohttp app on a loopback port in a thread: sigv4 + RequestBody, like the real handlers."""

    def __init__(self, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.results: list[dict[str, Any]] = []
        self._ssl = ssl_ctx
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            auth = authenticate(
                request.method,
                raw_path,
                raw_query,
                request.headers,
                lambda ak: SK if ak == AK else None,
                REGION,
                dt.datetime.now(dt.UTC),
            )
            body = RequestBody(request.content, auth, request.headers, max_size=64 << 20)
            digest = hashlib.sha256()
            async for chunk in body:
                digest.update(chunk)
        except S3Error as exc:
            self.results.append({"error": exc.code})
            return web.Response(
                status=exc.status,
                body=exc.to_xml(request.path, "req-1"),
                content_type="application/xml",
            )
        self.results.append(
            {
                "mode": auth.payload_mode,
                "sha256": digest.hexdigest(),
                "size": body.size,
                "checksums": body.checksums,
                "headers": dict(request.headers),
            }
        )
        return web.Response(status=200, headers={"ETag": f'"{body.md5_hex}"', **body.checksums})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._ssl)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> _Server:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _tls_material(tmp: Path) -> tuple[ssl.SSLContext, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp / "cert.pem"
    key_path = tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, str(cert_path)


@pytest.fixture(scope="module")
def http_server() -> Iterator[_Server]:
    with _Server() as srv:
        yield srv


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Server, str]]:
    ctx, ca = _tls_material(tmp_path_factory.mktemp("tls"))
    with _Server(ctx) as srv:
        yield srv, ca


def _boto(endpoint: str, verify: str | bool = False, signature_version: str | None = None) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        region_name=REGION,
        verify=verify,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            signature_version=signature_version,
        ),
    )


KEYS = ["plain", "with space/and+plus=eq", "unicodé ключ", "tilde~%2Fpercent"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("algorithm", [None, "CRC32", "SHA1", "SHA256"])
def test_boto3_http_put(http_server: _Server, key: str, algorithm: str | None) -> None:
    client = _boto(f"http://127.0.0.1:{http_server.port}")
    payload = os.urandom(100_000)
    kwargs: dict[str, Any] = {"Bucket": "bkt", "Key": key, "Body": payload}
    if algorithm:
        kwargs["ChecksumAlgorithm"] = algorithm
    resp = client.put_object(**kwargs)
    result = http_server.results[-1]
    assert "error" not in result, result
    assert result["sha256"] == hashlib.sha256(payload).hexdigest()
    assert resp["ETag"].strip('"') == hashlib.md5(payload).hexdigest()
    # boto3 >= 1.36 sends a CRC32 by default; whatever it sent was verified and is echoed.
    assert result["checksums"], result


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
def test_boto3_https_trailer_put(https_server: tuple[_Server, str], algorithm: str) -> None:
    """Over TLS boto3 streams with STREAMING-UNSIGNED-PAYLOAD-TRAILER and a checksum trailer."""
    server, ca = https_server
    client = _boto(f"https://127.0.0.1:{server.port}", verify=ca)
    payload = os.urandom(3 * 1024 * 1024 + 17)
    client.put_object(
        Bucket="bkt", Key="big object", Body=io.BytesIO(payload), ChecksumAlgorithm=algorithm
    )
    result = server.results[-1]
    assert "error" not in result, result
    assert result["mode"] is PayloadMode.STREAMING_UNSIGNED_TRAILER
    assert result["sha256"] == hashlib.sha256(payload).hexdigest()
    assert f"x-amz-checksum-{algorithm.lower()}" in result["checksums"]


def test_boto3_wrong_secret_is_rejected(http_server: _Server) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{http_server.port}",
        aws_access_key_id=AK,
        aws_secret_access_key="wrong",
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket="bkt", Key="k", Body=b"x")
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.parametrize("key", KEYS)
def test_minio_client_put(http_server: _Server, key: str) -> None:
    client = Minio(
        f"127.0.0.1:{http_server.port}", access_key=AK, secret_key=SK, secure=False, region=REGION
    )
    payload = os.urandom(70_000)
    client.put_object("bkt", key, io.BytesIO(payload), len(payload))
    result = http_server.results[-1]
    assert "error" not in result, result
    assert result["sha256"] == hashlib.sha256(payload).hexdigest()


def test_presigned_put_with_urllib(http_server: _Server) -> None:
    payload = b"presigned body" * 1000
    now = dt.datetime.now(dt.UTC)
    base = f"http://127.0.0.1:{http_server.port}/bkt/pre%20signed"
    url = presign_url("PUT", base, Credentials(AK, SK), REGION, now, expires=60)
    md5 = b64(hashlib.md5(payload).digest())
    req = urllib.request.Request(url, data=payload, method="PUT", headers={"Content-MD5": md5})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    assert http_server.results[-1]["sha256"] == hashlib.sha256(payload).hexdigest()
    bad = urllib.request.Request(
        url, data=payload + b"!", method="PUT", headers={"Content-MD5": md5}
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(bad, timeout=10)
    assert exc.value.code == 400
    assert b"<Code>BadDigest</Code>" in exc.value.read()


def test_presigned_url_from_boto3(http_server: _Server) -> None:
    client = _boto(f"http://127.0.0.1:{http_server.port}", signature_version="s3v4")
    url = client.generate_presigned_url(
        "put_object", Params={"Bucket": "bkt", "Key": "a b~c"}, ExpiresIn=60
    )
    req = urllib.request.Request(url, data=b"hello", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    assert http_server.results[-1]["mode"] is PayloadMode.UNSIGNED


def test_sigv2_presigned_url_rejected(http_server: _Server) -> None:
    """boto3 presigns with SigV2 for custom endpoints unless told s3v4: we refuse it clearly."""
    client = _boto(f"http://127.0.0.1:{http_server.port}")
    url = client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    assert "AWSAccessKeyId=" in url
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url, timeout=10)
    assert exc.value.code == 400
    assert b"<Code>InvalidRequest</Code>" in exc.value.read()


@pytest.mark.parametrize(
    "mode", [PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER]
)
def test_signed_streaming_put_end_to_end(http_server: _Server, mode: PayloadMode) -> None:
    """Seed signature from the Authorization header chains into every chunk, over real HTTP."""
    payload = os.urandom(200_000)
    host = f"127.0.0.1:{http_server.port}"
    now = dt.datetime.now(dt.UTC)
    crc = b64(zlib.crc32(payload).to_bytes(4, "big"))
    extra = {"x-amz-decoded-content-length": str(len(payload)), "Content-Encoding": "aws-chunked"}
    if mode.has_trailer:
        extra["x-amz-trailer"] = "x-amz-checksum-crc32"
    headers = sign_request(
        "PUT",
        f"http://{host}/bkt/stream%20key",
        extra,
        Credentials(AK, SK),
        REGION,
        now,
        mode.value,
    )
    seed = headers["Authorization"].rsplit("Signature=", 1)[1]
    date = headers["x-amz-date"]
    key = derive_signing_key(SK, date[:8], REGION)
    body = b"".join(
        encode_aws_chunked(
            [payload[i : i + 65536] for i in range(0, len(payload), 65536)],
            mode,
            signing_key=key,
            seed_signature=seed,
            amz_date=date,
            scope=f"{date[:8]}/{REGION}/s3/aws4_request",
            trailers={"x-amz-checksum-crc32": crc} if mode.has_trailer else None,
        )
    )

    def put(data: bytes) -> int:
        conn = http.client.HTTPConnection(host, timeout=10)
        try:
            conn.request("PUT", "/bkt/stream%20key", body=data, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    assert put(body) == 200
    result = http_server.results[-1]
    assert result["mode"] is mode and result["sha256"] == hashlib.sha256(payload).hexdigest()
    tampered = bytearray(body)
    tampered[len(body) // 2] ^= 0x01
    assert put(bytes(tampered)) == 403
    assert http_server.results[-1] == {"error": "SignatureDoesNotMatch"}


# Keys that stress canonical-URI handling: reserved and sub-delimiter characters, unicode,
# a literal "%2F", doubled slashes and dot segments (S3 keeps them all verbatim).
CLI_KEYS = ["sp ace/x+y=z", "t~ilde!'()*@,;:$&[]", "unicodé/日本/%2F", "a//b/../c"]
BIN = Path(os.environ.get("VIRTUAL_ENV", Path(__file__).resolve().parents[2] / ".venv")) / "bin"


def _cli_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(
        AWS_ACCESS_KEY_ID=AK,
        AWS_SECRET_ACCESS_KEY=SK,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        RCLONE_CONFIG="/dev/null",
        RCLONE_CONFIG_T_TYPE="s3",
        RCLONE_CONFIG_T_PROVIDER="Other",
        RCLONE_CONFIG_T_ACCESS_KEY_ID=AK,
        RCLONE_CONFIG_T_SECRET_ACCESS_KEY=SK,
        RCLONE_CONFIG_T_ENDPOINT=f"http://127.0.0.1:{port}",
        RCLONE_CONFIG_T_REGION=REGION,
    )
    return env


@pytest.mark.parametrize("tool", ["awscli", "s3cmd", "rclone"])
def test_cli_clients_authenticate(http_server: _Server, tool: str, tmp_path: Path) -> None:
    """The command-line clients sign their own way; every upload must verify, bytes intact."""
    if not (BIN / {"awscli": "aws"}.get(tool, tool)).exists():
        pytest.skip(f"{tool} is not installed in the venv")
    src = tmp_path / "f.bin"
    payload = os.urandom(150_000)
    src.write_bytes(payload)
    port = http_server.port
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        f"[default]\naccess_key = {AK}\nsecret_key = {SK}\nhost_base = 127.0.0.1:{port}\n"
        f"host_bucket = 127.0.0.1:{port}\nuse_https = False\nsignature_v2 = False\n"
        f"bucket_location = {REGION}\n"
    )
    cfg.chmod(0o600)
    for key in CLI_KEYS:
        before = len(http_server.results)
        if tool == "awscli":
            cmd = [
                str(BIN / "aws"),
                "--endpoint-url",
                f"http://127.0.0.1:{port}",
                "s3api",
                "put-object",
                "--bucket",
                "bkt",
                "--key",
                key,
                "--body",
                str(src),
            ]
        elif tool == "s3cmd":
            cmd = [str(BIN / "s3cmd"), "-c", str(cfg), "put", str(src), f"s3://bkt/{key}"]
        else:
            # rclone HEADs the object after the upload; the test server answers 200 to it.
            cmd = [
                str(BIN / "rclone"),
                "copyto",
                "--s3-no-check-bucket",
                "--retries",
                "1",
                "--low-level-retries",
                "1",
                str(src),
                f"t:bkt/{key}",
            ]
        proc = subprocess.run(cmd, env=_cli_env(port), capture_output=True, timeout=120)
        puts = [r for r in http_server.results[before:] if r.get("size") == len(payload)]
        errors = [r for r in http_server.results[before:] if "error" in r]
        assert not errors, (tool, key, errors, proc.stderr[-500:])
        assert puts and puts[-1]["sha256"] == hashlib.sha256(payload).hexdigest(), (
            tool,
            key,
            proc.stderr[-500:],
        )
