"""Structured logging: one JSON (or text) line per event, with a last-line secret filter.

Code never logs secrets on purpose; the redacting filter is defence in depth so that an
exception message that happens to quote a token or password still never reaches a log.  It
removes two kinds of text from every record of every logger (ours, aiohttp's ``aiohttp.server``
error lines that quote a malformed request line whole, anything else that propagates):

* the configured secret values (root password, AppRole secret-id, master key);
* request credentials, whoever's they are: the values of ``X-Amz-Signature``,
  ``X-Amz-Credential``, ``X-Amz-Security-Token`` (presigned query parameters), of the
  ``Authorization`` and ``x-amz-security-token`` / SSE-C key headers, and ``Signature=`` /
  ``Credential=`` fields, in messages, extra fields and exception text alike.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

LOGGER_NAME = "sealstore"
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
REDACTED = "[REDACTED]"
# Loggers that carry request text; the filter is on each of them as well as on the handler.
LIBRARY_LOGGERS = ("aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal")

_DASH = r"(?:-|%2D)"
# A query parameter or key=value field: the name (also percent-encoded) keeps, the value goes.
_PARAM = re.compile(
    rf"(?i)((?:X{_DASH}Amz{_DASH}(?:Signature|Credential|Security{_DASH}Token)|"
    rf"AWSAccessKeyId|Signature|Credential|Token)(?:=|%3D))[^&\s'\",;\\]+"
)
# A header line or a mapping entry, as it appears in a message or a repr()'d request.
_HEADER = re.compile(
    r"(?i)((?:authorization|x-amz-security-token|"
    r"x-amz-(?:copy-source-)?server-side-encryption-customer-key(?:-md5)?)['\"]?\s*[:=]\s*"
    r"['\"]?)[^'\"\r\n\\]+"
)


def redact_credentials(text: str) -> str:
    """``text`` with every request credential value (see module docstring) replaced."""
    if not text:
        return text
    text = _HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    return _PARAM.sub(lambda m: m.group(1) + REDACTED, text)


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    """The traceback of a record: the redacted text the filter left, else formatted now."""
    if record.exc_text:
        return record.exc_text
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return None


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
        exc = _exception_text(self, record)
        if exc:
            doc["exc"] = exc
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
        exc = _exception_text(self, record)
        if exc:
            line += "\n" + exc
        return line


class RedactingFilter(logging.Filter):
    """Replace configured secrets and request credentials in a record with [REDACTED].

    Applied to the message (after ``%`` formatting), every string ``extra`` field and the
    exception text; a cleaned exception is kept as text (``exc_text``) so the traceback still
    helps, only without the secret.  Never drops records.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Very short strings would redact ordinary words; config enforces >= 8 chars anyway.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def clean(self, value: str) -> str:
        """``value`` without configured secrets and request credentials."""
        for s in self._secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        return redact_credentials(value)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record in place; never drops records."""
        if getattr(record, "_sealstore_redacted", False):
            return True  # already cleaned by the logger-level instance
        msg = record.getMessage()
        cleaned = self.clean(msg)
        if cleaned != msg:
            record.msg, record.args = cleaned, None
        for k, v in list(record.__dict__.items()):
            if k not in _RESERVED and isinstance(v, str):
                setattr(record, k, self.clean(v))
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = self.clean(text)
        elif record.exc_text:
            record.exc_text = self.clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info)
        record._sealstore_redacted = True
        return True


def setup_logging(level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger to write one line per event to stderr (journald-friendly)."""
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    # On the handler: every record that reaches stderr, from any logger, is cleaned.
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # And on the library loggers themselves, should anything attach a handler to them.
    for name in (LOGGER_NAME, *LIBRARY_LOGGERS):
        lib = logging.getLogger(name)
        for old in [f for f in lib.filters if isinstance(f, RedactingFilter)]:
            lib.removeFilter(old)
        lib.addFilter(redactor)
    # aiohttp's own access log duplicates ours and would print raw query strings.
    logging.getLogger("aiohttp.access").disabled = True


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """Return a logger under the sealstore namespace."""
    return logging.getLogger(name)
