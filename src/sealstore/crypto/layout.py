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

The encoding is length-prefixed and versioned; the value stored is ``"2:" + hex(tag)``.
Format 2 also binds the S3 version id (``null`` for the null version), so swapping two
versions' index rows (all sealed for the same path) is detected as well, and the flexible
checksum entries, the object's and each stream's (what GetObjectAttributes, GET/HEAD with
checksum mode and ListParts report), so an edited checksum fails like an edited size.
Format 1 values (objects written before versioning and checksums) still verify, but only for
a null version without checksums: a format-1 tag never authenticates a row claiming another
version id or carrying a checksum. Pure functions, no I/O, like the rest of `crypto/`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from sealstore.crypto.dare import PAYLOAD_SIZE

VERSION = "2"
LEGACY_VERSION = "1"  # no version id bound: valid only for the null version
NULL_VERSION = "null"
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
    """What the tag binds: exact bucket and key, plaintext size, ETag, streams in order, and
    (format 2) the version id (None: the null version)."""

    bucket: str
    key: str
    size: int
    etag: str
    multipart: bool
    streams: tuple[Stream, ...]
    version_id: str | None = None
    checksum: str = ""  # the object's checksum entry ("" for none)


def layout_key(oek: bytes) -> bytes:
    """The MAC key: HMAC-SHA256(OEK, label); independent of the data, part and ETag keys."""
    if len(oek) != 32:
        raise ValueError("object key must be 32 bytes")
    return hmac.new(oek, _KEY_LABEL, hashlib.sha256).digest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def encode(layout: Layout, version: str = VERSION) -> bytes:
    """Canonical bytes of ``layout`` (every variable field length-prefixed, integers BE);
    format 1 (``version="1"``) leaves out the version id and the checksums."""
    legacy = version == LEGACY_VERSION
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
        + (b"" if legacy else _field(s.checksum.encode()))
        for s in layout.streams
    )
    if not legacy:
        out.append(_field((layout.version_id or NULL_VERSION).encode("utf-8", "surrogateescape")))
        out.append(_field(layout.checksum.encode()))
    return b"".join(out)


def tag(oek: bytes, layout: Layout, version: str = VERSION) -> bytes:
    """The 32-byte layout tag."""
    return hmac.new(layout_key(oek), encode(layout, version), hashlib.sha256).digest()


def seal(oek: bytes, layout: Layout) -> str:
    """The stored entry value for ``layout``: ``"<version>:<hex tag>"``."""
    return f"{VERSION}:{tag(oek, layout).hex()}"


def verify(oek: bytes, layout: Layout, stored: str) -> bool:
    """True when ``stored`` (a `seal` value) authenticates ``layout``; constant-time compare.

    LayoutError for a value that is not ``"2:"`` or ``"1:"`` followed by 64 hex digits (an
    unknown version is an error, not a pass: a newer writer's binding must not be silently
    skipped). A format-1 value authenticates only a null version without checksums (it
    bound neither).
    """
    version, sep, hex_tag = stored.partition(":")
    if not sep or version not in (VERSION, LEGACY_VERSION):
        raise LayoutError(f"unknown object layout version {version!r}")
    if version == LEGACY_VERSION and (
        layout.version_id is not None or layout.checksum or any(s.checksum for s in layout.streams)
    ):
        return False
    try:
        expected = bytes.fromhex(hex_tag)
    except ValueError:
        raise LayoutError("object layout tag is not hex") from None
    if len(expected) != 32:
        raise LayoutError("object layout tag has the wrong length")
    return hmac.compare_digest(expected, tag(oek, layout, version))


def streams_of(sizes: Sequence[tuple[int, int]]) -> tuple[Stream, ...]:
    """``(number, plaintext size)`` pairs as streams (no nonce)."""
    return tuple(Stream(number, size) for number, size in sizes)
