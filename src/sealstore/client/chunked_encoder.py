"""Client-side ``aws-chunked`` framing: what boto3, the Go and Java SDKs and minio clients send.

The server only decodes (:mod:`sealstore.s3.chunked`); this encoder exists for the tests, to
produce bodies in every payload mode (signed chunks, trailers, unsigned trailers) and to
tamper with them.  Chunk and trailer signatures come from the decoder's own
:func:`~sealstore.s3.chunked.chunk_signature` and
:func:`~sealstore.s3.chunked.trailer_signature`, so the two sides share one definition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping

from sealstore.s3.chunked import TRAILER_SIGNATURE, chunk_signature, trailer_signature
from sealstore.s3.sigv4 import EMPTY_SHA256, PayloadMode

__all__ = ["encode_aws_chunked"]


def encode_aws_chunked(
    chunks: Iterable[bytes],
    mode: PayloadMode,
    *,
    signing_key: bytes = b"",
    seed_signature: str = "",
    amz_date: str = "",
    scope: str = "",
    trailers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
) -> Iterator[bytes]:
    """Frame ``chunks`` as an ``aws-chunked`` body in ``mode`` (what a client sends).

    ``trailers`` may be a callable evaluated after the last chunk, so a checksum can be computed
    while streaming.  Empty input chunks are skipped (a zero-size chunk ends the body).
    """
    if not mode.is_streaming:
        raise ValueError(f"{mode} is not an aws-chunked mode")
    signed = mode.chunks_signed
    previous = seed_signature
    for data in chunks:
        if not data:
            continue
        if signed:
            previous = chunk_signature(
                signing_key, amz_date, scope, previous, hashlib.sha256(data).hexdigest()
            )
            yield f"{len(data):x};chunk-signature={previous}\r\n".encode() + data + b"\r\n"
        else:
            yield f"{len(data):x}\r\n".encode() + data + b"\r\n"
    if signed:
        previous = chunk_signature(signing_key, amz_date, scope, previous, EMPTY_SHA256)
        yield f"0;chunk-signature={previous}\r\n".encode()
    else:
        yield b"0\r\n"
    if not mode.has_trailer:
        yield b"\r\n"
        return
    resolved = dict(trailers() if callable(trailers) else (trailers or {}))
    out = b"".join(f"{k}:{v}\r\n".encode() for k, v in resolved.items())
    if signed:
        sig = trailer_signature(signing_key, amz_date, scope, previous, resolved)
        out += f"{TRAILER_SIGNATURE}:{sig}\r\n".encode()
    yield out + b"\r\n"
