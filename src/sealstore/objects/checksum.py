"""S3 flexible checksums as objects keep them: hashers, CRC combination, stored entries.

S3 lets a client name one of five algorithms (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) for an
object. A single PUT stores a FULL_OBJECT checksum (of the whole content). A multipart upload
chooses at CreateMultipartUpload between COMPOSITE (any algorithm) and FULL_OBJECT (CRCs
only); `multipart_checksum` computes those from the parts' checksums.

Values travel as base64 of the big-endian digest. CRC32 uses zlib; CRC32C and CRC64NVME use
``anycrc`` (a C table-driven implementation, ~10 GB/s here), because a pure-Python CRC would
run at a few MB/s and stall the event loop. SHA1/SHA256 use hashlib.

Where the checksum lives: one internal entry per object and per part (`META_CHECKSUM`,
``<alg>;<type>;<base64>[;<parts>]``), and per pending upload the chosen algorithm and type
(`META_UPLOAD_CHECKSUM`). Internal entries are never returned as headers; for an encrypted
object the object layout tag binds them (`objects.layout`), so an edited checksum is
detected like an edited size. Pure functions and small classes, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Protocol

from sealstore.objects.errors import InvalidRequest, NotSupported

ALGORITHMS: Final[dict[str, int]] = {
    "crc32": 4,
    "crc32c": 4,
    "crc64nvme": 8,
    "sha1": 20,
    "sha256": 32,
}
CRCS: Final = frozenset({"crc32", "crc32c", "crc64nvme"})
FULL_OBJECT: Final = "FULL_OBJECT"
COMPOSITE: Final = "COMPOSITE"
TYPES: Final = (FULL_OBJECT, COMPOSITE)
META_CHECKSUM: Final = "X-Sealstore-Internal-Checksum"
META_UPLOAD_CHECKSUM: Final = "X-Sealstore-Internal-Checksum-Algorithm"

# Normal polynomial, width (RevEng catalogue); all three are reflected with init = xorout =
# all ones, which is what makes the plain combination rule below exact.
_CRC_PARAMS: Final[dict[str, tuple[int, int]]] = {
    "crc32": (0x04C11DB7, 32),
    "crc32c": (0x1EDC6F41, 32),
    "crc64nvme": (0xAD93D23594C93659, 64),
}


class Hasher(Protocol):
    """An incremental checksum; ``digest()`` once the data is complete."""

    name: str

    def update(self, data: bytes | memoryview) -> None: ...

    def digest(self) -> bytes: ...

    def b64(self) -> str: ...


class _Base:
    name: str

    def digest(self) -> bytes:
        raise NotImplementedError

    def b64(self) -> str:
        """Base64 of the digest, the form used in S3 headers, trailers and XML."""
        return base64.b64encode(self.digest()).decode("ascii")


class _Crc32(_Base):
    name = "crc32"

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | memoryview) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


@cache
def _crc_model(name: str) -> Any:
    """The anycrc model, imported on first use: a deployment without ``anycrc`` still serves
    CRC32/SHA checksums and answers CRC32C/CRC64NVME with a clear error."""
    try:
        import anycrc
    except ImportError:
        raise NotSupported(
            f"The {name.upper()} checksum is not available on this server (anycrc missing)."
        ) from None
    poly, width = _CRC_PARAMS[name]
    ones = (1 << width) - 1
    return anycrc.CRC(width=width, poly=poly, init=ones, refin=True, refout=True, xorout=ones)


class _AnyCrc(_Base):
    def __init__(self, name: str) -> None:
        self.name = name
        self._size = ALGORITHMS[name]
        self._model = _crc_model(name)
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
        return value.to_bytes(self._size, "big")


class _Hashlib(_Base):
    def __init__(self, name: str) -> None:
        self.name = name
        self._h = hashlib.new(name)

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()


def normalize(algorithm: str) -> str:
    """``CRC32`` -> ``crc32``; InvalidRequest for an algorithm S3 does not define here."""
    alg = algorithm.strip().lower()
    if alg not in ALGORITHMS:
        raise InvalidRequest(
            "Checksum algorithm provided is unsupported. Please try again with any of the "
            "valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]"
        )
    return alg


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hasher for ``algorithm`` (case-insensitive)."""
    alg = normalize(algorithm)
    if alg == "crc32":
        return _Crc32()
    if alg in CRCS:
        return _AnyCrc(alg)
    return _Hashlib(alg)


# --------------------------------------------------------------------------- stored entries


def b64decode(alg: str, value: str) -> bytes | None:
    """The digest a base64 ``value`` carries, None unless it has ``alg``'s length."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == ALGORITHMS.get(alg, -1) else None


@dataclass(frozen=True)
class Checksum:
    """One stored checksum: lowercase algorithm, base64 digest, type, COMPOSITE part count."""

    algorithm: str
    value: str
    type: str = FULL_OBJECT
    parts: int = 0

    @property
    def shown(self) -> str:
        """The value as GET/HEAD and CompleteMultipartUpload show it (``-N`` if composite)."""
        return f"{self.value}-{self.parts}" if self.type == COMPOSITE else self.value

    @property
    def digest(self) -> bytes:
        """The binary digest (what a composite checksum of parts concatenates)."""
        return base64.b64decode(self.value)

    def encode(self) -> str:
        """The entry value, ``<alg>;<type>;<base64>[;<parts>]``."""
        tail = f";{self.parts}" if self.type == COMPOSITE else ""
        return f"{self.algorithm};{self.type};{self.value}{tail}"

    def entry(self) -> dict[str, str]:
        """The internal entry recording this checksum."""
        return {META_CHECKSUM: self.encode()}


def parse(raw: str | None) -> Checksum | None:
    """Decode an entry value; None when absent or malformed (a bound layout catches edits)."""
    if not raw:
        return None
    fields = raw.split(";")
    if len(fields) not in (3, 4) or fields[1] not in TYPES:
        return None
    alg, typ, value = fields[0], fields[1], fields[2]
    if alg not in ALGORITHMS or b64decode(alg, value) is None:
        return None
    parts = 0
    if typ == COMPOSITE:
        if len(fields) != 4 or not fields[3].isdigit():
            return None
        parts = int(fields[3])
    return Checksum(alg, value, typ, parts)


def stored(internal: Mapping[str, str]) -> Checksum | None:
    """The checksum recorded in an object's or part's internal entries."""
    return parse(internal.get(META_CHECKSUM))


def upload_choice(internal: Mapping[str, str]) -> tuple[str, str] | None:
    """``(algorithm, type)`` a pending upload was created with, None for no checksum."""
    raw = internal.get(META_UPLOAD_CHECKSUM, "")
    alg, _, typ = raw.partition(";")
    return (alg, typ) if alg in ALGORITHMS and typ in TYPES else None


def upload_entries(choice: tuple[str, str] | None) -> dict[str, str]:
    """The internal entry recording an upload's ``(algorithm, type)`` ({} for none)."""
    return {} if choice is None else {META_UPLOAD_CHECKSUM: f"{choice[0]};{choice[1]}"}


def body_entries(body: object) -> dict[str, str]:
    """The entry for the checksum a request body computed and should store ({} for none).

    Bodies that compute flexible checksums (`s3.body.RequestBody`) expose it as
    ``stored_checksum`` after iteration; other bodies (tests, tools) store none.
    """
    cs = getattr(body, "stored_checksum", None)
    return cs.entry() if isinstance(cs, Checksum) else {}


# --------------------------------------------------------------------------- copies


class CopyTap:
    """Hashes a copy's plaintext on its way through, for the copy's ETag and checksum.

    `for_object` follows S3's CopyObject rules: a requested algorithm gets a new FULL_OBJECT
    checksum; without one a source FULL_OBJECT checksum is kept as is (same bytes) and a
    COMPOSITE one is recomputed as FULL_OBJECT (the copy is a single-part object).
    `for_part` computes an UploadPartCopy part's checksum with its upload's algorithm.
    """

    def __init__(self, hasher: Hasher | None, kept: Checksum | None = None) -> None:
        self._hasher = hasher
        self._kept = kept
        self._md5 = hashlib.md5(usedforsecurity=False)

    @classmethod
    def for_object(cls, src_internal: Mapping[str, str], requested: str | None) -> CopyTap:
        """The tap for CopyObject of a source with ``src_internal`` entries."""
        if requested is not None:
            return cls(new_hasher(requested))
        src = stored(src_internal)
        if src is None:
            return cls(None)
        if src.type == FULL_OBJECT:
            return cls(None, src)
        return cls(new_hasher(src.algorithm))

    @classmethod
    def for_part(cls, upload_internal: Mapping[str, str]) -> CopyTap:
        """The tap for UploadPartCopy into an upload with ``upload_internal`` entries."""
        choice = upload_choice(upload_internal)
        return cls(None if choice is None else new_hasher(choice[0]))

    @property
    def md5(self) -> str:
        """Hex MD5 of what passed (a copy's ETag is its plaintext MD5)."""
        return self._md5.hexdigest()

    async def hashed(self, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """Pass chunks through, adding them to the MD5 and the checksum."""
        hasher, md5 = self._hasher, self._md5
        async for chunk in source:
            md5.update(chunk)
            if hasher is not None:
                hasher.update(chunk)
            yield chunk

    def entries(self) -> dict[str, str]:
        """The destination's checksum entry, once the copy stream is complete."""
        if self._hasher is not None:
            return Checksum(self._hasher.name, self._hasher.b64()).entry()
        return {} if self._kept is None else self._kept.entry()
