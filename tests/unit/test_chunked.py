"""aws-chunked decoding on a real aiohttp StreamReader: AWS's documented vector, trailers,
tampering, truncation and framing errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import random
import socket
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from multidict import CIMultiDict

from sealstore.client.chunked_encoder import encode_aws_chunked
from sealstore.s3.chunked import AwsChunkedDecoder
from sealstore.s3.errors import S3Error
from sealstore.s3.sigv4 import AuthResult, PayloadMode, authenticate, derive_signing_key

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

# AWS S3 API reference, "Signature Calculations for the Authorization Header: Transferring
# Payload in Multiple Chunks", Example: PUT Object (66560 bytes of 'a', 64 KiB chunks).
AWS_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
AWS_CHUNK_SIGS = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]


def aws_example_auth() -> AuthResult:
    headers = CIMultiDict(
        {
            "Host": "s3.amazonaws.com",
            "x-amz-date": "20130524T000000Z",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560",
            "Content-Length": "66824",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
            "us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;"
            "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
            f"Signature={AWS_SEED}",
        }
    )
    return authenticate(
        "PUT",
        "/examplebucket/chunkObject.txt",
        "",
        headers,
        lambda ak: SK if ak == AK else None,
        "us-east-1",
        datetime(2013, 5, 24, tzinfo=UTC),
    )


def aws_example_body() -> bytes:
    return (
        f"10000;chunk-signature={AWS_CHUNK_SIGS[0]}\r\n".encode()
        + b"a" * 65536
        + b"\r\n"
        + f"400;chunk-signature={AWS_CHUNK_SIGS[1]}\r\n".encode()
        + b"a" * 1024
        + b"\r\n"
        + f"0;chunk-signature={AWS_CHUNK_SIGS[2]}\r\n\r\n".encode()
    )


def make_auth(mode: PayloadMode, seed: str = "0" * 64) -> AuthResult:
    date = "20260101T000000Z"
    return AuthResult(
        access_key=AK,
        payload_mode=mode,
        declared_sha256=None,
        signing_key=derive_signing_key(SK, date[:8], "us-east-1"),
        seed_signature=seed,
        amz_date=date,
        scope=f"{date[:8]}/us-east-1/s3/aws4_request",
        region="us-east-1",
        presigned=False,
        signed_headers=("host",),
    )


def encode(
    auth: AuthResult, chunks: Iterable[bytes], trailers: dict[str, str] | None = None
) -> bytes:
    return b"".join(
        encode_aws_chunked(
            chunks,
            auth.payload_mode,
            signing_key=auth.signing_key,
            seed_signature=auth.seed_signature,
            amz_date=auth.amz_date,
            scope=auth.scope,
            trailers=trailers,
        )
    )


async def _decode_async(
    body: bytes, auth: AuthResult, piece: int, **kwargs: object
) -> tuple[bytes, AwsChunkedDecoder, list[int]]:
    loop = asyncio.get_running_loop()
    # A real connected protocol (socketpair transport) so the reader's flow control works.
    sock_a, sock_b = socket.socketpair()
    protocol = BaseProtocol(loop)
    transport, _ = await loop.create_connection(lambda: protocol, sock=sock_a)
    protocol.transport = transport  # type: ignore[assignment]
    reader = StreamReader(protocol, 2**16, loop=loop)

    async def feed() -> None:
        for i in range(0, len(body), piece):
            reader.feed_data(body[i : i + piece])
            await asyncio.sleep(0)
        reader.feed_eof()

    feeder = loop.create_task(feed())
    decoder = AwsChunkedDecoder(reader, auth, **kwargs)  # type: ignore[arg-type]
    out = []
    sizes = []
    try:
        async for chunk in decoder:
            out.append(chunk)
            sizes.append(len(chunk))
    finally:
        feeder.cancel()
        transport.close()
        sock_b.close()
    return b"".join(out), decoder, sizes


def decode(
    body: bytes, auth: AuthResult, piece: int = 5000, **kwargs: object
) -> tuple[bytes, AwsChunkedDecoder, list[int]]:
    kwargs.setdefault("decoded_length", None)
    return asyncio.run(_decode_async(body, auth, piece, **kwargs))


def expect_error(code: str, body: bytes, auth: AuthResult, **kwargs: object) -> S3Error:
    with pytest.raises(S3Error) as exc:
        decode(body, auth, **kwargs)
    assert exc.value.code == code, (exc.value.code, exc.value.message)
    return exc.value


# ------------------------------------------------------------------ AWS documented vector


@pytest.mark.parametrize("piece", [1, 97, 8192, 1 << 20])
def test_aws_documented_example(piece: int) -> None:
    auth = aws_example_auth()
    assert auth.payload_mode is PayloadMode.STREAMING_SIGNED
    body = aws_example_body()
    assert len(body) == 66824  # the example's Content-Length
    data, decoder, _ = decode(body, auth, piece=piece, decoded_length=66560)
    assert data == b"a" * 66560
    assert decoder.decoded_size == 66560


def test_our_encoder_reproduces_aws_example() -> None:
    auth = aws_example_auth()
    assert encode(auth, [b"a" * 65536, b"a" * 1024]) == aws_example_body()


def test_aws_example_tampered_data() -> None:
    body = bytearray(aws_example_body())
    body[200] ^= 1  # one bit of the first chunk's data
    expect_error("SignatureDoesNotMatch", bytes(body), aws_example_auth(), decoded_length=66560)


def test_aws_example_tampered_signature() -> None:
    body = aws_example_body().replace(AWS_CHUNK_SIGS[1].encode(), b"f" * 64)
    expect_error("SignatureDoesNotMatch", body, aws_example_auth(), decoded_length=66560)


def test_aws_example_reordered_chunks() -> None:
    # Swap the two data chunks (with their own signatures): the chain breaks.
    first = f"10000;chunk-signature={AWS_CHUNK_SIGS[0]}\r\n".encode() + b"a" * 65536 + b"\r\n"
    second = f"400;chunk-signature={AWS_CHUNK_SIGS[1]}\r\n".encode() + b"a" * 1024 + b"\r\n"
    last = f"0;chunk-signature={AWS_CHUNK_SIGS[2]}\r\n\r\n".encode()
    expect_error("SignatureDoesNotMatch", second + first + last, aws_example_auth())


def test_aws_example_dropped_final_chunk() -> None:
    body = aws_example_body()
    truncated = body[: body.index(b"0;chunk-signature")]
    expect_error("IncompleteBody", truncated, aws_example_auth(), decoded_length=66560)


def test_aws_example_wrong_decoded_length() -> None:
    expect_error("IncompleteBody", aws_example_body(), aws_example_auth(), decoded_length=70000)
    expect_error("InvalidRequest", aws_example_body(), aws_example_auth(), decoded_length=1000)


def test_wrong_seed_signature() -> None:
    auth = aws_example_auth()
    bad = AuthResult(**{**auth.__dict__, "seed_signature": "1" * 64})
    expect_error("SignatureDoesNotMatch", aws_example_body(), bad)


# ------------------------------------------------------------------ signed, own encoder


def test_bounded_slices() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    payload = bytes(range(256)) * 20000  # 5 MB
    body = encode(auth, [payload[i : i + 3_000_000] for i in range(0, len(payload), 3_000_000)])
    data, _, sizes = decode(body, auth, piece=65536, read_size=1 << 20, decoded_length=len(payload))
    assert data == payload
    assert max(sizes) <= 1 << 20  # never more than read_size in memory per slice


def test_chunk_size_limit() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    body = encode(auth, [b"x" * 5000])
    expect_error("InvalidRequest", body, auth, max_chunk_size=4096)


def test_empty_body_signed() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    data, decoder, _ = decode(encode(auth, []), auth, decoded_length=0)
    assert data == b"" and decoder.decoded_size == 0


def test_missing_chunk_signature() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    expect_error("SignatureDoesNotMatch", b"5\r\nhello\r\n0\r\n\r\n", auth)


@pytest.mark.parametrize(
    "body",
    [
        b"zz;chunk-signature=" + b"0" * 64 + b"\r\n",
        b"5;chunk-signature=" + b"0" * 63 + b"\r\nhello\r\n",
        b"",
        b"5;chunk-signature=" + b"0" * 64,
    ],
)
def test_garbled_framing(body: bytes) -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    with pytest.raises(S3Error) as exc:
        decode(body, auth)
    assert exc.value.code in ("InvalidRequest", "IncompleteBody", "SignatureDoesNotMatch")
    assert exc.value.status in (400, 403)


def test_missing_crlf_after_data() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    body = bytearray(encode(auth, [b"hello", b"world"]))
    i = body.index(b"hello\r\n") + 5
    body[i : i + 2] = b"XX"
    expect_error("InvalidRequest", bytes(body), auth)


def test_data_after_end() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED)
    expect_error("InvalidRequest", encode(auth, [b"hello"]) + b"junk", auth)


def test_overlong_line() -> None:
    auth = make_auth(PayloadMode.STREAMING_UNSIGNED_TRAILER)
    expect_error("InvalidRequest", b"1" * 200_000 + b"\r\n", auth)


# ------------------------------------------------------------------ trailers


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_signed_trailer_roundtrip() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED_TRAILER)
    payload = b"hello trailer" * 1000
    body = encode(
        auth, [payload[:7000], payload[7000:]], {"x-amz-checksum-crc32": crc32_b64(payload)}
    )
    data, decoder, _ = decode(
        body, auth, decoded_length=len(payload), expected_trailers=["x-amz-checksum-crc32"]
    )
    assert data == payload
    assert decoder.trailers == {"x-amz-checksum-crc32": crc32_b64(payload)}


def test_signed_trailer_tampered_value() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED_TRAILER)
    body = encode(auth, [b"abc"], {"x-amz-checksum-crc32": crc32_b64(b"abc")})
    tampered = body.replace(crc32_b64(b"abc").encode(), crc32_b64(b"abd").encode())
    expect_error(
        "SignatureDoesNotMatch", tampered, auth, expected_trailers=["x-amz-checksum-crc32"]
    )


def test_signed_trailer_missing_signature() -> None:
    auth = make_auth(PayloadMode.STREAMING_SIGNED_TRAILER)
    body = encode(auth, [b"abc"], {"x-amz-checksum-crc32": crc32_b64(b"abc")})
    lines = body.split(b"\r\n")
    stripped = b"\r\n".join(
        line for line in lines if not line.startswith(b"x-amz-trailer-signature")
    )
    expect_error(
        "SignatureDoesNotMatch", stripped, auth, expected_trailers=["x-amz-checksum-crc32"]
    )


def test_trailer_not_declared() -> None:
    auth = make_auth(PayloadMode.STREAMING_UNSIGNED_TRAILER)
    body = encode(auth, [b"abc"], {"x-amz-checksum-sha256": "x"})
    expect_error("MalformedTrailerError", body, auth, expected_trailers=["x-amz-checksum-crc32"])


def test_declared_trailer_missing() -> None:
    auth = make_auth(PayloadMode.STREAMING_UNSIGNED_TRAILER)
    body = encode(auth, [b"abc"], {})
    expect_error("MalformedTrailerError", body, auth, expected_trailers=["x-amz-checksum-crc32"])


def test_unsigned_trailer_must_not_be_signed() -> None:
    auth = make_auth(PayloadMode.STREAMING_UNSIGNED_TRAILER)
    body = b"3\r\nabc\r\n0\r\nx-amz-trailer-signature:" + b"0" * 64 + b"\r\n\r\n"
    expect_error("MalformedTrailerError", body, auth)


def test_unsigned_chunks_reject_signature_extension() -> None:
    auth = make_auth(PayloadMode.STREAMING_UNSIGNED_TRAILER)
    signed = encode(make_auth(PayloadMode.STREAMING_SIGNED_TRAILER), [b"abc"], {})
    expect_error("InvalidRequest", signed, auth)


@pytest.mark.parametrize("chunk_size", [1, 1000, 1 << 20])
def test_botocore_unsigned_trailer_wrapper(chunk_size: int) -> None:
    """Bodies framed by botocore's own AwsChunkedWrapper (what boto3 sends for PutObject)."""
    payload = hashlib.sha256(b"seed").digest() * (100 if chunk_size == 1 else 3000)
    wrapper = AwsChunkedWrapper(
        io.BytesIO(payload),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=chunk_size,
    )
    body = wrapper.read()
    auth = make_auth(PayloadMode.STREAMING_UNSIGNED_TRAILER)
    data, decoder, _ = decode(
        body, auth, decoded_length=len(payload), expected_trailers=["x-amz-checksum-crc32"]
    )
    assert data == payload
    assert decoder.trailers["x-amz-checksum-crc32"] == crc32_b64(payload)


def test_botocore_wrapper_without_checksum() -> None:
    body = AwsChunkedWrapper(io.BytesIO(b"plain body")).read()
    auth = make_auth(PayloadMode.STREAMING_UNSIGNED_TRAILER)
    data, decoder, _ = decode(body, auth, decoded_length=10)
    assert data == b"plain body" and decoder.trailers == {}


def test_truncated_everywhere() -> None:
    """Cutting a valid body at any point is an error, never a short success."""
    auth = make_auth(PayloadMode.STREAMING_SIGNED_TRAILER)
    body = encode(
        auth, [b"x" * 300, b"y" * 200], {"x-amz-checksum-crc32": crc32_b64(b"x" * 300 + b"y" * 200)}
    )
    for cut in range(0, len(body) - 1, 7):
        with pytest.raises(S3Error):
            decode(
                body[:cut],
                auth,
                piece=13,
                decoded_length=500,
                expected_trailers=["x-amz-checksum-crc32"],
            )


@pytest.mark.parametrize("seed", range(6))
def test_random_chunking_and_delivery(seed: int) -> None:
    """Any chunk layout the client picks, delivered in any TCP segmentation, decodes exactly."""
    rnd = random.Random(seed)
    payload = rnd.randbytes(rnd.randint(0, 300_000))
    cuts = sorted(rnd.sample(range(1, max(2, len(payload))), k=min(20, max(0, len(payload) - 1))))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    mode = [m for m in PayloadMode if m.is_streaming][seed % 3]
    auth = make_auth(mode)
    trailers = {"x-amz-checksum-crc32": crc32_b64(payload)} if mode.has_trailer else None
    body = encode(auth, pieces, trailers)
    data, decoder, _ = decode(
        body,
        auth,
        piece=rnd.randint(1, 70_000),
        decoded_length=len(payload),
        expected_trailers=list(trailers or {}),
        read_size=rnd.choice([1, 4096, 1 << 20]),
    )
    assert data == payload
    assert decoder.trailers == (trailers or {})
