"""Client-side SigV4: sign a request with the Authorization header, or presign a URL.

The server never signs anything; these helpers exist for the tests (requests botocore would
not make) and for the benchmark's plain-HTTP load generator (wrk with presigned URLs).  They
build the canonical request, string to sign and signature with the server's own functions in
:mod:`sealstore.s3.sigv4_canonical`, so what they sign is by construction what
:func:`sealstore.s3.sigv4.authenticate` verifies; the tests hold both against botocore.

Credentials are :class:`sealstore.client.config.Credentials`; a session token is not signed
(nothing here needs one).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sealstore.client.config import Credentials
from sealstore.s3.sigv4_canonical import (
    ALGORITHM,
    AMZ_DATE_FORMAT,
    MAX_PRESIGN_EXPIRES,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    credential_scope,
    derive_signing_key,
    signature,
    string_to_sign,
    uri_encode,
)

__all__ = ["Credentials", "presign_url", "sign_request"]


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    region: str,
    now: datetime,
    payload_sha256: str = "UNSIGNED-PAYLOAD",
) -> dict[str, str]:
    """Sign a request with the Authorization header; returns the headers to send.

    ``url`` must already be percent-encoded as it will be sent.  ``Host``, ``x-amz-date`` and
    ``x-amz-content-sha256`` are added; every header given is signed.  Used by tests and the
    benchmark; the result verifies with :func:`sealstore.s3.sigv4.authenticate`.
    """
    parts = urlsplit(url)
    amz_date = now.astimezone(UTC).strftime(AMZ_DATE_FORMAT)
    out = {k: v for k, v in headers.items()}
    lower = {k.lower() for k in out}
    if "host" not in lower:
        out["Host"] = parts.netloc
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_sha256
    ci = {k.lower(): v for k, v in out.items()}
    signed = tuple(sorted(ci))
    scope = credential_scope(amz_date[:8], region)
    creq = canonical_request(
        method.upper(),
        canonical_uri(parts.path),
        canonical_query(parts.query),
        canonical_headers(ci, signed),
        ";".join(signed),
        payload_sha256,
    )
    key = derive_signing_key(credentials.secret_key, amz_date[:8], region)
    sig = signature(key, string_to_sign(amz_date, scope, creq))
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={sig}"
    )
    return out


def presign_url(
    method: str,
    url: str,
    credentials: Credentials,
    region: str,
    now: datetime,
    expires: int = 3600,
    headers: Mapping[str, str] | None = None,
) -> str:
    """Return ``url`` with SigV4 query authentication (unsigned payload).

    ``url`` must be ``scheme://host[:port]/path[?query]`` already percent-encoded.  ``host`` is
    always signed; ``headers`` (e.g. ``x-amz-server-side-encryption``) are signed too and the
    caller must then send exactly those headers.  Such URLs let a plain HTTP load generator
    (wrk) issue authenticated S3 requests.
    """
    if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
        raise ValueError(f"expires must be 1..{MAX_PRESIGN_EXPIRES}")
    parts = urlsplit(url)
    amz_date = now.astimezone(UTC).strftime(AMZ_DATE_FORMAT)
    scope = credential_scope(amz_date[:8], region)
    to_sign = {k.lower(): v for k, v in (headers or {}).items()}
    to_sign["host"] = parts.netloc
    signed = sorted(to_sign)
    auth = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{credentials.access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": ";".join(signed),
    }
    extra = "&".join(f"{k}={uri_encode(v, keep_slash=False)}" for k, v in auth.items())
    query = f"{parts.query}&{extra}" if parts.query else extra
    creq = canonical_request(
        method.upper(),
        canonical_uri(parts.path),
        canonical_query(query),
        canonical_headers(to_sign, signed),
        ";".join(signed),
        "UNSIGNED-PAYLOAD",
    )
    key = derive_signing_key(credentials.secret_key, amz_date[:8], region)
    sig = signature(key, string_to_sign(amz_date, scope, creq))
    path = parts.path or "/"
    return f"{parts.scheme}://{parts.netloc}{path}?{query}&X-Amz-Signature={sig}"
