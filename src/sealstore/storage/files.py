"""Data files on disk: layout, crash-safe writing, and the orphan sweep (blocking; threads).

Data files have random names, never object keys, so no key can address a path. A writer
creates `tmp/<id>`, holds an exclusive flock on it for its whole life, fsyncs it, renames it to
`blobs/<id[:2]>/<id>` and fsyncs that directory; only then does the index publish it, and only
after the publish is the lock released. The lock is what lets several processes share one data
directory: a sweep never removes a file whose writer is still alive (an unpublished file is
locked, a published one is in the index), and a file left by a killed writer is unlocked
because the kernel drops flocks with the process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sealstore.storage.base import StorageFull

log = logging.getLogger(__name__)

INDEX_NAME = "sealstore.sqlite3"
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (creates, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Layout:
    """Paths inside a data directory."""

    root: Path

    @property
    def index(self) -> Path:
        return self.root / INDEX_NAME

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    def blob_dir(self, file_id: str) -> Path:
        return self.blobs / file_id[:2]

    def blob(self, file_id: str) -> Path:
        return self.blobs / file_id[:2] / file_id

    def create(self) -> None:
        """Create the directory tree (0700) and make its creation durable.

        Several worker processes may run this at the same moment, so "already exists" is
        never an error.
        """
        self.root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        made = False
        for path in (self.tmp, self.blobs):
            made |= _mkdir(path)
        if made:
            fsync_dir(self.root)
        # SQLite gives the -wal and -shm files the main file's mode, so creating it 0600 first
        # keeps the whole index private whatever the umask.
        os.close(os.open(self.index, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE))
        made = False
        for n in range(256):
            made |= _mkdir(self.blobs / f"{n:02x}")
        if made:
            fsync_dir(self.blobs)


def _mkdir(path: Path) -> bool:
    """mkdir 0700; False if it already existed (possibly created by a concurrent process)."""
    try:
        path.mkdir(mode=_DIR_MODE)
    except FileExistsError:
        return False
    return True


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


@contextlib.contextmanager
def _disk_full_as_storage_full() -> Iterator[None]:
    """Turn "no space"/"quota" OS errors into StorageFull so clients get a precise error."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            raise StorageFull(f"data directory is full: {exc.strerror}") from exc
        raise


def new_file_id() -> str:
    """128 random bits as hex: unguessable, never reused, spread over 256 directories."""
    return secrets.token_hex(16)


class BlobWriter:
    """One data file being written. Methods block; a lock makes them safe to call from any
    executor thread even if a cancelled write is still running when abort arrives."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._lock = threading.Lock()
        self.size = 0
        self._published = False
        while True:
            self.file_id = new_file_id()
            self._path = layout.tmp / self.file_id
            fd = os.open(
                self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A concurrent sweep may have locked and unlinked the fresh file before we locked
            # it; then our fd points at a nameless inode and we start over.
            try:
                same = os.stat(self._path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd: int | None = fd
                break
            os.close(fd)

    @property
    def path(self) -> Path:
        return self._path

    def _require_fd(self) -> int:
        if self._fd is None:
            raise RuntimeError("data file already closed")
        return self._fd

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with self._lock, _disk_full_as_storage_full():
            fd = self._require_fd()
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
                self.size += n

    def finish(self) -> None:
        """fsync the data, move it to its final name and fsync the directory.

        After this the file is durable but still invisible (not in the index) and still
        locked, so a sweep leaves it alone until `release` follows the publish.
        """
        with self._lock, _disk_full_as_storage_full():
            fd = self._require_fd()
            os.fsync(fd)
            final = self._layout.blob(self.file_id)
            os.rename(self._path, final)
            self._path = final
            fsync_dir(self._layout.blob_dir(self.file_id))

    def publish(self, register: Callable[[], None]) -> None:
        """Run `register` (the index transaction) while still holding the lock, then close.

        Holding `_lock` across the transaction means a concurrent `discard` (say, from a
        cancelled request) can never unlink a file the index has just published. If
        `register` fails the file is removed.
        """
        with self._lock:
            fd = self._require_fd()
            try:
                register()
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path)
                os.close(fd)
                self._fd = None
                raise
            self._published = True
            os.close(fd)
            self._fd = None

    def __del__(self) -> None:
        # A writer dropped without commit/abort (a bug upstream) must not leak its fd and
        # lock; its temp file is then swept by the next open().
        fd = getattr(self, "_fd", None)
        if fd is not None and not self._published:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            with contextlib.suppress(OSError):
                os.close(fd)
            self._fd = None

    def discard(self) -> None:
        """Remove the file wherever it is and close it. Idempotent; no-op once published."""
        with self._lock:
            if self._published:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _remove_if_unlocked(path: Path, still_orphan: Callable[[], bool]) -> bool:
    """Unlink `path` if no live writer holds its lock and `still_orphan()` confirms it under
    our lock (a writer holds the lock until its publish commits). True if removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not still_orphan():
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return True
    finally:
        os.close(fd)


@dataclass
class SweepReport:
    """What `open()` found: removed leftovers and index entries whose file is missing."""

    temp_removed: int = 0
    orphans_removed: int = 0
    missing: list[str] = field(default_factory=list)


def sweep(
    layout: Layout,
    known_ids: Callable[[], set[str]],
    live_ids: Callable[[], set[str]],
    is_known: Callable[[str], bool],
) -> SweepReport:
    """Remove temp files and unindexed data files that no live writer owns; report indexed
    files that are missing (fsck-light: existence only, no content scan)."""
    report = SweepReport()
    for entry in os.scandir(layout.tmp):
        if entry.is_file(follow_symlinks=False) and _remove_if_unlocked(
            Path(entry.path), lambda: True
        ):
            report.temp_removed += 1
    live = live_ids()
    known = known_ids()
    on_disk: set[str] = set()
    for sub in os.scandir(layout.blobs):
        if not sub.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(sub.path):
            name = entry.name
            on_disk.add(name)
            if name in known:
                continue
            if _remove_if_unlocked(Path(entry.path), lambda n=name: not is_known(n)):
                report.orphans_removed += 1
    report.missing = sorted(f for f in live - on_disk if not layout.blob(f).exists())
    if report.temp_removed or report.orphans_removed:
        log.info(
            "storage sweep removed %d temp and %d orphan data files",
            report.temp_removed,
            report.orphans_removed,
        )
    if report.missing:
        log.error(
            "storage index references %d missing data files (first: %s)",
            len(report.missing),
            ", ".join(report.missing[:5]),
        )
    return report


def unlink_blobs(layout: Layout, file_ids: list[str]) -> None:
    """Remove data files whose index rows are gone (missing files are fine)."""
    for file_id in file_ids:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(layout.blob(file_id))


def open_blobs(layout: Layout, file_ids: list[str]) -> list[int]:
    """Open data files for reading; all or none (FileNotFoundError propagates)."""
    fds: list[int] = []
    try:
        for file_id in file_ids:
            fds.append(os.open(layout.blob(file_id), os.O_RDONLY | os.O_CLOEXEC))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds
