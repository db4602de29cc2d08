"""Incremental checksums for S3 flexible-checksum headers and trailers (``x-amz-checksum-*``).

Values travel as base64 of the big-endian digest.  CRC32 uses zlib; CRC32C and CRC64NVME use
``anycrc`` (a C table-driven implementation, ~10 GB/s here), because a pure-Python CRC would run
at a few MB/s and stall the event loop on large bodies.  SHA1/SHA256 use hashlib.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from functools import cache
from typing import Any, Final, Protocol

from .errors import S3Error

__all__ = [
    "ALGORITHMS",
    "HEADER_PREFIX",
    "Checksum",
    "decode_checksum_value",
    "header_name",
    "new_checksum",
]

HEADER_PREFIX: Final = "x-amz-checksum-"
# algorithm (lowercase, as in the header name) -> digest length in bytes
ALGORITHMS: Final[dict[str, int]] = {
    "crc32": 4,
    "crc32c": 4,
    "crc64nvme": 8,
    "sha1": 20,
    "sha256": 32,
}

# CRC-32C (Castagnoli, iSCSI) and CRC-64/NVME parameters from the RevEng catalogue.
_CRC_PARAMS: Final[dict[str, dict[str, int | bool]]] = {
    "crc32c": {
        "width": 32,
        "poly": 0x1EDC6F41,
        "init": 0xFFFFFFFF,
        "refin": True,
        "refout": True,
        "xorout": 0xFFFFFFFF,
    },
    "crc64nvme": {
        "width": 64,
        "poly": 0xAD93D23594C93659,
        "init": 0xFFFFFFFFFFFFFFFF,
        "refin": True,
        "refout": True,
        "xorout": 0xFFFFFFFFFFFFFFFF,
    },
}


@cache
def _crc_model(name: str) -> Any:
    """The anycrc model, imported on first use: a deployment without ``anycrc`` still serves
    CRC32/SHA checksums and answers CRC32C/CRC64NVME with a clear error instead of not
    starting at all."""
    try:
        import anycrc
    except ImportError:
        raise S3Error(
            "NotImplemented",
            f"The {name.upper()} checksum is not available on this server (anycrc missing).",
        ) from None
    return anycrc.CRC(**_CRC_PARAMS[name])


class Checksum(Protocol):
    """An incremental checksum; ``digest()`` may be called once the data is complete."""

    name: str

    def update(self, data: bytes | memoryview) -> None: ...

    def digest(self) -> bytes: ...

    def b64(self) -> str: ...


class _Base:
    name: str
    size: int

    def digest(self) -> bytes:
        raise NotImplementedError

    def b64(self) -> str:
        """Base64 of the digest, the form used in S3 headers and trailers."""
        return base64.b64encode(self.digest()).decode("ascii")


class _Crc32(_Base):
    name = "crc32"
    size = 4

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | memoryview) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


class _AnyCrc(_Base):
    def __init__(self, name: str, model: Any, size: int) -> None:
        self.name = name
        self.size = size
        self._model = model
        self._value: int | None = None

    def update(self, data: bytes | memoryview) -> None:
        if not len(data):
            return
        if self._value is None:
            self._value = self._model.calc(data)
        else:
            self._value = self._model.calc(data, self._value)

    def digest(self) -> bytes:
        value = self._value if self._value is not None else self._model.calc(b"")
        return value.to_bytes(self.size, "big")


class _Hashlib(_Base):
    def __init__(self, name: str) -> None:
        self.name = name
        self._h = hashlib.new(name)
        self.size = self._h.digest_size

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()


def new_checksum(algorithm: str) -> Checksum:
    """A fresh hasher for ``algorithm`` (case-insensitive: ``CRC32``, ``crc64nvme``, ...)."""
    alg = algorithm.lower()
    if alg == "crc32":
        return _Crc32()
    if alg in _CRC_PARAMS:
        return _AnyCrc(alg, _crc_model(alg), ALGORITHMS[alg])
    if alg in ("sha1", "sha256"):
        return _Hashlib(alg)
    raise S3Error("InvalidRequest", f"Value for x-amz-checksum-algorithm is invalid: {algorithm}")


def header_name(algorithm: str) -> str:
    """``crc32`` -> ``x-amz-checksum-crc32``."""
    return HEADER_PREFIX + algorithm.lower()


def decode_checksum_value(algorithm: str, value: str) -> bytes:
    """Decode and length-check a base64 checksum value sent by the client.

    A value that is not base64 of the right length is the client's malformed input, which S3
    answers with 400 InvalidRequest (a well-formed but wrong value is BadDigest, later).
    """
    alg = algorithm.lower()
    size = ALGORITHMS.get(alg)
    if size is None:
        raise S3Error("InvalidRequest", f"The checksum algorithm {algorithm} is not supported.")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise S3Error("InvalidRequest", f"Value for {header_name(alg)} header is invalid.")
    return raw
