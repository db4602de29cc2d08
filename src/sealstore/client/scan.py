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

import multiprocessing
import os
import stat
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from sealstore.client import content

MIN_RUN = 16
BLOCK = 8
DEFAULT_INDEX_BYTES = 8 << 20
DEFAULT_CHUNK = 1 << 20
DEFAULT_SPLIT = 8 << 20
# Bytes a confirmation may look at around a window: 8 before, 16 from its start.
_BACK = MIN_RUN - BLOCK
_AHEAD = MIN_RUN

PlainSource = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Target:
    """One plaintext to look for: a name for reports, a random-access source and its size."""

    name: str
    source: PlainSource
    size: int


@dataclass(frozen=True)
class Leak:
    """A confirmed plaintext run of >= 16 bytes found in a file."""

    path: str
    file_offset: int
    plain_offset: int
    target: str = ""


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

    def __init__(self, target: Target, lo: int, hi: int) -> None:
        source, size = target.source, target.size
        self.target = target.name
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


class _Group:
    """The slices searched in one pass (up to the index budget, across targets)."""

    def __init__(self, slices: list[_Slice]) -> None:
        self.slices = slices
        self.index: set[int] = set().union(*(sl.index for sl in slices))


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


def scan_range(
    fh: BinaryIO, file_size: int, start: int, end: int, group: _Group, path: str, chunk: int
) -> list[Leak]:
    """Scan the 8-byte windows of one file that start in ``[start, end)``.

    Reads from ``start - 8`` (bytes a confirmation may look back at) to ``end + 16`` (bytes it
    may look ahead at), in chunks with a small carry, so ranges of one file can be scanned
    independently and in parallel. Returns the first confirmed leak of each target.
    """
    found: dict[str, Leak] = {}
    carry_start = max(0, start - _BACK)
    fh.seek(carry_start)
    carry = b""
    eval_from = start
    stop = min(end, file_size)
    read_limit = min(file_size, end + _AHEAD)
    while eval_from < stop:
        want = min(chunk, read_limit - (carry_start + len(carry)))
        data = fh.read(want) if want > 0 else b""
        last = not data
        buf = carry + data
        buf_end = carry_start + len(buf)
        limit = min(stop, buf_end - (BLOCK - 1) if last else buf_end - _AHEAD)
        if limit > eval_from:
            s, e = eval_from - carry_start, limit - carry_start
            for p, value in _windows_hits(group.index, buf, s, e):
                for sl in group.slices:
                    if sl.target in found or value not in sl.index:
                        continue
                    hit = sl.confirm(buf, p, value)
                    if hit is not None:
                        plain_at, back = hit
                        found[sl.target] = Leak(path, carry_start + p - back, plain_at, sl.target)
                if len(found) == len({sl.target for sl in group.slices}):
                    return list(found.values())
            eval_from = limit
        if last:
            break
        keep_from = max(carry_start, eval_from - _BACK)
        carry = buf[keep_from - carry_start :]
        carry_start = keep_from
    return list(found.values())


def iter_files(data_dir: str) -> Iterator[str]:
    """Regular files under ``data_dir`` in a stable order; symlinks are not followed."""
    for root, dirs, files in os.walk(data_dir, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            yield os.path.join(root, name)


@dataclass(frozen=True)
class _Task:
    path: str
    size: int
    start: int
    end: int


# The slices being searched, set before worker processes fork so they inherit them for free.
_GROUP: _Group | None = None


def _run_task(task: _Task, chunk: int) -> tuple[_Task, list[Leak], str | None]:
    assert _GROUP is not None
    try:
        with open(task.path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            return task, scan_range(fh, size, task.start, task.end, _GROUP, task.path, chunk), None
    except FileNotFoundError:
        return task, [], None  # removed while scanning (temporary files): nothing to leak
    except OSError as exc:
        return task, [], f"{task.path}: {exc.strerror or exc}"


def _list_tasks(data_dir: str, split: int, result: ScanResult) -> list[_Task]:
    tasks: list[_Task] = []
    for path in iter_files(data_dir):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if not os.access(path, os.R_OK):
            result.unreadable.append(f"{path}: permission denied")
            continue
        result.files += 1
        result.bytes += st.st_size
        for start in range(0, max(st.st_size, 1), split):
            tasks.append(_Task(path, st.st_size, start, start + split))
    return tasks


def _run_pass(
    tasks: list[_Task], jobs: int, chunk: int
) -> Iterator[tuple[_Task, Leak | None, str | None]]:
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _run_task(task, chunk)
        return
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        yield from pool.map(_run_task, tasks, [chunk] * len(tasks), chunksize=4)


def default_jobs() -> int:
    """One scanning process per available core (at most 8): the scan is CPU-bound."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _plan_passes(targets: list[Target], index_bytes: int) -> list[list[tuple[Target, int, int]]]:
    """Cut every target into slices and pack them into passes of at most ``index_bytes``."""
    passes: list[list[tuple[Target, int, int]]] = []
    current: list[tuple[Target, int, int]] = []
    budget = 0
    for target in targets:
        if target.size < MIN_RUN:
            continue
        lo = 0
        while lo < target.size - BLOCK:
            hi = min(target.size, lo + index_bytes)
            if current and budget + (hi - lo) > index_bytes:
                passes.append(current)
                current, budget = [], 0
            current.append((target, lo, hi))
            budget += hi - lo
            lo = hi
    if current:
        passes.append(current)
    return passes


def scan_targets(
    data_dir: str,
    targets: list[Target],
    *,
    index_bytes: int = DEFAULT_INDEX_BYTES,
    chunk: int = DEFAULT_CHUNK,
    jobs: int = 1,
    split: int = DEFAULT_SPLIT,
) -> ScanResult:
    """Scan every regular file under ``data_dir`` for 16-byte runs of any of ``targets``.

    Plaintexts are indexed ``index_bytes`` at a time (one pass over the files per batch of
    slices); files are cut into ``split``-byte ranges that ``jobs`` processes scan in parallel.
    The result holds the earliest leak of each (file, target) pair.
    """
    global _GROUP
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(f"not a directory: {data_dir}")
    index_bytes = max(BLOCK, index_bytes // BLOCK * BLOCK)
    split = max(chunk, split)
    result = ScanResult()
    tasks = _list_tasks(data_dir, split, result)
    earliest: dict[tuple[str, str], Leak] = {}
    try:
        for plan in _plan_passes(targets, index_bytes):
            _GROUP = _Group([_Slice(target, lo, hi) for target, lo, hi in plan])
            for _task, leaks, error in _run_pass(tasks, jobs, chunk):
                if error and error not in result.unreadable:
                    result.unreadable.append(error)
                for leak in leaks:
                    known = earliest.get((leak.path, leak.target))
                    if known is None or leak.file_offset < known.file_offset:
                        earliest[(leak.path, leak.target)] = leak
            result.passes += 1
    finally:
        _GROUP = None
    result.leaks = sorted(earliest.values(), key=lambda leak: (leak.target, leak.path))
    return result


def scan_dir(data_dir: str, source: PlainSource, size: int, **kwargs: int) -> ScanResult:
    """Scan for one plaintext (see :func:`scan_targets`)."""
    return scan_targets(data_dir, [Target("", source, size)], **kwargs)


def seed_target(seed: str, size: int, name: str | None = None) -> Target:
    """The round-trip object regenerated from ``seed`` and ``size``."""
    return Target(name or seed, lambda off, n: content.generate(seed, off, n), size)


def scan_seed(data_dir: str, seed: str, size: int, **kwargs: int) -> ScanResult:
    """Scan for the round-trip object regenerated from ``seed`` and ``size``."""
    return scan_targets(data_dir, [seed_target(seed, size)], **kwargs)
