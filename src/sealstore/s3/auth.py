"""Request authentication: SigV4 against the root credentials and the users file.

One function used by the S3 dispatcher (every request) and by the admin endpoints (KMS key
status, signed metrics scrapes), so both verify signatures the same way and neither has to
import the other; and its twin for browser POST uploads, whose signature is in the form. The
admin endpoints pass no users, so they stay root-only; the dispatcher passes the current users
and accepts anonymous requests, which the policy hook then judges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from sealstore.s3 import sigv4, sigv4_post

if TYPE_CHECKING:
    from sealstore.config import Settings
    from sealstore.s3.policy.users import UserDirectory


# What the dispatcher records as a browser POST upload's header authentication: none. The
# PostObject handler authenticates the form itself (authenticate_form); routing.is_browser_post
# admits only requests that route to that handler, so no other handler ever sees this value.
FORM_AUTH = sigv4.AuthResult(
    access_key="",
    payload_mode=sigv4.PayloadMode.UNSIGNED,
    declared_sha256=None,
    signing_key=b"",
    seed_signature="",
    amz_date="",
    scope="",
    region="",
    presigned=False,
    signed_headers=(),
)


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


def authenticate_form(
    fields: Mapping[str, str], settings: Settings, users: UserDirectory | None
) -> str:
    """Verify a browser POST upload's SigV4 form fields; the access key that signed it (root
    or a user of ``users``)."""
    return sigv4_post.verify_form(fields, _lookup_secret(settings, users), settings.region)
