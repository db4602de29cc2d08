"""Request authentication: SigV4 against the configured root credentials.

One function used by the S3 dispatcher (every request) and by the admin endpoints (KMS key
status, signed metrics scrapes), so both verify signatures the same way and neither has to
import the other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from sealstore.s3 import sigv4

if TYPE_CHECKING:
    from sealstore.config import Settings


def _lookup_secret(settings: Settings) -> Callable[[str], str | None]:
    """The secret key for an access key: only the root user exists."""
    user, password = settings.root_user, settings.root_password

    def lookup(access_key: str) -> str | None:
        return password if access_key == user else None

    return lookup


def authenticate(request: web.Request, settings: Settings) -> sigv4.AuthResult:
    """Run SigV4 verification for ``request`` (raises S3Error on failure)."""
    raw = request.raw_path
    raw_path, _, raw_query = raw.partition("?")
    return sigv4.authenticate(
        request.method,
        raw_path,
        raw_query,
        request.headers,
        _lookup_secret(settings),
        settings.region,
        datetime.now(UTC),
    )
