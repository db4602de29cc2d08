"""A small streaming ``multipart/form-data`` reader (RFC 7578) for browser POST uploads.

S3's PostObject sends the form fields first and the object as the ``file`` part; everything
after the file is ignored.  So the reader offers exactly two ways to consume a part: read a
small field whole (:meth:`FormReader.read_value`, refused past a byte limit) or stream it
(:meth:`FormReader.stream`) in pieces of at most ``read_size`` bytes, never holding more than
one read plus a delimiter's length in memory.  A delimiter split across two network reads is
found because the last ``len(delimiter) - 1`` bytes of every read are held back until the next
one shows whether they start a delimiter.

Every malformation (no boundary, no closing delimiter, a part without a ``form-data``
Content-Disposition naming it, undecodable headers) raises :class:`FormError`; a field or header
section over its limit raises :class:`FormLimitError`.  The handler turns them into S3's
``MalformedPOSTRequest`` and ``MaxPostPreDataLengthExceededError``.  Nothing here knows S3.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "FormError",
    "FormLimitError",
    "FormPart",
    "FormReader",
    "boundary_of",
    "header_params",
]

# RFC 2046: a boundary is 1..70 characters.
MAX_BOUNDARY = 70
# Transport padding and the CRLF after a delimiter: anything longer is not padding.
_MAX_PADDING = 64


class FormError(ValueError):
    """The body is not well-formed multipart/form-data."""


class FormLimitError(FormError):
    """A field value or part header section is larger than the caller allows."""


class ByteStream(Protocol):
    """What the reader needs from a request body (aiohttp's StreamReader has it)."""

    async def read(self, n: int = -1) -> bytes: ...


@dataclass(frozen=True)
class FormPart:
    """One part's headers: its field ``name`` as sent, the ``filename`` and Content-Type if
    given, and how many bytes its header section took (the caller counts them)."""

    name: str
    filename: str | None
    content_type: str | None
    header_size: int


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type; a=b; c="d \\" e"`` into the lower-cased first token and its parameters
    (names lower-cased, quoted strings unquoted with backslash escapes removed)."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == ";" and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    params: dict[str, str] = {}
    for item in items[1:]:
        name, sep, raw = item.strip().partition("=")
        if not sep:
            continue
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            out, it = [], iter(raw[1:-1])
            for ch in it:
                out.append(next(it, "") if ch == "\\" else ch)
            raw = "".join(out)
        params.setdefault(name.strip().lower(), raw)
    return items[0].strip().lower(), params


def boundary_of(content_type: str | None) -> str | None:
    """The boundary of a ``multipart/form-data`` Content-Type, None if it is not one."""
    if content_type is None:
        return None
    kind, params = header_params(content_type)
    if kind != "multipart/form-data":
        return None
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= MAX_BOUNDARY or not boundary.isascii():
        raise FormError("the multipart boundary is missing or invalid")
    return boundary


class FormReader:
    """Parts of one multipart/form-data body, in order; see the module docstring."""

    def __init__(self, stream: ByteStream, boundary: str, *, read_size: int = 1 << 20) -> None:
        self._stream = stream
        self._delimiter = b"\r\n--" + boundary.encode("ascii")
        self._read_size = read_size
        # A virtual CRLF in front lets the first delimiter be found like every other one.
        self._buf = bytearray(b"\r\n")
        self._eof = False
        self._started = False
        self._in_part = False
        self._done = False

    async def _more(self) -> bool:
        """Append one read to the buffer; False at the end of the body."""
        if self._eof:
            return False
        data = await self._stream.read(self._read_size)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    async def _find(self, needle: bytes, limit: int) -> int:
        """Index of ``needle`` in the buffer, reading more as needed; FormLimitError when it
        is not within the first ``limit`` bytes, FormError when the body ends first."""
        start = 0
        while True:
            idx = self._buf.find(needle, start)
            if idx >= 0:
                if idx > limit:
                    raise FormLimitError("a form field is larger than allowed")
                return idx
            if len(self._buf) > limit + len(needle):
                raise FormLimitError("a form field is larger than allowed")
            start = max(0, len(self._buf) - len(needle) + 1)
            if not await self._more():
                raise FormError("the body ended before the closing multipart delimiter")

    async def next_part(self, header_limit: int) -> FormPart | None:
        """Headers of the next part, or None after the closing delimiter.  The previous
        part must have been read (read_value or stream) to its end."""
        if self._done:
            return None
        if self._in_part:
            raise RuntimeError("the current part has not been read")
        if not self._started:
            idx = await self._find(self._delimiter, header_limit)  # skips a short preamble
            del self._buf[: idx + len(self._delimiter)]
            self._started = True
        # After a delimiter: "--" closes the body; else padding and CRLF start a part.
        while len(self._buf) < 2 and await self._more():
            pass
        if self._buf.startswith(b"--"):
            self._done = True
            return None
        eol = await self._find(b"\r\n", _MAX_PADDING)
        if self._buf[:eol].strip(b" \t"):
            raise FormError("unexpected bytes after a multipart delimiter")
        del self._buf[: eol + 2]
        while len(self._buf) < 2 and await self._more():
            pass
        if self._buf.startswith(b"\r\n"):
            raise FormError("a part has no Content-Disposition header")
        end = await self._find(b"\r\n\r\n", header_limit)
        raw = bytes(self._buf[:end])
        del self._buf[: end + 4]
        self._in_part = True
        return _parse_part_headers(raw)

    async def read_value(self, limit: int) -> bytes:
        """The rest of the current part, whole; FormLimitError past ``limit`` bytes."""
        idx = await self._find(self._delimiter, limit)
        value = bytes(self._buf[:idx])
        del self._buf[: idx + len(self._delimiter)]
        self._in_part = False
        return value

    async def stream(self) -> AsyncIterator[bytes]:
        """The rest of the current part in pieces; raises FormError if the body ends first."""
        keep = len(self._delimiter) - 1
        while True:
            idx = self._buf.find(self._delimiter)
            if idx >= 0:
                if idx:
                    yield bytes(self._buf[:idx])
                del self._buf[: idx + len(self._delimiter)]
                self._in_part = False
                return
            safe = len(self._buf) - keep
            if safe > 0:
                piece = bytes(self._buf[:safe])
                del self._buf[:safe]
                yield piece
            if not await self._more():
                raise FormError("the body ended inside a form part")


def _parse_part_headers(raw: bytes) -> FormPart:
    """Content-Disposition (``form-data; name=...; filename=...``) and Content-Type."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("a part's headers are not valid UTF-8") from None
    headers: dict[str, str] = {}
    last = ""
    for line in text.split("\r\n"):
        if line[:1] in (" ", "\t") and last:  # obsolete line folding
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise FormError("a part header line is malformed")
        last = name.strip().lower()
        headers.setdefault(last, value.strip())
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise FormError("a part has no Content-Disposition header")
    kind, params = header_params(disposition)
    name = params.get("name")
    if kind != "form-data" or not name:
        raise FormError("a part's Content-Disposition is not form-data with a name")
    return FormPart(name, params.get("filename"), headers.get("content-type"), len(raw) + 4)
