"""Pass-through stream helpers of the object service's write paths (no I/O of their own)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator

from sealstore.objects.errors import EntityTooLarge


async def hashed(source: AsyncIterable[bytes], md5: hashlib._Hash) -> AsyncIterator[bytes]:
    """Pass chunks through, adding them to ``md5`` (a copy's ETag is its plaintext MD5)."""
    async for chunk in source:
        md5.update(chunk)
        yield chunk


async def bounded(source: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass body chunks through, failing with EntityTooLarge once ``limit`` is exceeded."""
    seen = 0
    async for chunk in source:
        seen += len(chunk)
        if seen > limit:
            raise EntityTooLarge(f"A part may be at most {limit} bytes")
        yield chunk
