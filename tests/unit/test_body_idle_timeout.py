"""The request-body idle timeout (issue 8, item 7) over aiohttp's real StreamReader.

Proves that a body that stops arriving raises ``RequestTimeout`` out of ``RequestBody``
iteration (plain, HTTP-chunked and aws-chunked reads alike) after the idle timeout, that a body
arriving slowly but steadily for longer than the timeout in total is read whole, that without
a timeout nothing changes, and that ``SEALSTORE_BODY_IDLE_TIMEOUT`` is parsed and bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from multidict import CIMultiDict

from sealstore.config import DEFAULT_BODY_IDLE_TIMEOUT, ConfigError, Settings
from sealstore.s3.body import IdleTimeoutStream, RequestBody
from sealstore.s3.errors import S3Error
from sealstore.s3.sigv4 import AuthResult, PayloadMode, derive_signing_key

REGION = "us-east-1"
DATE = "20260101T000000Z"
TIMEOUT = 0.3


def make_auth(mode: PayloadMode) -> AuthResult:
    return AuthResult(
        access_key="AK",
        payload_mode=mode,
        declared_sha256=None,
        signing_key=derive_signing_key("secret-key", DATE[:8], REGION),
        seed_signature="a" * 64,
        amz_date=DATE,
        scope=f"{DATE[:8]}/{REGION}/s3/aws4_request",
        region=REGION,
        presigned=False,
        signed_headers=("host",),
    )


@asynccontextmanager
async def reader() -> AsyncIterator[StreamReader]:
    loop = asyncio.get_running_loop()
    sock_a, sock_b = socket.socketpair()
    protocol = BaseProtocol(loop)
    transport, _ = await loop.create_connection(lambda: protocol, sock=sock_a)
    protocol.transport = transport  # type: ignore[assignment]
    try:
        yield StreamReader(protocol, 2**16, loop=loop)
    finally:
        transport.close()
        sock_b.close()


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(fn())


async def drain(body: RequestBody) -> bytes:
    out = b""
    async for chunk in body:
        out += chunk
    return out


@pytest.mark.parametrize(
    ("mode", "headers"),
    [
        (PayloadMode.UNSIGNED, {"Content-Length": "4096"}),
        (PayloadMode.UNSIGNED, {}),  # HTTP chunked: length unknown until the end
        (
            PayloadMode.STREAMING_UNSIGNED_TRAILER,
            {"x-amz-decoded-content-length": "4096"},
        ),
    ],
    ids=["content-length", "http-chunked", "aws-chunked"],
)
def test_stalled_body_raises_request_timeout(mode: PayloadMode, headers: dict[str, str]) -> None:
    async def go() -> str:
        async with reader() as r:
            if mode.is_streaming:
                r.feed_data(b"1000\r\n" + b"x" * 100)  # a chunk header, then part of its data
            else:
                r.feed_data(b"x" * 100)
            body = RequestBody(r, make_auth(mode), CIMultiDict(headers), idle_timeout=TIMEOUT)
            with pytest.raises(S3Error) as err:
                await asyncio.wait_for(drain(body), 10)
            return err.value.code

    assert run(go) == "RequestTimeout"


def test_slow_but_steady_body_is_read_whole() -> None:
    data = bytes(range(256)) * 8

    async def go() -> bytes:
        async with reader() as r:

            async def feed() -> None:
                for i in range(0, len(data), 256):  # 8 pieces, 2.7 timeouts in total
                    await asyncio.sleep(TIMEOUT / 3)
                    r.feed_data(data[i : i + 256])
                r.feed_eof()

            task = asyncio.create_task(feed())
            body = RequestBody(
                r,
                make_auth(PayloadMode.UNSIGNED),
                CIMultiDict({"Content-Length": str(len(data))}),
                idle_timeout=TIMEOUT,
                read_size=len(data),  # one readexactly spanning every piece
            )
            out = await drain(body)
            await task
            return out

    got = run(go)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_no_timeout_waits_for_the_client() -> None:
    async def go() -> bool:
        async with reader() as r:
            r.feed_data(b"x" * 10)
            body = RequestBody(
                r, make_auth(PayloadMode.UNSIGNED), CIMultiDict({"Content-Length": "20"})
            )
            try:
                await asyncio.wait_for(drain(body), TIMEOUT * 3)
            except TimeoutError:
                return True
            return False

    assert run(go)


def test_idle_stream_readexactly_reports_a_short_body() -> None:
    async def go() -> None:
        async with reader() as r:
            r.feed_data(b"abc")
            r.feed_eof()
            with pytest.raises(asyncio.IncompleteReadError) as err:
                await IdleTimeoutStream(r, TIMEOUT).readexactly(10)
            assert err.value.partial == b"abc"

    run(go)


BASE = {"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "password-123"}


def test_body_idle_timeout_setting() -> None:
    assert Settings.from_env(BASE).body_idle_timeout == DEFAULT_BODY_IDLE_TIMEOUT == 60.0
    env = {**BASE, "SEALSTORE_BODY_IDLE_TIMEOUT": "2.5"}
    assert Settings.from_env(env).body_idle_timeout == 2.5
    for bad in ("0", "0.5", "abc", "nan", "86400", "-1"):
        with pytest.raises(ConfigError, match="SEALSTORE_BODY_IDLE_TIMEOUT"):
            Settings.from_env({**BASE, "SEALSTORE_BODY_IDLE_TIMEOUT": bad})
