"""Request authentication: SigV4 against the root credentials and the users file.

One function used by the S3 dispatcher (every request) and by the admin endpoints (KMS key
status, signed metrics scrapes), so both verify signatures the same way and neither has to
import the other. The admin endpoints pass no users, so they stay root-only; the dispatcher
passes the current users and accepts anonymous requests, which the policy hook then judges.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from sealstore.s3 import sigv4

if TYPE_CHECKING:
    from sealstore.config import Settings
    from sealstore.s3.policy.users import UserDirectory


def _lookup_secret(settings: Settings, users: UserDirectory | None) -> Callable[[str], str | None]:
    """The secret key for an access key: root's, else a user's (when users are given)."""
    root, password = settings.root_user, settings.root_password

    def lookup(access_key: str) -> str | None:
        if access_key == root:
            return password
        user = users.get(access_key) if users is not None else None
        return user.secret_key if user is not None else None

    return lookup


def authenticate(
    request: web.Request,
    settings: Settings,
    users: UserDirectory | None = None,
    *,
    allow_anonymous: bool = False,
) -> sigv4.AuthResult:
    """Run SigV4 verification for ``request`` (raises S3Error on failure)."""
    raw = request.raw_path
    raw_path, _, raw_query = raw.partition("?")
    return sigv4.authenticate(
        request.method,
        raw_path,
        raw_query,
        request.headers,
        _lookup_secret(settings, users),
        settings.region,
        datetime.now(UTC),
        allow_anonymous=allow_anonymous,
    )
