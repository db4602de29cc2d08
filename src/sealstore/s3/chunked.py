"""Streaming decoder for S3 ``aws-chunked`` request bodies.

Clients that cannot hash a body before sending it (boto3 with flexible checksums, the Go and
Java SDKs, minio clients) frame it as ``<hex-size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n``
chunks ending with a zero-size chunk and, optionally, trailing headers carrying a checksum.  In
the signed modes every chunk signature chains from the previous one (the first from the seed
signature of the Authorization header), so a proxy cannot reorder, drop or alter chunks.

The decoder yields plaintext as it arrives, in slices of at most ``read_size`` bytes read with
``readexactly`` (never byte loops, never the whole body), and raises :class:`S3Error` as soon
as framing, a chunk signature, the trailer signature or the decoded length is wrong.  Content
checksums in the trailers are *not* checked here: :mod:`.body` hashes the yielded data and
compares them, so one place owns every digest comparison.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from aiohttp.http_exceptions import LineTooLong

from .errors import S3Error
from .sigv4 import EMPTY_SHA256, AuthResult

__all__ = [
    "AwsChunkedDecoder",
    "ChunkStream",
    "chunk_signature",
    "trailer_signature",
]

MAX_LINE = 4096  # a chunk header is ~90 bytes; a trailer line well under 200
MAX_TRAILERS = 16
DEFAULT_READ_SIZE = 1 << 20
TRAILER_SIGNATURE = "x-amz-trailer-signature"

_LINE_ERRORS = (ValueError, LineTooLong)
_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_SIG = re.compile(rb"[0-9a-f]{64}")
_TRAILER_NAME = re.compile(r"[a-z0-9-]+")


class ChunkStream(Protocol):
    """The subset of :class:`aiohttp.StreamReader` the decoder uses."""

    async def readexactly(self, n: int) -> bytes: ...

    async def readline(self) -> bytes: ...

    async def read(self, n: int = -1) -> bytes: ...


def chunk_signature(
    signing_key: bytes, amz_date: str, scope: str, previous: str, data_sha256: str
) -> str:
    """Signature of one chunk, chained from ``previous`` (hex digest of the chunk data given)."""
    sts = (
        f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{data_sha256}"
    )
    return hmac.new(signing_key, sts.encode("ascii"), hashlib.sha256).hexdigest()


def canonical_trailers(trailers: Mapping[str, str]) -> bytes:
    """``name:value\\n`` per trailer, sorted by name: the bytes the trailer signature covers."""
    return "".join(f"{k.lower()}:{v.strip()}\n" for k, v in sorted(trailers.items())).encode()


def trailer_signature(
    signing_key: bytes, amz_date: str, scope: str, previous: str, trailers: Mapping[str, str]
) -> str:
    """Signature of the trailing headers, chained from the final (zero-size) chunk signature."""
    digest = hashlib.sha256(canonical_trailers(trailers)).hexdigest()
    sts = f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous}\n{digest}"
    return hmac.new(signing_key, sts.encode("ascii"), hashlib.sha256).hexdigest()


def _incomplete(detail: str) -> S3Error:
    return S3Error(
        "IncompleteBody",
        f"The request body ended before the aws-chunked encoding was complete: {detail}.",
    )


def _malformed(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked encoding: {detail}.")


class AwsChunkedDecoder:
    """Decode one ``aws-chunked`` body; iterate it once with ``async for``.

    After iteration finishes normally, :attr:`trailers` holds the trailing headers (lowercase
    names, signature removed) and :attr:`decoded_size` the number of payload bytes.
    """

    def __init__(
        self,
        stream: ChunkStream,
        auth: AuthResult,
        *,
        decoded_length: int | None,
        expected_trailers: Sequence[str] = (),
        max_chunk_size: int = 64 << 20,
        read_size: int = DEFAULT_READ_SIZE,
    ) -> None:
        if not auth.payload_mode.is_streaming:
            raise ValueError(f"payload mode {auth.payload_mode} is not aws-chunked")
        self._stream = stream
        self._auth = auth
        self._signed = auth.payload_mode.chunks_signed
        self._has_trailer = auth.payload_mode.has_trailer
        self._decoded_length = decoded_length
        self._expected = tuple(t.strip().lower() for t in expected_trailers if t.strip())
        self._max_chunk = max_chunk_size
        self._read_size = read_size
        self._previous = auth.seed_signature
        self._used = False
        self.trailers: dict[str, str] = {}
        self.decoded_size = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._used:
            raise RuntimeError("an aws-chunked body can be iterated only once")
        self._used = True
        return self._iterate()

    async def _readline(self, what: str) -> bytes:
        try:
            line = await self._stream.readline()
        except _LINE_ERRORS:  # line longer than the reader's buffer limit
            raise _malformed(f"{what} line too long") from None
        if not line:
            raise _incomplete(f"missing {what}")
        if len(line) > MAX_LINE:
            raise _malformed(f"{what} line too long")
        if not line.endswith(b"\n"):
            raise _incomplete(f"truncated {what}")
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    async def _readexactly(self, n: int) -> bytes:
        try:
            return await self._stream.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            raise _incomplete(f"expected {n} more bytes, got {len(exc.partial)}") from None

    async def _read_upto(self, n: int) -> bytes:
        """Up to ``n`` bytes, fewer only at EOF (``read`` may return short pieces)."""
        out = b""
        while len(out) < n:
            piece = await self._stream.read(n - len(out))
            if not piece:
                break
            out += piece
        return out

    def _parse_chunk_header(self, line: bytes) -> tuple[int, bytes | None]:
        size_part, sep, ext = line.partition(b";")
        if not _HEX_SIZE.fullmatch(size_part):
            raise _malformed("invalid chunk size")
        size = int(size_part, 16)
        if self._signed:
            name, eq, sig = ext.partition(b"=")
            if not sep or name.strip() != b"chunk-signature" or not eq:
                raise S3Error("SignatureDoesNotMatch", "The chunk is missing its chunk-signature.")
            sig = sig.strip().lower()
            if not _SIG.fullmatch(sig):
                raise S3Error("SignatureDoesNotMatch", "The chunk signature is malformed.")
            return size, sig
        if sep:
            raise _malformed("unexpected chunk extension in an unsigned aws-chunked body")
        return size, None

    def _check_signature(self, provided: bytes | None, data_sha256: str) -> None:
        assert provided is not None
        a = self._auth
        expected = chunk_signature(a.signing_key, a.amz_date, a.scope, self._previous, data_sha256)
        if not hmac.compare_digest(expected.encode("ascii"), provided):
            raise S3Error(
                "SignatureDoesNotMatch",
                "The chunk signature we calculated does not match the signature you provided.",
            )
        self._previous = expected

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            size, provided = self._parse_chunk_header(await self._readline("chunk header"))
            if size > self._max_chunk:
                raise _malformed(f"chunk of {size} bytes exceeds the {self._max_chunk} limit")
            if self._decoded_length is not None and self.decoded_size + size > (
                self._decoded_length
            ):
                raise S3Error(
                    "InvalidRequest",
                    "The aws-chunked body is longer than x-amz-decoded-content-length.",
                )
            hasher = hashlib.sha256() if self._signed else None
            remaining = size
            while remaining:
                data = await self._readexactly(min(remaining, self._read_size))
                remaining -= len(data)
                if hasher is not None:
                    hasher.update(data)
                self.decoded_size += len(data)
                yield data
            if self._signed:
                digest = hasher.hexdigest() if hasher is not None else EMPTY_SHA256
                self._check_signature(provided, digest)
            if size == 0:
                break
            if await self._readexactly(2) != b"\r\n":
                raise _malformed("chunk data not followed by CRLF")
        await self._finish()

    async def _finish(self) -> None:
        if self._has_trailer:
            await self._read_trailers()
        else:
            # The final chunk is followed by an empty line; tolerate its absence at EOF.
            tail = await self._read_upto(2)
            if tail not in (b"", b"\r\n"):
                raise _malformed("data after the final chunk")
        if await self._stream.read(1):
            raise _malformed("data after the end of the aws-chunked body")
        if self._decoded_length is not None and self.decoded_size != self._decoded_length:
            raise S3Error(
                "IncompleteBody",
                f"The decoded body has {self.decoded_size} bytes but "
                f"x-amz-decoded-content-length says {self._decoded_length}.",
            )

    async def _read_trailers(self) -> None:
        received: dict[str, str] = {}
        signature: str | None = None
        while True:
            try:
                line = await self._stream.readline()
            except _LINE_ERRORS:
                raise S3Error("MalformedTrailerError") from None
            if not line or line in (b"\r\n", b"\n"):
                break  # blank line ends the trailers; EOF is tolerated the same way
            if len(line) > MAX_LINE or len(received) >= MAX_TRAILERS:
                raise S3Error("MalformedTrailerError")
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            name, colon, value = text.partition(":")
            name = name.strip().lower()
            if not colon or not _TRAILER_NAME.fullmatch(name):
                raise S3Error("MalformedTrailerError")
            if signature is not None:
                raise S3Error(
                    "MalformedTrailerError",
                    "The trailer signature must be the last trailing header.",
                )
            if name == TRAILER_SIGNATURE:
                signature = value.strip()
                continue
            if name in received:
                raise S3Error("MalformedTrailerError", f"Duplicate trailing header {name}.")
            received[name] = value.strip()
        unexpected = sorted(set(received) - set(self._expected))
        missing = sorted(set(self._expected) - set(received))
        if unexpected or missing:
            raise S3Error(
                "MalformedTrailerError",
                "The trailing headers do not match x-amz-trailer "
                f"(unexpected: {', '.join(unexpected) or 'none'}; "
                f"missing: {', '.join(missing) or 'none'}).",
            )
        if self._signed:
            if signature is None:
                raise S3Error("SignatureDoesNotMatch", "The trailer signature is missing.")
            a = self._auth
            expected = trailer_signature(
                a.signing_key, a.amz_date, a.scope, self._previous, received
            )
            if not hmac.compare_digest(expected.encode("ascii"), signature.lower().encode()):
                raise S3Error(
                    "SignatureDoesNotMatch",
                    "The trailer signature we calculated does not match the one you provided.",
                )
        elif signature is not None:
            raise S3Error("MalformedTrailerError", "Unsigned trailers must not carry a signature.")
        self.trailers = received
