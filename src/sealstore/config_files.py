"""Settings that name files: the HTTPS certificate pair and the admin (metrics) token.

Kept apart from ``config.py`` so the one-line rules for file-based settings live together;
errors are ``ValueError`` with the operator's message, which ``config.py`` turns into its
``ConfigError`` (this module imports nothing from sealstore, so there is no cycle). Whether
the pair is a usable certificate and matching key is checked by ``sealstore.tls`` at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

MIN_METRICS_TOKEN = 16


def tls_files(env: Mapping[str, str]) -> tuple[Path | None, Path | None]:
    """SEALSTORE_TLS_CERT_FILE + SEALSTORE_TLS_KEY_FILE: both or neither, both readable."""
    cert = env.get("SEALSTORE_TLS_CERT_FILE")
    key = env.get("SEALSTORE_TLS_KEY_FILE")
    if cert is None and key is None:
        return None, None
    if cert is None or key is None:
        missing = "SEALSTORE_TLS_CERT_FILE" if cert is None else "SEALSTORE_TLS_KEY_FILE"
        raise ValueError(f"HTTPS needs both certificate and key: {missing} is not set")
    for name, path in (("SEALSTORE_TLS_CERT_FILE", cert), ("SEALSTORE_TLS_KEY_FILE", key)):
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise ValueError(f"{name} {path!r} is not a readable file")
    return Path(cert), Path(key)


def metrics_token(env: Mapping[str, str], min_length: int = MIN_METRICS_TOKEN) -> str | None:
    """SEALSTORE_METRICS_TOKEN_FILE: the admin bearer token, read from a file (never argv or
    the environment itself, so it shows up neither in ``ps`` nor in ``/proc/<pid>/environ``)."""
    name = "SEALSTORE_METRICS_TOKEN_FILE"
    path = env.get(name)
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ValueError(f"{name} {path!r} cannot be read: {reason}") from None
    if len(token) < min_length or any(c.isspace() for c in token):
        raise ValueError(
            f"{name} must hold one token of at least {min_length} characters without spaces"
        )
    return token
