"""The log filter keeps request credentials out of every log line (issue 8, item 6).

Proves that after :func:`sealstore.log.setup_logging` a record from any logger (ours, aiohttp's
``aiohttp.server`` error lines with the exception aiohttp really raises for a malformed request
line, a third-party logger) reaches stderr without presigned-URL signatures, credentials or
session tokens, Authorization header values or SSE-C keys, in the message, ``%`` arguments,
extra fields and traceback alike; that the rest of the line survives (the traceback is kept,
only cleaned); and that configured secrets are still replaced.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import BadStatusLine, LineTooLong

from sealstore.log import (
    LIBRARY_LOGGERS,
    LOGGER_NAME,
    REDACTED,
    RedactingFilter,
    redact_credentials,
    setup_logging,
)

SIG = "9f" * 32
CRED = "AKIDUNITMARK1"
TOKEN = "FQoGZXIvYXdzEXAMPLETOKEN"
SSEC = "MzJieXRlc2tleWZvcnNzZWNleGFtcGxlISEhISE="
PASSWORD = "root-password-for-log-tests"

PRESIGNED = (
    "GET /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential={CRED}%2F20261202%2Fus-east-1%2Fs3%2Faws4_request"
    f"&X-Amz-Security-Token={TOKEN}&X-Amz-Signature={SIG} HTTP/1.1 junk"
)
AUTHORIZATION = (
    f"AWS4-HMAC-SHA256 Credential={CRED}/20261202/us-east-1/s3/aws4_request, "
    f"SignedHeaders=host;x-amz-date, Signature={SIG}"
)
MARKS = (SIG, CRED, TOKEN, SSEC, PASSWORD)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """setup_logging as the server runs it, its stderr handler writing into a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    names = (LOGGER_NAME, *LIBRARY_LOGGERS)
    saved_filters = {n: logging.getLogger(n).filters[:] for n in names}
    saved_disabled = {n: logging.getLogger(n).disabled for n in names}
    setup_logging("DEBUG", "json", secrets=[PASSWORD])
    buf = io.StringIO()
    (handler,) = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    handler.setStream(buf)
    yield buf
    root.handlers[:], root.level = saved[0], saved[1]
    for n in names:
        logging.getLogger(n).filters[:] = saved_filters[n]
        logging.getLogger(n).disabled = saved_disabled[n]


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line]


def _assert_clean(text: str) -> None:
    for mark in MARKS:
        assert mark not in text, text


def test_aiohttp_bad_status_line_traceback_is_cleaned(logs: io.StringIO) -> None:
    try:
        raise BadStatusLine(PRESIGNED)
    except BadStatusLine as exc:
        logging.getLogger("aiohttp.server").exception(
            "Error handling request from %s", "127.0.0.1", exc_info=exc
        )
    (line,) = _lines(logs)
    text = json.dumps(line)
    _assert_clean(text)
    assert line["level"] == "error" and line["logger"] == "aiohttp.server"
    assert "BadStatusLine" in str(line["exc"])  # the traceback is kept, only cleaned
    assert f"X-Amz-Credential={REDACTED}" in str(line["exc"])
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in str(line["exc"])


def test_line_too_long_on_an_authorization_value_is_cleaned(
    logs: io.StringIO,
) -> None:
    value = AUTHORIZATION.encode() + b"x" * 9000
    try:
        raise LineTooLong(value[:100] + b"...", 8190)
    except LineTooLong:
        logging.getLogger("aiohttp.server").exception("Error handling request from 127.0.0.1")
    _assert_clean(json.dumps(_lines(logs)))


def test_message_args_and_extras_are_cleaned(logs: io.StringIO) -> None:
    log = logging.getLogger(LOGGER_NAME)
    log.warning("request %s failed", PRESIGNED, extra={"auth": AUTHORIZATION, "n": 3})
    log.info("headers", extra={"headers": f"{{'Authorization': '{AUTHORIZATION}'}}"})
    log.info(
        "sse-c",
        extra={"h": f"x-amz-server-side-encryption-customer-key: {SSEC}\r\nx-amz-date: 1"},
    )
    log.info("token header x-amz-security-token: %s", TOKEN)
    log.error("config", extra={"detail": f"login with {PASSWORD} refused"})
    lines = _lines(logs)
    assert len(lines) == 5
    _assert_clean(json.dumps(lines))
    assert lines[0]["n"] == 3
    assert "x-amz-date: 1" in str(lines[2]["h"])


def test_any_other_logger_is_cleaned_too(logs: io.StringIO) -> None:
    logging.getLogger("some.library").error("fetching %s", PRESIGNED)
    logging.getLogger("aiohttp.web").warning("auth=%s", AUTHORIZATION)
    _assert_clean(json.dumps(_lines(logs)))


def test_text_format_cleans_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.StreamHandler()
    from sealstore.log import TextFormatter

    handler.setFormatter(TextFormatter())
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("test.redaction.text")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise BadStatusLine(PRESIGNED)
        except BadStatusLine:
            log.exception("bad line")
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    _assert_clean(err)
    assert "Traceback" in err and "bad line" in err


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (f"X-Amz-Signature={SIG}&a=1", "&a=1"),
        (f"x-amz-signature={SIG}", "x-amz-signature="),
        (f"X%2DAmz%2DSignature%3D{SIG}", "X%2DAmz%2DSignature%3D"),
        (f"Credential={CRED}/20261202/us-east-1/s3/aws4_request, Signature={SIG}", ", "),
        (f"Authorization: {AUTHORIZATION}\r\nHost: x", "\r\nHost: x"),
        (f"b'authorization: {AUTHORIZATION}\\r\\nhost: x'", "\\r\\nhost: x"),
        (f"'X-Amz-Security-Token': '{TOKEN}'", "'X-Amz-Security-Token': '"),
        (f"AWSAccessKeyId={CRED}&Signature={SIG}", "AWSAccessKeyId="),
    ],
)
def test_redact_credentials_forms(raw: str, kept: str) -> None:
    out = redact_credentials(raw)
    _assert_clean(out)
    assert kept in out and REDACTED in out


def test_ordinary_text_is_untouched() -> None:
    text = "request GET /bucket/key?list-type=2&prefix=a%2Fb status=200 duration_ms=3.1"
    assert redact_credentials(text) == text
