"""AWS Signature Version 4 verification for S3 requests.

This module answers one question for the app: *who* sent this request, and how is its body
protected?  It verifies the Authorization header form and the presigned-URL query form, and
reports the payload mode declared in ``x-amz-content-sha256`` so that :mod:`.body` can verify
the body (signed SHA-256, ``aws-chunked`` chunk signatures, or nothing) while it streams.
Parsing lives in :mod:`.sigv4_parse`, the canonical request and signature (shared with the
client-side signer in :mod:`sealstore.client.signing`) in :mod:`.sigv4_canonical`.

The canonical forms are those of :mod:`.sigv4_canonical`.  If they do not match, we also try
the path exactly as sent, because S3 clients sign the path as they send it and a few send
characters that they did not encode; the query pairs exactly as sent, only sorted; and
botocore's whitespace trimming of header values: at most :data:`MAX_CANDIDATES` forms.

Every candidate is checked with :func:`hmac.compare_digest`.  Each one is either the canonical
form of the one reading the handlers act on (:mod:`.query`: ``+`` is a space) or the exact
bytes sent, so accepting any of them gives an attacker nothing the signer did not sign: no
candidate reads a byte differently from the handlers (a ``+`` is never also a literal plus).

The ``SignatureDoesNotMatch`` document echoes the canonical request as S3 does, clipped to
:data:`MAX_ECHO` characters, so an unauthenticated request can never make the server send back
more than a few KiB whatever it sent (the header section itself is bounded in :mod:`.app`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice

from .errors import S3Error
from .sigv4_canonical import (
    ALGORITHM,
    EMPTY_SHA256,
    MAX_PRESIGN_EXPIRES,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    credential_scope,
    derive_signing_key,
    signature,
    string_to_sign,
    trim_whitespace,
)
from .sigv4_parse import (
    ParsedAuth,
    PayloadMode,
    parse_header_auth,
    parse_query_auth,
    payload_mode,
    query_params,
)

# The constants, PayloadMode and the canonical helpers are re-exported: they are the SigV4
# vocabulary .body, .chunked and callers outside s3/ import from here.
__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "MAX_CANDIDATES",
    "MAX_ECHO",
    "MAX_PRESIGN_EXPIRES",
    "MAX_SKEW",
    "AuthResult",
    "PayloadMode",
    "authenticate",
    "canonical_query",
    "canonical_uri",
    "derive_signing_key",
]

MAX_SKEW = timedelta(minutes=15)
# 2 URI forms x 2 query forms x 2 header trims: the most canonical requests one request costs.
MAX_CANDIDATES = 8
# Longest text echoed in an error document field (canonical request, signature, access key).
MAX_ECHO = 4096
_ECHO_ID = 128


@dataclass(frozen=True)
class AuthResult:
    """Outcome of a successful authentication.

    ``signing_key``, ``seed_signature``, ``amz_date`` and ``scope`` are what the aws-chunked
    decoder needs to verify the chained chunk signatures.  ``declared_sha256`` is set (lowercase
    hex) only in :attr:`PayloadMode.SIGNED` mode and must be checked against the body.
    """

    access_key: str
    payload_mode: PayloadMode
    declared_sha256: str | None
    signing_key: bytes = field(repr=False)
    seed_signature: str
    amz_date: str
    scope: str
    region: str
    presigned: bool
    signed_headers: tuple[str, ...]
    # An unsigned request (no Authorization header, no X-Amz-* query auth): only a bucket
    # policy naming Principal "*" can allow it (s3/policy/authorize.py).
    anonymous: bool = False


def _check_all_amz_headers_signed(headers: Mapping[str, str], signed: tuple[str, ...]) -> None:
    """Refuse unsigned ``x-amz-*`` headers: they change what the request does (copy source,
    SSE, metadata), so a captured or presigned request must not be able to gain them."""
    signed_set = set(signed)
    unsigned = sorted({k.lower() for k in headers if k.lower().startswith("x-amz-")} - signed_set)
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            extra={"HeadersNotSigned": ", ".join(unsigned)},
        )


def _split_path(raw_path: str, raw_query: str) -> tuple[str, str]:
    path, sep, query = raw_path.partition("?")
    if sep and not raw_query:
        raw_query = query
    return path, raw_query


def authenticate(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    lookup: Callable[[str], str | None],
    region: str,
    now: datetime,
    *,
    allow_anonymous: bool = False,
) -> AuthResult:
    """Verify a SigV4 request (header or presigned form) and describe its payload protection.

    ``raw_path`` is the path exactly as received (still percent-encoded), ``raw_query`` the raw
    query string without ``?``; ``headers`` must be case-insensitive (aiohttp's ``CIMultiDict``).
    ``lookup`` maps an access key to its secret or ``None``.  Raises :class:`S3Error` on any
    failure; never returns for an unauthenticated request, except that with
    ``allow_anonymous`` a request carrying no credentials at all yields an anonymous result.
    """
    path, raw_query = _split_path(raw_path, raw_query)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    authorization = headers.get("authorization")
    params = query_params(raw_query) if raw_query else {}
    has_query_auth = (
        "X-Amz-Algorithm" in params or "X-Amz-Signature" in params or "X-Amz-Credential" in params
    )
    if authorization is not None and has_query_auth:
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
        )
    if authorization is not None:
        parsed = parse_header_auth(authorization, headers)
    elif has_query_auth:
        parsed = parse_query_auth(params)
    elif "Signature=" in raw_query and "AWSAccessKeyId=" in raw_query:
        raise S3Error(
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. "
            "Please use AWS4-HMAC-SHA256.",
        )
    elif allow_anonymous:
        return _anonymous(headers, region)
    else:
        raise S3Error("AccessDenied", "Access Denied. Anonymous requests are not allowed.")

    if parsed.region != region:
        err_code = (
            "AuthorizationQueryParametersError"
            if parsed.presigned
            else "AuthorizationHeaderMalformed"
        )
        raise S3Error(
            err_code,
            f"The authorization header is malformed; the region '{parsed.region}' is wrong; "
            f"expecting '{region}'",
            extra={"Region": region},
        )
    _check_time(parsed, now)
    _check_all_amz_headers_signed(headers, parsed.signed_headers)

    content_sha = headers.get("x-amz-content-sha256")
    if parsed.presigned and content_sha is None:
        content_sha = params.get("X-Amz-Content-Sha256")
    mode, declared = payload_mode(content_sha, parsed.presigned)
    payload_line = content_sha.strip() if content_sha is not None else PayloadMode.UNSIGNED.value

    secret = lookup(parsed.access_key)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId",
            extra={"AWSAccessKeyId": clip(parsed.access_key, _ECHO_ID)},
        )
    scope = credential_scope(parsed.date, parsed.region)
    signing_key = derive_signing_key(secret, parsed.date, parsed.region)
    signed_line = ";".join(parsed.signed_headers)
    exclude = "X-Amz-Signature" if parsed.presigned else ""

    first: tuple[str, str] | None = None
    provided = parsed.signature.strip().lower().encode("ascii", "replace")
    candidates = _all_candidates(path, raw_query, exclude, headers, parsed.signed_headers)
    for uri, query, canon_headers in islice(candidates, MAX_CANDIDATES):
        creq = canonical_request(
            method.upper(), uri, query, canon_headers, signed_line, payload_line
        )
        sts = string_to_sign(parsed.amz_date, scope, creq)
        if first is None:
            first = (creq, sts)
        if hmac.compare_digest(signature(signing_key, sts).encode("ascii"), provided):
            return AuthResult(
                access_key=parsed.access_key,
                payload_mode=mode,
                declared_sha256=declared,
                signing_key=signing_key,
                seed_signature=parsed.signature.strip().lower(),
                amz_date=parsed.amz_date,
                scope=scope,
                region=parsed.region,
                presigned=parsed.presigned,
                signed_headers=parsed.signed_headers,
            )
    assert first is not None
    raise S3Error(
        "SignatureDoesNotMatch",
        extra={
            "AWSAccessKeyId": clip(parsed.access_key, _ECHO_ID),
            "StringToSign": first[1],
            "SignatureProvided": clip(parsed.signature, _ECHO_ID),
            "CanonicalRequest": clip(_redact(first[0]), MAX_ECHO),
        },
    )


def _anonymous(headers: Mapping[str, str], region: str) -> AuthResult:
    """The result for an unsigned request: its body can be hashed or unsigned, never signed
    in chunks (there is no signing key to verify chunk signatures with)."""
    mode, declared = payload_mode(headers.get("x-amz-content-sha256"), True)
    if mode in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER):
        raise S3Error("AccessDenied", "A signed streaming payload needs a signed request.")
    return AuthResult(
        access_key="",
        payload_mode=mode,
        declared_sha256=declared,
        signing_key=b"",
        seed_signature="",
        amz_date="",
        scope="",
        region=region,
        presigned=False,
        signed_headers=(),
        anonymous=True,
    )


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so, for echoing client input back."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"...[{len(text) - limit} more characters not shown]"


_SECRET_HEADERS = (
    "x-amz-server-side-encryption-customer-key:",
    "x-amz-copy-source-server-side-encryption-customer-key:",
    "x-amz-security-token:",
)


def _redact(creq: str) -> str:
    """The canonical request for the error document, minus key material a client may have
    signed (SSE-C keys, session tokens), so an error never echoes or logs a secret."""
    lines = creq.split("\n")
    for i, line in enumerate(lines):
        for prefix in _SECRET_HEADERS:
            if line.startswith(prefix):
                lines[i] = prefix + "<redacted>"
    return "\n".join(lines)


def _all_candidates(
    path: str,
    raw_query: str,
    exclude: str,
    headers: Mapping[str, str],
    signed: tuple[str, ...],
) -> Iterator[tuple[str, str, str]]:
    """(URI, query, canonical headers) to try, cheapest and most likely first; the
    alternative forms are only computed when the first one did not match."""
    primary = canonical_headers(headers, signed)
    yield canonical_uri(path), canonical_query(raw_query, exclude=exclude), primary
    pairs = _candidates(path, raw_query, exclude)
    yield from ((u, q, primary) for u, q in pairs[1:])
    other = canonical_headers(headers, signed, trim_whitespace)
    if other != primary:
        yield from ((u, q, other) for u, q in pairs)


def _candidates(path: str, raw_query: str, exclude: str) -> list[tuple[str, str]]:
    """Distinct (canonical URI, canonical query) pairs to try, AWS's own form first."""
    uris = [canonical_uri(path)]
    raw_uri = path or "/"
    if raw_uri not in uris:
        uris.append(raw_uri)
    queries = [canonical_query(raw_query, exclude=exclude)]
    verbatim = _verbatim_query(raw_query, exclude)
    if verbatim not in queries:
        queries.append(verbatim)
    return [(u, q) for u in uris for q in queries]


def _verbatim_query(raw_query: str, exclude: str) -> str:
    """The query pairs exactly as sent, only sorted (what some signers hash)."""
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        if exclude and name == exclude:
            continue
        pairs.append((name, value))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def _check_time(parsed: ParsedAuth, now: datetime) -> None:
    if parsed.presigned:
        if parsed.when - now > MAX_SKEW:
            raise S3Error("AccessDenied", "Request is not valid yet")
        expires_at = parsed.when + timedelta(seconds=parsed.expires)
        if now > expires_at or parsed.expires == 0:  # valid for no time: never valid
            raise S3Error(
                "AccessDenied",
                "Request has expired",
                extra={
                    "X-Amz-Expires": str(parsed.expires),
                    "Expires": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )
        return
    if abs(now - parsed.when) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            extra={
                "RequestTime": parsed.amz_date,
                "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "MaxAllowedSkewMilliseconds": str(int(MAX_SKEW.total_seconds() * 1000)),
            },
        )
