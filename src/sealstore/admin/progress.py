"""Progress of an admin job: a bar on a terminal, JSON lines for everything else.

On a terminal (stderr is a tty and ``--json`` not given) one line is redrawn at most ten
times a second: objects done/total, bytes, rate and ETA; failures are printed above it. In
JSON mode every event is one JSON object per line on stdout: ``start``, ``item`` for each
object changed or failed, ``progress`` about once a second, and ``summary`` at the end, so a
playbook or a log shipper can follow the job without parsing text.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _clock(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Reporter:
    """Counts done/bytes and renders them; ``json_lines`` picks the machine format."""

    def __init__(
        self,
        job: str,
        *,
        json_lines: bool,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.job = job
        self.json_lines = json_lines
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.total = 0
        self.total_bytes = 0
        self.done = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def emit(self, event: str, **fields: Any) -> None:
        """One JSON line (JSON mode only)."""
        if self.json_lines:
            doc = {"event": event, "job": self.job, **fields}
            self.out.write(json.dumps(doc, sort_keys=True) + "\n")
            self.out.flush()

    def start(self, total: int, total_bytes: int, **fields: Any) -> None:
        self.total, self.total_bytes = total, total_bytes
        self.started = time.monotonic()
        self.emit("start", objects=total, bytes=total_bytes, **fields)

    def advance(self, size: int) -> None:
        self.done += 1
        self.bytes += size
        self._maybe_draw()

    def item(self, bucket: str, key: str, result: str, **fields: Any) -> None:
        """A changed or failed object: a JSON line, or a line above the bar on a terminal."""
        if self.json_lines:
            self.emit("item", bucket=bucket, key=key, result=result, **fields)
        elif result == "failed":
            self.err.write(f"\r\x1b[2K{result}: {bucket}/{key}: {fields.get('error', '')}\n")
            self._drawn = 0.0

    def _eta(self) -> tuple[float, float | None]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        left = max(self.total - self.done, 0)
        return rate, (left / rate if rate > 0 else None)

    def _maybe_draw(self, *, final: bool = False) -> None:
        now = time.monotonic()
        rate, eta = self._eta()
        if self.json_lines:
            if final or now - self._drawn >= 1.0:
                self._drawn = now
                self.emit(
                    "progress",
                    done=self.done,
                    objects=self.total,
                    bytes_done=self.bytes,
                    bytes=self.total_bytes,
                    rate=round(rate, 2),
                    eta_s=None if eta is None else round(eta, 1),
                )
            return
        if not final and now - self._drawn < 0.1:
            return
        self._drawn = now
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * 30)
        eta_text = "--:--:--" if eta is None else _clock(eta)
        self.err.write(
            f"\r\x1b[2K{self.job} [{bar:<30}] {self.done}/{self.total} objects "
            f"{_size(self.bytes)}/{_size(self.total_bytes)} {rate:.1f} obj/s ETA {eta_text}"
        )
        if final:
            self.err.write("\n")
        self.err.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        """Final progress, then the summary (JSON line, or a short text block on stdout)."""
        self._maybe_draw(final=True)
        if self.json_lines:
            self.emit("summary", **summary)
            return
        for name, value in summary.items():
            if name == "failures":
                for f in value:
                    self.out.write(f"FAILED {f['bucket']}/{f['key']}: {f['error']}\n")
            else:
                self.out.write(f"{name}: {value}\n")
        self.out.flush()
