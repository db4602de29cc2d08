"""At-rest plaintext scan: prove that no 16-byte run of an object's plaintext is on disk.

Any run of 16 plaintext bytes contains an 8-byte block that starts at a plaintext offset
divisible by 8. So the scan indexes only those aligned blocks (as native 64-bit integers in a
set), then, for each file and each of the 8 byte alignments, lets C code test the file's 8-byte
windows against the set (``set.isdisjoint`` over a ``memoryview.cast("Q")``). A candidate is
then confirmed byte by byte: it is a leak only when the match around the block is >= 16 bytes.

Memory stays bounded: files are streamed in chunks with a small carry, and a large plaintext is
indexed in slices of ``index_bytes``, one pass over the directory per slice.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sealstore import client_content

MIN_RUN = 16
BLOCK = 8
DEFAULT_INDEX_BYTES = 8 << 20
DEFAULT_CHUNK = 1 << 20
# Bytes a confirmation may look at around a window: 8 before, 16 from its start.
_BACK = MIN_RUN - BLOCK
_AHEAD = MIN_RUN

PlainSource = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Leak:
    """A confirmed plaintext run of >= 16 bytes found in a file."""

    path: str
    file_offset: int
    plain_offset: int


@dataclass
class ScanResult:
    """What a scan looked at and what it found."""

    files: int = 0
    bytes: int = 0
    passes: int = 0
    leaks: list[Leak] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.leaks and not self.unreadable


class _Slice:
    """One indexed slice of the plaintext plus the margin bytes needed to confirm hits."""

    def __init__(self, source: PlainSource, size: int, lo: int, hi: int) -> None:
        self.lo = lo
        self.hi = hi  # exclusive end of indexed block starts region
        self.win_lo = max(0, lo - _BACK)
        win_hi = min(size, hi + _AHEAD)
        self.window = source(self.win_lo, win_hi - self.win_lo)
        body = memoryview(self.window)[lo - self.win_lo :]
        full = min(hi - lo, (size - lo) // BLOCK * BLOCK)
        self.index: set[int] = set(body[: max(0, full)].cast("Q"))

    def confirm(self, buf: bytes, p: int, value: int) -> tuple[int, int] | None:
        """(plaintext run start, bytes before the window) of a >= 16-byte match, or None."""
        needle = value.to_bytes(BLOCK, sys.byteorder)
        win = self.window
        start = self.lo - self.win_lo
        while True:
            k = win.find(needle, start)
            if k < 0:
                return None
            start = k + 1
            if (k + self.win_lo) % BLOCK:
                continue
            back = 0
            while back < _BACK and p - back - 1 >= 0 and k - back - 1 >= 0:
                if buf[p - back - 1] != win[k - back - 1]:
                    break
                back += 1
            ahead = BLOCK
            while ahead < _AHEAD and p + ahead < len(buf) and k + ahead < len(win):
                if buf[p + ahead] != win[k + ahead]:
                    break
                ahead += 1
            if back + ahead >= MIN_RUN:
                return self.win_lo + k - back, back


def _windows_hits(index: set[int], buf: bytes, s: int, e: int) -> Iterator[tuple[int, int]]:
    """Yield (position, value) of 8-byte windows starting in [s, e) whose value is indexed."""
    view = memoryview(buf)
    for r in range(BLOCK):
        first = s + r
        count = (e - first + BLOCK - 1) // BLOCK
        if count <= 0:
            continue
        words = view[first : first + count * BLOCK].cast("Q")
        if index.isdisjoint(words):
            continue
        for i, value in enumerate(words):
            if value in index:
                yield first + i * BLOCK, value


def scan_stream(
    read: Callable[[int], bytes], piece: _Slice, path: str, chunk: int = DEFAULT_CHUNK
) -> Leak | None:
    """Scan one byte stream; return its first confirmed leak (one per file is proof enough)."""
    carry = b""
    carry_start = 0
    eval_from = 0
    while True:
        data = read(chunk)
        eof = not data
        buf = carry + data
        end = carry_start + len(buf)
        limit = end - (BLOCK - 1) if eof else end - _AHEAD
        if limit > eval_from:
            s, e = eval_from - carry_start, limit - carry_start
            for p, value in _windows_hits(piece.index, buf, s, e):
                found = piece.confirm(buf, p, value)
                if found is not None:
                    plain_at, back = found
                    return Leak(path, carry_start + p - back, plain_at)
            eval_from = limit
        if eof:
            return None
        keep_from = max(carry_start, eval_from - _BACK)
        carry = buf[keep_from - carry_start :]
        carry_start = keep_from


def iter_files(data_dir: str) -> Iterator[str]:
    """Regular files under ``data_dir`` in a stable order; symlinks are not followed."""
    for root, dirs, files in os.walk(data_dir, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            yield os.path.join(root, name)


def scan_dir(
    data_dir: str,
    source: PlainSource,
    size: int,
    *,
    index_bytes: int = DEFAULT_INDEX_BYTES,
    chunk: int = DEFAULT_CHUNK,
) -> ScanResult:
    """Scan every regular file under ``data_dir`` for runs of the plaintext given by ``source``."""
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(f"not a directory: {data_dir}")
    index_bytes = max(BLOCK, index_bytes // BLOCK * BLOCK)
    result = ScanResult()
    leaked: set[str] = set()
    lo = 0
    first = True
    while first or lo < size - BLOCK:
        piece = _Slice(source, size, lo, min(size, lo + index_bytes)) if size >= MIN_RUN else None
        for path in iter_files(data_dir):
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    continue
                with open(path, "rb", buffering=0) as fh:
                    if first:
                        result.files += 1
                        result.bytes += st.st_size
                    if piece is None or path in leaked:
                        continue
                    leak = scan_stream(fh.read, piece, path, chunk)
            except FileNotFoundError:
                continue  # removed while scanning (temporary files): nothing left to leak
            except OSError as exc:
                if first:
                    result.unreadable.append(f"{path}: {exc.strerror or exc}")
                continue
            if leak is not None:
                leaked.add(path)
                result.leaks.append(leak)
        result.passes += 1
        first = False
        lo += index_bytes
    return result


def scan_seed(data_dir: str, seed: str, size: int, **kwargs: int) -> ScanResult:
    """Scan for the round-trip object regenerated from ``seed`` and ``size``."""
    return scan_dir(data_dir, lambda off, n: client_content.generate(seed, off, n), size, **kwargs)
