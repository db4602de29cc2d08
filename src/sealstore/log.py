"""Structured logging: one JSON (or text) line per event, with a last-line secret filter.

Code never logs secrets on purpose; the redacting filter is defence in depth so that an
exception message that happens to quote a token or password still never reaches a log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

LOGGER_NAME = "sealstore"
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
REDACTED = "[REDACTED]"


class JSONFormatter(logging.Formatter):
    """Render a record as one JSON object: time, level, logger, msg and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line (exceptions folded into an ``exc`` string field)."""
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Human-friendly single line: ``time level msg k=v ...``."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the text line."""
        extras = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _RESERVED and not k.startswith("_")
        )
        line = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
            + f" {record.levelname.lower()} {record.getMessage()}"
        )
        if extras:
            line += " " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class RedactingFilter(logging.Filter):
    """Replace any configured secret value in the final message/extras with [REDACTED]."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Very short strings would redact ordinary words; config enforces >= 8 chars anyway.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def _clean(self, value: str) -> str:
        for s in self._secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record in place; never drops records."""
        if not self._secrets:
            return True
        msg = record.getMessage()
        cleaned = self._clean(msg)
        if cleaned != msg:
            record.msg, record.args = cleaned, None
        for k, v in list(record.__dict__.items()):
            if k not in _RESERVED and isinstance(v, str):
                setattr(record, k, self._clean(v))
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if self._clean(text) != text:
                record.exc_info = None
                record.msg = f"{record.getMessage()} (exception text redacted)"
                record.args = None
        return True


def setup_logging(level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger to write one line per event to stderr (journald-friendly)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log duplicates ours and would print raw query strings.
    logging.getLogger("aiohttp.access").disabled = True


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """Return a logger under the sealstore namespace."""
    return logging.getLogger(name)
