"""Deterministic pseudo-random object content for the SSE client.

The round trip uploads content that a storage host must be able to regenerate later from a
short seed, so that ``sealstore-client scan`` can prove the plaintext is absent from the data
directory without the plaintext ever being copied there. AES-256-CTR keystream gives
incompressible, non-repeating bytes at several GiB/s and allows random access (a range check
or a scan confirmation regenerates any slice without producing the prefix).
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_DOMAIN = b"sealstore-client content v1\x00"
_BLOCK = 16
DEFAULT_CHUNK = 1 << 20


def new_seed() -> str:
    """Return a fresh random run seed (hex, short enough to type on a storage host)."""
    return secrets.token_hex(8)


def object_seed(run_seed: str, index: int) -> str:
    """Seed of the index-th object of a run: distinct content per object, one recorded root."""
    return f"{run_seed}.{index}"


def _key(seed: str) -> bytes:
    return hashlib.sha256(_DOMAIN + seed.encode("utf-8")).digest()


def generate(seed: str, offset: int, length: int) -> bytes:
    """Bytes ``[offset, offset+length)`` of the content stream named by ``seed``."""
    if offset < 0 or length < 0:
        raise ValueError("offset and length must be >= 0")
    if length == 0:
        return b""
    block, skip = divmod(offset, _BLOCK)
    counter = block.to_bytes(16, "big")
    enc = Cipher(algorithms.AES(_key(seed)), modes.CTR(counter)).encryptor()
    return enc.update(bytes(skip + length))[skip:]


def iter_chunks(seed: str, size: int, chunk: int = DEFAULT_CHUNK) -> Iterator[bytes]:
    """Yield the whole content of ``size`` bytes in chunks (bounded memory)."""
    enc = Cipher(algorithms.AES(_key(seed)), modes.CTR(bytes(16))).encryptor()
    done = 0
    while done < size:
        n = min(chunk, size - done)
        yield enc.update(bytes(n))
        done += n


def digests(seed: str, size: int) -> tuple[str, str]:
    """Return (sha256 hex, md5 hex) of the content without holding it in memory."""
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    for piece in iter_chunks(seed, size):
        sha.update(piece)
        md5.update(piece)
    return sha.hexdigest(), md5.hexdigest()


class ContentReader(io.RawIOBase):
    """Seekable read-only file object over a content slice, so boto3 can stream large bodies.

    boto3 reads a body once for checksums and again to send it; seeking regenerates the
    keystream at the new position instead of buffering the object.
    """

    def __init__(self, seed: str, size: int, start: int = 0) -> None:
        super().__init__()
        self._seed = seed
        self._start = start
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError("negative seek position")
        self._pos = target
        return target

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        n = max(0, min(len(view), self._size - self._pos, DEFAULT_CHUNK))
        if n == 0:
            return 0
        view[:n] = generate(self._seed, self._start + self._pos, n)
        self._pos += n
        return n

    def __len__(self) -> int:
        return self._size
