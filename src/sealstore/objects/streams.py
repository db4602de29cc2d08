"""Body streams of the object service: encrypt into a writer, bound a part.

Split from `service.py` so that module stays about which keys and streams an operation uses;
these helpers only move bytes (the backend runs the DARE encryptor in its own thread hops).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

from sealstore.crypto import dare
from sealstore.objects import layout
from sealstore.objects.errors import EntityTooLarge
from sealstore.storage.contract import ObjectWriter, PartWriter


class HashedBody(Protocol):
    """A request body: plaintext chunks, and the MD5 of all of them once iterated."""

    md5_hex: str | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...


async def fill(
    writer: ObjectWriter | PartWriter, key: bytes | None, source: AsyncIterable[bytes]
) -> dict[str, str]:
    """Stream ``source`` into ``writer``, as one DARE 2.0 stream under ``key`` when given;
    return the entry recording the stream's nonce ({} when unencrypted) for the layout.

    The backend batches the plaintext and runs the encryptor together with its file write
    (one worker-thread hop per ~1 MiB); AES never runs on the event loop.
    """
    encryptor = None if key is None else dare.DareEncryptor(key)
    if encryptor is not None:
        writer.set_transform(encryptor)
    async for chunk in source:
        if chunk:
            await writer.write(chunk)
    return {} if encryptor is None else layout.nonce_entry(encryptor.nonce)


async def bounded(source: HashedBody, limit: int) -> AsyncIterator[bytes]:
    """Pass body chunks through, failing with EntityTooLarge once ``limit`` is exceeded."""
    seen = 0
    async for chunk in source:
        seen += len(chunk)
        if seen > limit:
            raise EntityTooLarge(f"A part may be at most {limit} bytes")
        yield chunk
