"""The streaming multipart/form-data reader: parts, headers and values survive every split of
the body into network reads (delimiters cut anywhere), the file part streams in bounded
pieces, and malformed or oversized input fails with FormError / FormLimitError."""

from __future__ import annotations

import asyncio

import pytest

from sealstore.s3.form_data import (
    FormError,
    FormLimitError,
    FormReader,
    boundary_of,
    header_params,
)

BOUNDARY = "----sealstoreBoundary7MA4YWxkTrZu0gW"


class Chunks:
    """A body delivered in the given pieces (each read returns at most one piece)."""

    def __init__(self, data: bytes, sizes: list[int] | int) -> None:
        self.pieces: list[bytes] = []
        pos = 0
        i = 0
        while pos < len(data):
            n = sizes if isinstance(sizes, int) else sizes[i % len(sizes)]
            self.pieces.append(data[pos : pos + n])
            pos += n
            i += 1
        self.reads = 0

    async def read(self, n: int = -1) -> bytes:
        self.reads += 1
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if 0 < n < len(piece):
            self.pieces.insert(0, piece[n:])
            piece = piece[:n]
        return piece


def form(*parts: tuple[str, bytes, str | None], close: bool = True, preamble: bytes = b"") -> bytes:
    out = bytearray(preamble)
    for name, value, filename in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += disp.encode() + b"\r\n"
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + value + b"\r\n"
    if close:
        out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


async def collect(data: bytes, sizes: list[int] | int, read_size: int = 1 << 20):
    reader = FormReader(Chunks(data, sizes), BOUNDARY, read_size=read_size)
    out = []
    while True:
        part = await reader.next_part(4096)
        if part is None:
            return out
        if part.name == "file":
            pieces = [p async for p in reader.stream()]
            out.append((part.name, b"".join(pieces), part.filename, pieces))
        else:
            out.append((part.name, await reader.read_value(4096), part.filename, None))


def run(coro):
    return asyncio.run(coro)


FILE_DATA = bytes(range(256)) * 40 + b"\r\n--" + BOUNDARY[:-3].encode() + b"\r\n-- tail"


@pytest.mark.parametrize("sizes", [1, 2, 3, 7, 13, 64, 1000, [1, 50, 2, 9], 1 << 20])
def test_every_split_gives_the_same_parts(sizes) -> None:
    body = form(
        ("key", b"user/${filename}", None),
        ("x-amz-meta-a", "caf\u00e9".encode(), None),
        ("empty", b"", None),
        ("file", FILE_DATA, "photo.jpg"),
    )
    parts = run(collect(body, sizes))
    assert [(n, v, f) for n, v, f, _ in parts] == [
        ("key", b"user/${filename}", None),
        ("x-amz-meta-a", "caf\u00e9".encode(), None),
        ("empty", b"", None),
        ("file", FILE_DATA, "photo.jpg"),
    ]


def test_file_streams_in_bounded_pieces() -> None:
    data = b"x" * 300_000
    body = form(("key", b"k", None), ("file", data, "f"))
    parts = run(collect(body, 1 << 20, read_size=16384))
    pieces = parts[-1][3]
    assert b"".join(pieces) == data
    assert len(pieces) > 10
    assert max(len(p) for p in pieces) <= 16384


def test_preamble_and_padding_are_skipped() -> None:
    body = form(("a", b"1", None), preamble=b"ignored preamble\r\n")
    body = body.replace(f"--{BOUNDARY}\r\n".encode(), f"--{BOUNDARY}  \t\r\n".encode())
    assert [(n, v) for n, v, _, _ in run(collect(body, 5))] == [("a", b"1")]


def test_reading_stops_at_the_file_without_consuming_the_rest() -> None:
    tail = b"after the file: never read"
    body = form(("file", b"data", "f"), ("after", tail * 1000, None))
    source = Chunks(body, 64)
    reader = FormReader(source, BOUNDARY, read_size=64)

    async def go() -> bytes:
        part = await reader.next_part(1024)
        assert part is not None and part.name == "file"
        return b"".join([p async for p in reader.stream()])

    assert run(go()) == b"data"
    assert source.pieces, "the reader went on reading past the file part"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"no delimiter at all",
        form(("a", b"1", None), close=False),  # ends without the closing delimiter
        f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nv\r\n--{BOUNDARY}--".encode(),
        f"--{BOUNDARY}\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n".encode(),
        f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nv\r\n--{BOUNDARY}--".encode(),
        f"--{BOUNDARY}\r\n\r\nv\r\n--{BOUNDARY}--".encode(),
        f"--{BOUNDARY}junk\r\nContent-Disposition: form-data; name=a\r\n\r\n".encode(),
        f"--{BOUNDARY}\r\nbroken header line\r\n\r\nv\r\n--{BOUNDARY}--".encode(),
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\xff\r\n\r\n".encode("latin-1"),
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(FormError):
        run(collect(body, 7))


def test_file_part_without_end() -> None:
    body = form(("file", b"data", "f"), close=False)[: -len(b"\r\n")]

    async def go() -> None:
        reader = FormReader(Chunks(body, 3), BOUNDARY)
        assert (await reader.next_part(1024)) is not None
        async for _ in reader.stream():
            pass

    with pytest.raises(FormError):
        run(go())


def test_value_and_header_limits() -> None:
    big = form(("a", b"v" * 5000, None))

    async def value() -> None:
        reader = FormReader(Chunks(big, 100), BOUNDARY)
        await reader.next_part(1024)
        await reader.read_value(4999)

    with pytest.raises(FormLimitError):
        run(value())

    async def headers() -> None:
        reader = FormReader(Chunks(big, 100), BOUNDARY)
        await reader.next_part(20)

    with pytest.raises(FormLimitError):
        run(headers())


def test_boundary_and_params() -> None:
    assert boundary_of(f"multipart/form-data; boundary={BOUNDARY}") == BOUNDARY
    assert boundary_of('Multipart/Form-Data; charset=utf-8; boundary="a b;c"') == "a b;c"
    assert boundary_of("application/x-www-form-urlencoded") is None
    assert boundary_of(None) is None
    for bad in ("multipart/form-data", "multipart/form-data; boundary=" + "x" * 71):
        with pytest.raises(FormError):
            boundary_of(bad)
    kind, params = header_params('form-data; name="a\\"b"; filename="c;d.txt"; X=1')
    assert kind == "form-data"
    assert params == {"name": 'a"b', "filename": "c;d.txt", "x": "1"}
