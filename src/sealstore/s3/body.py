"""The one request-body reader handlers use: decode, bound, hash and verify while streaming.

``async for chunk in RequestBody(request.content, auth, request.headers, max_size=...)`` yields
plaintext payload bytes (``aws-chunked`` framing removed) and, *before the loop ends*, checks
everything the client declared about the body: the signed SHA-256, ``Content-MD5``, every
``x-amz-checksum-*`` header or trailer, and the length.  Any mismatch raises :class:`S3Error`
out of the ``async for``, so a handler that streams into a temporary file and commits only after
the loop can never commit a body that failed verification.

Header problems that can be detected up front (malformed Content-MD5, malformed checksum value,
a declared size over ``max_size``) raise when the body is constructed, before reading anything.

A client that stops sending mid-body would otherwise hold its connection and the handler's
temporary file for ever: with ``idle_timeout`` set, every read must receive some bytes within
that many seconds or the iteration raises ``RequestTimeout`` (S3's code for exactly this), and
the handler's cleanup removes the temporary file as for any other failed body.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping

from aiohttp.http_exceptions import PayloadEncodingError
from aiohttp.web_protocol import RequestPayloadError

from sealstore.objects.checksum import Checksum as StoredChecksum

from .checksums import (
    ALGORITHMS,
    HEADER_PREFIX,
    NOT_VALUES,
    Checksum,
    decode_checksum_value,
    header_name,
    new_checksum,
)
from .chunked import AwsChunkedDecoder, ChunkStream
from .errors import S3Error
from .sigv4 import AuthResult, PayloadMode

__all__ = ["DEFAULT_READ_SIZE", "MAX_UPLOAD_SIZE", "IdleTimeoutStream", "RequestBody"]

DEFAULT_READ_SIZE = 1 << 20
# Hashing a slice this large (MD5 + SHA-256 + a CRC: ~2 ms per MiB) runs in a worker thread:
# hashlib and zlib release the GIL, so the event loop keeps serving other requests meanwhile.
OFFLOAD_HASHING_AT = 256 << 10
# S3's limit for one PUT (and one part); the default bound so no request can fill the disk.
MAX_UPLOAD_SIZE = 5 * 1024**3
_STREAM_ERRORS = (
    RequestPayloadError,
    PayloadEncodingError,
    asyncio.IncompleteReadError,
    ConnectionError,
)


def _parse_length(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        raise S3Error("InvalidArgument", f"{name} must be a non-negative integer.")
    return int(value)


def _parse_content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise S3Error("InvalidDigest")
    return raw


class IdleTimeoutStream:
    """A :class:`ChunkStream` whose every wait for data is bounded by ``timeout`` seconds.

    ``readexactly`` is the same loop of ``read`` calls aiohttp's own is, with the bound on each
    call: a slow client that keeps sending is never cut off, one that sends nothing for
    ``timeout`` seconds is.  Expiry raises ``RequestTimeout``.
    """

    def __init__(self, stream: ChunkStream, timeout: float) -> None:
        self._stream = stream
        self._timeout = timeout

    def _timed_out(self) -> S3Error:
        return S3Error(
            "RequestTimeout",
            f"Your socket connection to the server was not read from or written to within "
            f"the timeout period ({self._timeout:g} seconds without request body data).",
        )

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes, waiting at most the idle timeout for the first of them."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self._stream.read(n)
        except TimeoutError:
            raise self._timed_out() from None

    async def readline(self) -> bytes:
        """One line (chunk headers and trailers are short), within the idle timeout."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self._stream.readline()
        except TimeoutError:
            raise self._timed_out() from None

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; IncompleteReadError if the body ends first."""
        blocks: list[bytes] = []
        while n > 0:
            block = await self.read(n)
            if not block:
                partial = b"".join(blocks)
                raise asyncio.IncompleteReadError(partial, len(partial) + n)
            blocks.append(block)
            n -= len(block)
        return blocks[0] if len(blocks) == 1 else b"".join(blocks)


class RequestBody:
    """Verified, bounded, streaming view of one request body.  Iterate it exactly once.

    After a complete iteration: :attr:`size` (payload bytes), :attr:`md5_hex` (for the ETag),
    :attr:`checksums` (``x-amz-checksum-<alg>`` -> base64 value to echo in the response) and
    :attr:`stored_checksum` (what the object service records with the object or part).

    ``checksum_headers=False`` is for requests whose ``x-amz-checksum-*`` headers describe
    something else than the body (CompleteMultipartUpload: the whole object).
    """

    def __init__(
        self,
        stream: ChunkStream,
        auth: AuthResult,
        headers: Mapping[str, str],
        *,
        max_size: int | None = MAX_UPLOAD_SIZE,
        compute_md5: bool = True,
        read_size: int = DEFAULT_READ_SIZE,
        idle_timeout: float | None = None,
        checksum_headers: bool = True,
    ) -> None:
        self._stream = stream if idle_timeout is None else IdleTimeoutStream(stream, idle_timeout)
        self._auth = auth
        self._mode = auth.payload_mode
        self._max_size = max_size
        self._read_size = read_size
        self._used = False
        self.size = 0
        self.md5_hex: str | None = None
        self.checksums: dict[str, str] = {}
        self.complete = False
        self.store_checksum = True
        self._checksum_headers = checksum_headers

        self._content_length = _parse_length(headers.get("content-length"), "Content-Length")
        self._decoded_length: int | None = None
        if self._mode.is_streaming:
            self._decoded_length = _parse_length(
                headers.get("x-amz-decoded-content-length"), "x-amz-decoded-content-length"
            )
            if self._decoded_length is None:
                raise S3Error(
                    "MissingContentLength",
                    "You must provide the x-amz-decoded-content-length header with aws-chunked "
                    "bodies.",
                )
        self.declared_length = (
            self._decoded_length if self._mode.is_streaming else self._content_length
        )
        if (
            max_size is not None
            and self.declared_length is not None
            and self.declared_length > max_size
        ):
            raise S3Error(
                "EntityTooLarge",
                f"Your proposed upload is {self.declared_length} bytes; the maximum allowed "
                f"here is {max_size} bytes.",
            )

        self._content_md5 = _parse_content_md5(headers.get("content-md5"))
        self._md5 = hashlib.md5() if (compute_md5 or self._content_md5) else None  # noqa: S324
        self._sha256 = hashlib.sha256() if self._mode is PayloadMode.SIGNED else None
        self._header_checksums, self._trailer_algs = self._checksum_plan(headers)
        self._hashers: dict[str, Checksum] = {}
        for alg in (*self._header_checksums, *self._trailer_algs):
            self._hashers[alg] = new_checksum(alg)
        sdk_alg = headers.get("x-amz-sdk-checksum-algorithm")
        if sdk_alg is not None:
            alg = sdk_alg.strip().lower()
            if alg not in ALGORITHMS:
                raise S3Error(
                    "InvalidRequest",
                    f"Value for x-amz-sdk-checksum-algorithm is invalid: {sdk_alg}",
                )
            if self._hashers and alg not in self._hashers:
                raise S3Error(
                    "InvalidRequest",
                    "Value for x-amz-sdk-checksum-algorithm header is invalid: it does not match "
                    "the x-amz-checksum header or trailer sent.",
                )
            self._hashers.setdefault(alg, new_checksum(alg))

    def _checksum_plan(self, headers: Mapping[str, str]) -> tuple[dict[str, bytes], list[str]]:
        """Checksums declared in headers (algorithm -> expected digest) and in the trailer."""
        declared: dict[str, bytes] = {}
        for name in {k.lower() for k in headers} if self._checksum_headers else ():
            if name.startswith(HEADER_PREFIX) and name not in NOT_VALUES:
                alg = name[len(HEADER_PREFIX) :]
                value = headers.get(name)
                assert value is not None
                declared[alg] = decode_checksum_value(alg, value)
        trailer_algs: list[str] = []
        raw_trailer = headers.get("x-amz-trailer")
        if raw_trailer is not None and raw_trailer.strip():
            if not self._mode.has_trailer:
                raise S3Error(
                    "InvalidRequest",
                    "x-amz-trailer requires an x-amz-content-sha256 value with a trailer "
                    "(STREAMING-...-TRAILER).",
                )
            for item in raw_trailer.split(","):
                name = item.strip().lower()
                alg = name[len(HEADER_PREFIX) :] if name.startswith(HEADER_PREFIX) else ""
                if alg not in ALGORITHMS:
                    raise S3Error(
                        "InvalidRequest", f"The trailing header {item.strip()} is not supported."
                    )
                trailer_algs.append(alg)
        if len(declared) + len(trailer_algs) > 1:
            raise S3Error(
                "InvalidRequest",
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not "
                "allowed.",
            )
        return declared, trailer_algs

    @property
    def declared_algorithm(self) -> str | None:
        """The algorithm the client declared (header, trailer or x-amz-sdk-checksum-algorithm)."""
        return next(iter(self._hashers), None)

    def require(self, algorithm: str) -> None:
        """Also compute ``algorithm`` (before iterating): a FULL_OBJECT upload's part that
        came without a checksum still needs its CRC for the combination."""
        if self._used:
            raise RuntimeError("require() must be called before the body is read")
        self._hashers.setdefault(algorithm, new_checksum(algorithm))

    @property
    def stored_checksum(self) -> StoredChecksum | None:
        """The FULL_OBJECT checksum of the body to record (None: none computed, not yet
        verified, or ``store_checksum`` turned off)."""
        if not (self.complete and self.store_checksum and self._hashers):
            return None
        alg, hasher = next(iter(self._hashers.items()))
        return StoredChecksum(alg, hasher.b64())

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._used:
            raise RuntimeError("a request body can be iterated only once")
        self._used = True
        return self._iterate()

    async def read(self, limit: int) -> bytes:
        """The whole body, verified, for small documents (XML); over ``limit`` bytes raises
        EntityTooLarge before more than ``limit`` bytes are held in memory."""
        if self.declared_length is not None and self.declared_length > limit:
            raise S3Error("EntityTooLarge", f"The request body may be at most {limit} bytes.")
        buf = bytearray()
        async for chunk in self:
            buf += chunk
            if len(buf) > limit:
                raise S3Error("EntityTooLarge", f"The request body may be at most {limit} bytes.")
        return bytes(buf)

    async def _iterate(self) -> AsyncIterator[bytes]:
        decoder: AwsChunkedDecoder | None = None
        if self._mode.is_streaming:
            decoder = AwsChunkedDecoder(
                self._stream,
                self._auth,
                decoded_length=self._decoded_length,
                expected_trailers=[header_name(a) for a in self._trailer_algs],
                read_size=self._read_size,
            )
            source = aiter(decoder)
        else:
            source = self._raw_chunks()
        try:
            async for chunk in source:
                if len(chunk) >= OFFLOAD_HASHING_AT:
                    await asyncio.to_thread(self._consume, chunk)
                else:
                    self._consume(chunk)
                yield chunk
        except _STREAM_ERRORS:
            raise S3Error("IncompleteBody") from None
        self._verify(decoder)
        self.complete = True

    async def _raw_chunks(self) -> AsyncIterator[bytes]:
        remaining = self._content_length
        if remaining is not None:
            while remaining > 0:
                # readexactly gives large, evenly sized pieces (good for 64 KiB DARE packages)
                # while bounding memory to read_size.
                chunk = await self._stream.readexactly(min(remaining, self._read_size))
                remaining -= len(chunk)
                yield chunk
            if await self._stream.read(1):
                raise S3Error("IncompleteBody", "The request body is longer than Content-Length.")
            return
        while True:  # HTTP chunked transfer encoding: length known only at the end
            chunk = await self._stream.read(self._read_size)
            if not chunk:
                return
            yield chunk

    def _consume(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._max_size is not None and self.size > self._max_size:
            raise S3Error(
                "EntityTooLarge",
                f"Your upload exceeds the maximum allowed size of {self._max_size} bytes.",
            )
        if self._md5 is not None:
            self._md5.update(chunk)
        if self._sha256 is not None:
            self._sha256.update(chunk)
        for hasher in self._hashers.values():
            hasher.update(chunk)

    def _verify(self, decoder: AwsChunkedDecoder | None) -> None:
        if self.declared_length is not None and self.size != self.declared_length:
            raise S3Error(
                "IncompleteBody",
                f"The body has {self.size} bytes but {self.declared_length} were declared.",
            )
        if self._sha256 is not None:
            declared = self._auth.declared_sha256 or ""
            if not hmac.compare_digest(self._sha256.hexdigest(), declared):
                raise S3Error(
                    "XAmzContentSHA256Mismatch",
                    extra={
                        "ClientComputedContentSHA256": declared,
                        "S3ComputedContentSHA256": self._sha256.hexdigest(),
                    },
                )
        if self._md5 is not None:
            digest = self._md5.digest()
            self.md5_hex = digest.hex()
            if self._content_md5 is not None and not hmac.compare_digest(digest, self._content_md5):
                raise S3Error("BadDigest")
        expected = dict(self._header_checksums)
        if decoder is not None:
            for alg in self._trailer_algs:
                value = decoder.trailers.get(header_name(alg), "")
                expected[alg] = decode_checksum_value(alg, value)
        for alg, want in expected.items():
            got = self._hashers[alg].digest()
            if not hmac.compare_digest(got, want):
                raise S3Error(
                    "BadDigest",
                    f"The {alg.upper()} you specified did not match the calculated checksum.",
                )
        self.checksums = {header_name(alg): h.b64() for alg, h in self._hashers.items()}
