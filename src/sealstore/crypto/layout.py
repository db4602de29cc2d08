"""The authenticated object layout: size, part list and final packages, bound under the OEK.

DARE authenticates every package of a stream and its position, but only within one stream and
only against what the reader *asks for*: the reader learns how many bytes and which streams to
read from the index, and the index is not authenticated. Editing a part list (dropping or
reordering parts) or cutting the size back to a package boundary therefore yields a shorter or
reordered plaintext in which every package still verifies. This module closes that gap: a tag

    tag = HMAC-SHA256(HMAC-SHA256(OEK, "sealstore object layout v1"), encode(layout))

over the exact bucket and key, the plaintext size, the client-visible ETag and, per DARE
stream in order, its part number, plaintext size, package count (so the final package's
sequence number, count - 1, is fixed) and stream nonce (so the stream, final package
included, is exactly the one written: not an earlier upload of the same part under the same
part key; empty for parts uploaded before nonces were recorded). Whoever can change the
index cannot recompute it without the OEK, which only the KMS can unseal.

The encoding is length-prefixed and versioned; the value stored is ``"1:" + hex(tag)``.
Version 2 also binds the object's flexible checksum entry and each stream's (what
GetObjectAttributes, GET/HEAD with checksum mode and ListParts report), so an edited checksum
fails like an edited size. It is used only when some checksum is present, so layouts without
one encode exactly as before and objects sealed earlier keep verifying; a version-1 tag never
authenticates a layout that has a checksum. Pure functions, no I/O, like the rest of
`crypto/`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from sealstore.crypto.dare import PAYLOAD_SIZE

VERSION = "1"
VERSION_CHECKSUMS = "2"  # version 1 plus the object's and each stream's checksum entry
_KEY_LABEL = b"sealstore object layout v1"
_MAGIC = b"sealstore-layout\x00"
SINGLE_PART = 0  # the part number recorded for a single-part object's only stream


class LayoutError(Exception):
    """A stored layout entry is malformed or of an unknown version."""


@dataclass(frozen=True)
class Stream:
    """One DARE stream of an object: part number (0 = single-part), plaintext size and the
    12-byte stream nonce its writer chose (b"" when unknown)."""

    number: int
    size: int
    nonce: bytes = b""
    checksum: str = ""  # the part's checksum entry ("" for none or single-part streams)

    @property
    def packages(self) -> int:
        """DARE packages in the stream; the final one has sequence number ``packages - 1``."""
        return -(-self.size // PAYLOAD_SIZE)


@dataclass(frozen=True)
class Layout:
    """What the tag binds: exact bucket and key, plaintext size, ETag, streams in order."""

    bucket: str
    key: str
    size: int
    etag: str
    multipart: bool
    streams: tuple[Stream, ...]
    checksum: str = ""  # the object's checksum entry ("" for none)


def layout_key(oek: bytes) -> bytes:
    """The MAC key: HMAC-SHA256(OEK, label); independent of the data, part and ETag keys."""
    if len(oek) != 32:
        raise ValueError("object key must be 32 bytes")
    return hmac.new(oek, _KEY_LABEL, hashlib.sha256).digest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def version_of(layout: Layout) -> str:
    """The encoding version a new tag of ``layout`` uses (2 only when a checksum is bound)."""
    if layout.checksum or any(s.checksum for s in layout.streams):
        return VERSION_CHECKSUMS
    return VERSION


def encode(layout: Layout, version: str | None = None) -> bytes:
    """Canonical bytes of ``layout`` (every variable field length-prefixed, integers BE)."""
    version = version or version_of(layout)
    extended = version == VERSION_CHECKSUMS
    out = [
        _MAGIC,
        _field(version.encode()),
        _field(layout.bucket.encode("utf-8", "surrogateescape")),
        _field(layout.key.encode("utf-8", "surrogateescape")),
        struct.pack(">Q", layout.size),
        _field(layout.etag.encode("utf-8", "surrogateescape")),
        struct.pack(">BI", 1 if layout.multipart else 0, len(layout.streams)),
    ]
    out.extend(
        struct.pack(">IQQ", s.number, s.size, s.packages)
        + _field(s.nonce)
        + (_field(s.checksum.encode()) if extended else b"")
        for s in layout.streams
    )
    if extended:
        out.append(_field(layout.checksum.encode()))
    return b"".join(out)


def tag(oek: bytes, layout: Layout, version: str | None = None) -> bytes:
    """The 32-byte layout tag."""
    return hmac.new(layout_key(oek), encode(layout, version), hashlib.sha256).digest()


def seal(oek: bytes, layout: Layout) -> str:
    """The stored entry value for ``layout``: ``"<version>:<hex tag>"``."""
    version = version_of(layout)
    return f"{version}:{tag(oek, layout, version).hex()}"


def verify(oek: bytes, layout: Layout, stored: str) -> bool:
    """True when ``stored`` (a `seal` value) authenticates ``layout``; constant-time compare.

    LayoutError for a value that is not ``"1:"`` followed by 64 hex digits (an unknown
    version is an error, not a pass: a newer writer's binding must not be silently skipped).
    """
    version, sep, hex_tag = stored.partition(":")
    if not sep or version not in (VERSION, VERSION_CHECKSUMS):
        raise LayoutError(f"unknown object layout version {version!r}")
    try:
        expected = bytes.fromhex(hex_tag)
    except ValueError:
        raise LayoutError("object layout tag is not hex") from None
    if len(expected) != 32:
        raise LayoutError("object layout tag has the wrong length")
    if version == VERSION and version_of(layout) != VERSION:
        return False  # a checksum appeared beside a tag that never bound one
    return hmac.compare_digest(expected, tag(oek, layout, version))


def streams_of(sizes: Sequence[tuple[int, int]]) -> tuple[Stream, ...]:
    """``(number, plaintext size)`` pairs as streams (no nonce)."""
    return tuple(Stream(number, size) for number, size in sizes)
