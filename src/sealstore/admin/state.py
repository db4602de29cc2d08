"""The checkpoint of an admin job, so that a rerun after a kill continues where it stopped.

One small JSON document per job: the job's parameters (a rerun with other parameters starts
over) and, per bucket, the last key below which every object is done, plus whether the
bucket's objects and pending uploads are finished. It is replaced atomically (temp file,
fsync, rename, fsync of the directory), so a kill -9 at any moment leaves the previous or the
next checkpoint, never a torn one. Jobs are idempotent per object, so redoing the few objects
after the checkpoint is harmless. The file holds bucket and key names only, no secrets, and is
created 0600. It is removed when the job completes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_DIR = ".sealstore-admin"


@dataclass
class BucketState:
    """Progress in one bucket."""

    after: str = ""  # every object with a key <= after is done
    objects_done: bool = False
    uploads_done: bool = False


@dataclass
class Checkpoint:
    """Where a job is; saved with :meth:`save` (atomic), loaded with :func:`load`."""

    path: Path
    job: str
    params: dict[str, Any]
    buckets: dict[str, BucketState] = field(default_factory=dict)
    resumed: bool = False
    _saved_at: float = 0.0

    def bucket(self, name: str) -> BucketState:
        return self.buckets.setdefault(name, BucketState())

    def save(self, *, force: bool = False, every: float = 1.0) -> None:
        """Write the checkpoint (at most once per ``every`` seconds unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._saved_at < every:
            return
        self._saved_at = now
        doc = {
            "job": self.job,
            "params": self.params,
            "buckets": {b: vars(s) for b, s in sorted(self.buckets.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(doc, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def remove(self) -> None:
        """The job finished: the next run starts from the beginning."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def default_path(data: str, job: str) -> Path:
    """``<DATA>/.sealstore-admin/<job>.json`` for a data directory; remote DATA needs --state."""
    if "://" in data:
        raise ValueError(f"DATA {data!r} is not a directory: give the checkpoint file with --state")
    return Path(data) / STATE_DIR / f"{job}.json"


def load(path: Path, job: str, params: dict[str, Any], *, restart: bool = False) -> Checkpoint:
    """The saved checkpoint when it belongs to the same job and parameters, else a new one."""
    fresh = Checkpoint(path=path, job=job, params=params)
    if restart:
        return fresh
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return fresh
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"checkpoint {path} is unreadable ({exc}); remove it or use --restart"
        ) from None
    if doc.get("job") != job or doc.get("params") != params:
        return fresh
    buckets = {name: BucketState(**raw) for name, raw in doc.get("buckets", {}).items()}
    return Checkpoint(path=path, job=job, params=params, buckets=buckets, resumed=True)
