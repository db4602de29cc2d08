"""What an admin job leaves behind: an audit line per changed object, and a metrics file.

The audit log is append-only JSON lines (0600): time, job, bucket, key, what changed (key
versions, never key material or ciphertext). Each line is flushed and fsynced before the
job moves on, so "changed but not audited" cannot survive a crash by more than one object.
The metrics file is Prometheus text (node_exporter's textfile collector format), replaced
atomically now and then and at the end, so a scrape never sees half a file.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any


class AuditLog:
    """Append-only JSON lines; ``None`` path: audit lines are not written."""

    def __init__(self, path: Path | None, job: str) -> None:
        self.job = job
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def record(self, bucket: str, key: str, **fields: Any) -> None:
        if self._fd is None:
            return
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "job": self.job,
            "bucket": bucket,
            "key": key,
            **fields,
        }
        os.write(self._fd, (json.dumps(doc, sort_keys=True) + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Metrics:
    """Counters of one job run, rendered as Prometheus text."""

    def __init__(self, path: Path | None, job: str) -> None:
        self.path = path
        self.job = job
        self.results: Counter[str] = Counter()
        self.bytes = 0
        self.started = time.time()
        self._written = 0.0

    def count(self, result: str, size: int) -> None:
        self.results[result] += 1
        self.bytes += size

    def render(self, *, finished: bool) -> str:
        job = self.job
        lines = [
            "# HELP sealstore_admin_objects_total Objects an admin job handled, by result.",
            "# TYPE sealstore_admin_objects_total counter",
        ]
        for result, n in sorted(self.results.items()):
            lines.append(f'sealstore_admin_objects_total{{job="{job}",result="{result}"}} {n}')
        lines += [
            "# HELP sealstore_admin_bytes_total Plaintext bytes of the objects handled.",
            "# TYPE sealstore_admin_bytes_total counter",
            f'sealstore_admin_bytes_total{{job="{job}"}} {self.bytes}',
            "# HELP sealstore_admin_started_seconds Start of the run (unix time).",
            "# TYPE sealstore_admin_started_seconds gauge",
            f'sealstore_admin_started_seconds{{job="{job}"}} {self.started:.3f}',
            "# HELP sealstore_admin_finished Whether the run has finished (1) or runs (0).",
            "# TYPE sealstore_admin_finished gauge",
            f'sealstore_admin_finished{{job="{job}"}} {int(finished)}',
        ]
        return "\n".join(lines) + "\n"

    def write(self, *, finished: bool = False, every: float = 5.0) -> None:
        """Replace the metrics file (at most every ``every`` s unless finished)."""
        if self.path is None:
            return
        now = time.monotonic()
        if not finished and now - self._written < every:
            return
        self._written = now
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(self.render(finished=finished))
        os.replace(tmp, self.path)
