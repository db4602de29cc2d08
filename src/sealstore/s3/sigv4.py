"""AWS Signature Version 4 verification (and signing) for S3 requests.

This module answers one question for the app: *who* sent this request, and how is its body
protected?  It verifies the Authorization header form and the presigned-URL query form, and
reports the payload mode declared in ``x-amz-content-sha256`` so that :mod:`.body` can verify
the body (signed SHA-256, ``aws-chunked`` chunk signatures, or nothing) while it streams.

Canonicalisation follows what S3 itself accepts from real clients:

* The canonical URI is the path re-encoded with AWS ``UriEncode`` (every byte except
  ``A-Za-z0-9-._~`` and ``/`` percent-encoded, after decoding what the client sent).  S3 never
  normalises ``.``/``..``/``//``.  If that fails we also try the path exactly as sent, because
  S3 clients sign the path as they send it and a few send characters that they did not encode.
* The canonical query is built from the raw query string, decoded and re-encoded the same way
  and sorted by encoded name then value.  ``+`` is tried as a literal plus and then as a space.

Every candidate is checked with :func:`hmac.compare_digest`.  All candidates describe the same
decoded request (same key, same parameters), so accepting any of them gives an attacker nothing
the signer did not sign.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from urllib.parse import quote, unquote_to_bytes, urlsplit

from .errors import S3Error

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "MAX_PRESIGN_EXPIRES",
    "MAX_SKEW",
    "AuthResult",
    "Credentials",
    "PayloadMode",
    "authenticate",
    "canonical_query",
    "canonical_uri",
    "derive_signing_key",
    "presign_url",
    "sign_request",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 604800  # one week, the S3 limit
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_SPACES = re.compile(r" +")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~/]*")
_PLAIN_PARAM = re.compile(r"[A-Za-z0-9\-._~]*")
# Bytes AWS UriEncode leaves alone; quote() always keeps ASCII letters and digits.
_UNRESERVED = "-_.~"


class PayloadMode(StrEnum):
    """How the request body is protected, from ``x-amz-content-sha256``."""

    SIGNED = "SIGNED"  # header carries the hex SHA-256 of the whole body
    UNSIGNED = "UNSIGNED-PAYLOAD"
    STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    @property
    def is_streaming(self) -> bool:
        """True when the body is ``aws-chunked`` framed."""
        return self.value.startswith("STREAMING-")

    @property
    def has_trailer(self) -> bool:
        """True when the chunked body ends with trailing headers."""
        return self.value.endswith("-TRAILER")

    @property
    def chunks_signed(self) -> bool:
        """True when every chunk (and the trailer) carries a chained signature."""
        return self.value.startswith("STREAMING-AWS4-HMAC-SHA256")


_SENTINELS = {m.value: m for m in PayloadMode if m is not PayloadMode.SIGNED}
_SIGV4A = (
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
)


@dataclass(frozen=True)
class Credentials:
    """An S3 access key pair.  ``repr`` hides the secret so it never reaches a log."""

    access_key: str
    secret_key: str = field(repr=False)


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


# --------------------------------------------------------------------------- primitives


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def derive_signing_key(secret_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """``kSigning`` = HMAC chain over date, region, service and ``aws4_request``."""
    k = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, TERMINATOR)


def _raw_bytes(text: str) -> bytes:
    """The bytes the client sent: aiohttp decodes non-UTF-8 input with surrogateescape."""
    return text.encode("utf-8", "surrogateescape")


def _unquote(text: str) -> bytes:
    return unquote_to_bytes(_raw_bytes(text))


def _uri_encode(raw: bytes | str, *, keep_slash: bool) -> str:
    safe = _UNRESERVED + ("/" if keep_slash else "")
    return quote(raw, safe=safe)


def _reencode(text: str, *, keep_slash: bool) -> str:
    """Decode what the client sent and encode it once the AWS way.  Text made only of
    unreserved characters (the common case) is already canonical and returned as is."""
    if (_PLAIN_PATH if keep_slash else _PLAIN_PARAM).fullmatch(text):
        return text
    return _uri_encode(_unquote(text), keep_slash=keep_slash)


def canonical_uri(raw_path: str) -> str:
    """AWS-style canonical URI for S3: decode what was sent, re-encode each byte once."""
    if not raw_path:
        return "/"
    return _reencode(raw_path, keep_slash=True)


def canonical_query(raw_query: str, *, plus_is_space: bool = False, exclude: str = "") -> str:
    """Canonical query string from the raw query: decode, re-encode, sort by name then value.

    ``exclude`` names one parameter to leave out (``X-Amz-Signature`` for presigned URLs).
    """
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        if plus_is_space:
            name = name.replace("+", " ")
            value = value.replace("+", " ")
        enc_name = _reencode(name, keep_slash=False)
        if exclude and enc_name == exclude:
            continue
        pairs.append((enc_name, _reencode(value, keep_slash=False)))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def _header_values(headers: Mapping[str, str], name: str) -> list[str] | None:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        values = list(getall(name, []))
        return values or None
    value = headers.get(name)
    return None if value is None else [value]


def _trim_spaces(value: str) -> str:
    """AWS ``Trimall``: strip, and collapse runs of spaces (SDKs other than botocore)."""
    return _SPACES.sub(" ", value.strip())


def _trim_whitespace(value: str) -> str:
    """botocore's reading of ``Trimall``: every whitespace run (tabs too) becomes one space."""
    return " ".join(value.split())


def _canonical_headers(
    headers: Mapping[str, str],
    signed: Iterable[str],
    trim: Callable[[str], str] = _trim_spaces,
) -> str:
    lines = []
    for name in signed:
        values = _header_values(headers, name)
        if values is None:
            raise S3Error(
                "AccessDenied",
                f"Header {name} is listed in SignedHeaders but is not present in the request.",
            )
        joined = ",".join(trim(v) for v in values)
        lines.append(f"{name}:{joined}\n")
    return "".join(lines)


def _canonical_request(
    method: str, uri: str, query: str, canon_headers: str, signed: str, payload: str
) -> str:
    return f"{method}\n{uri}\n{query}\n{canon_headers}\n{signed}\n{payload}"


def _string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(_raw_bytes(canonical_request)).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _signature(signing_key: bytes, string_to_sign: str) -> str:
    return hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Parsed:
    access_key: str
    date: str
    region: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    when: datetime
    presigned: bool
    expires: int


def _parse_amz_date(value: str, *, presigned: bool) -> datetime:
    if not _AMZ_DATE.fullmatch(value):
        if presigned:
            raise S3Error(
                "AuthorizationQueryParametersError",
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
            )
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    try:  # fixed layout checked above; slicing is ~20x faster than strptime
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        raise S3Error("AccessDenied", "Invalid date in the request.") from None


def _request_date(headers: Mapping[str, str]) -> tuple[str, datetime]:
    """``x-amz-date``, falling back to ``Date`` as SigV4 allows."""
    amz = headers.get("x-amz-date")
    if amz is not None:
        value = amz.strip()
        return value, _parse_amz_date(value, presigned=False)
    date = headers.get("date")
    if date is None:
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime(AMZ_DATE_FORMAT), when


def _malformed_credential(presigned: bool, detail: str) -> S3Error:
    if presigned:
        return S3Error(
            "AuthorizationQueryParametersError",
            f"Error parsing the X-Amz-Credential parameter; {detail}",
        )
    return S3Error(
        "AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}"
    )


def _parse_credential(value: str, presigned: bool) -> tuple[str, str, str]:
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise _malformed_credential(
            presigned,
            "the Credential is mal-formed; expecting "
            '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
        )
    access_key, date, region, service, terminal = parts
    if not re.fullmatch(r"\d{8}", date):
        raise _malformed_credential(
            presigned,
            f'incorrect date format "{date}". '
            'This date in the credential must be in the format "yyyyMMdd".',
        )
    if service != SERVICE:
        raise _malformed_credential(
            presigned, f'incorrect service "{service}". This endpoint belongs to "s3".'
        )
    if terminal != TERMINATOR:
        raise _malformed_credential(
            presigned, f'incorrect terminal "{terminal}". This endpoint uses "aws4_request".'
        )
    return access_key, date, region


def _parse_signed_headers(value: str, presigned: bool) -> tuple[str, ...]:
    names = tuple(value.split(";")) if value else ()
    if not names or any(not n or n != n.strip().lower() for n in names):
        raise _malformed_credential(presigned, "the SignedHeaders list is malformed.")
    if "host" not in names:
        raise (
            S3Error("AccessDenied", "Host header is required in SignedHeaders.")
            if presigned
            else S3Error(
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed; the host header must be signed.",
            )
        )
    return names


def _parse_header_auth(authorization: str, headers: Mapping[str, str]) -> _Parsed:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        if algorithm == "AWS" or algorithm.startswith("AWS4-"):
            raise S3Error(
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. "
                "Please use AWS4-HMAC-SHA256.",
            )
        raise S3Error("AccessDenied", "Unsupported Authorization header.")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name in fields:
            raise S3Error(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; unexpected component '{item.strip()}'.",
            )
        fields[name] = value.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
    if missing or len(fields) != 3:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed; it must contain exactly Credential, "
            f"SignedHeaders and Signature (missing: {', '.join(missing) or 'none'}).",
        )
    access_key, date, region = _parse_credential(fields["Credential"], presigned=False)
    signed = _parse_signed_headers(fields["SignedHeaders"], presigned=False)
    amz_date, when = _request_date(headers)
    if amz_date[:8] != date:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            f'The authorization header is malformed; Invalid credential date "{date}". '
            'This date is not the same as X-Amz-Date: "' + amz_date[:8] + '".',
        )
    return _Parsed(access_key, date, region, signed, fields["Signature"], amz_date, when, False, 0)


def _query_params(raw_query: str) -> dict[str, str]:
    """Decoded X-Amz-* auth parameters (first occurrence wins; duplicates are rejected)."""
    out: dict[str, str] = {}
    for item in raw_query.split("&"):
        name, _, value = item.partition("=")
        dname = _unquote(name).decode("utf-8", "replace") if "%" in name else name
        if dname.startswith("X-Amz-"):
            if dname in out:
                raise S3Error(
                    "AuthorizationQueryParametersError", f"Duplicate query parameter {dname}."
                )
            out[dname] = _unquote(value).decode("utf-8", "replace")
    return out


def _parse_query_auth(params: Mapping[str, str]) -> _Parsed:
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise S3Error(
            "AuthorizationQueryParametersError",
            'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
        )
    required = (
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Expires",
    )
    missing = [n for n in required if not params.get(n)]
    if missing:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        )
    access_key, date, region = _parse_credential(params["X-Amz-Credential"], presigned=True)
    signed = _parse_signed_headers(params["X-Amz-SignedHeaders"], presigned=True)
    amz_date = params["X-Amz-Date"]
    when = _parse_amz_date(amz_date, presigned=True)
    if amz_date[:8] != date:
        raise S3Error(
            "AuthorizationQueryParametersError",
            f'Invalid credential date "{date}". '
            f'This date is not the same as X-Amz-Date: "{amz_date[:8]}".',
        )
    raw_expires = params["X-Amz-Expires"]
    if not raw_expires.isdigit():
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    expires = int(raw_expires)
    if expires < 1:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        )
    return _Parsed(
        access_key, date, region, signed, params["X-Amz-Signature"], amz_date, when, True, expires
    )


def _payload_mode(value: str | None, presigned: bool) -> tuple[PayloadMode, str | None]:
    if value is None:
        if presigned:
            return PayloadMode.UNSIGNED, None
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    value = value.strip()
    mode = _SENTINELS.get(value)
    if mode is not None:
        return mode, None
    if _HEX64.fullmatch(value):
        return PayloadMode.SIGNED, value.lower()
    if value in _SIGV4A:
        raise S3Error(
            "NotImplemented", "Signature Version 4A (ECDSA) payload signing is not supported."
        )
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
        "or a valid sha256 value.",
    )


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


# --------------------------------------------------------------------------- verification


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
) -> AuthResult:
    """Verify a SigV4 request (header or presigned form) and describe its payload protection.

    ``raw_path`` is the path exactly as received (still percent-encoded), ``raw_query`` the raw
    query string without ``?``; ``headers`` must be case-insensitive (aiohttp's ``CIMultiDict``).
    ``lookup`` maps an access key to its secret or ``None``.  Raises :class:`S3Error` on any
    failure; never returns for an unauthenticated request.
    """
    path, raw_query = _split_path(raw_path, raw_query)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    authorization = headers.get("authorization")
    params = _query_params(raw_query) if raw_query else {}
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
        parsed = _parse_header_auth(authorization, headers)
    elif has_query_auth:
        parsed = _parse_query_auth(params)
    elif "Signature=" in raw_query and "AWSAccessKeyId=" in raw_query:
        raise S3Error(
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. "
            "Please use AWS4-HMAC-SHA256.",
        )
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
    mode, declared = _payload_mode(content_sha, parsed.presigned)
    payload_line = content_sha.strip() if content_sha is not None else PayloadMode.UNSIGNED.value

    secret = lookup(parsed.access_key)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId",
            extra={"AWSAccessKeyId": parsed.access_key},
        )
    scope = f"{parsed.date}/{parsed.region}/{SERVICE}/{TERMINATOR}"
    signing_key = derive_signing_key(secret, parsed.date, parsed.region)
    signed_line = ";".join(parsed.signed_headers)
    exclude = "X-Amz-Signature" if parsed.presigned else ""

    first: tuple[str, str] | None = None
    provided = parsed.signature.strip().lower().encode("ascii", "replace")
    for uri, query, canon_headers in _all_candidates(
        path, raw_query, exclude, headers, parsed.signed_headers
    ):
        creq = _canonical_request(
            method.upper(), uri, query, canon_headers, signed_line, payload_line
        )
        sts = _string_to_sign(parsed.amz_date, scope, creq)
        if first is None:
            first = (creq, sts)
        if hmac.compare_digest(_signature(signing_key, sts).encode("ascii"), provided):
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
            "AWSAccessKeyId": parsed.access_key,
            "StringToSign": first[1],
            "SignatureProvided": parsed.signature,
            "CanonicalRequest": _redact(first[0]),
        },
    )


_SECRET_HEADERS = (
    "x-amz-server-side-encryption-customer-key:",
    "x-amz-copy-source-server-side-encryption-customer-key:",
    "x-amz-security-token:",
)


def _redact(canonical_request: str) -> str:
    """The canonical request for the error document, minus key material a client may have
    signed (SSE-C keys, session tokens), so an error never echoes or logs a secret."""
    lines = canonical_request.split("\n")
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
    primary = _canonical_headers(headers, signed)
    yield canonical_uri(path), canonical_query(raw_query, exclude=exclude), primary
    pairs = _candidates(path, raw_query, exclude)
    yield from ((u, q, primary) for u, q in pairs[1:])
    other = _canonical_headers(headers, signed, _trim_whitespace)
    if other != primary:
        yield from ((u, q, other) for u, q in pairs)


def _candidates(path: str, raw_query: str, exclude: str) -> list[tuple[str, str]]:
    """Distinct (canonical URI, canonical query) pairs to try, AWS's own form first."""
    uris = [canonical_uri(path)]
    raw_uri = path or "/"
    if raw_uri not in uris:
        uris.append(raw_uri)
    queries = [canonical_query(raw_query, exclude=exclude)]
    if "+" in raw_query:
        spaced = canonical_query(raw_query, plus_is_space=True, exclude=exclude)
        if spaced not in queries:
            queries.append(spaced)
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


def _check_time(parsed: _Parsed, now: datetime) -> None:
    if parsed.presigned:
        if parsed.when - now > MAX_SKEW:
            raise S3Error("AccessDenied", "Request is not valid yet")
        expires_at = parsed.when + timedelta(seconds=parsed.expires)
        if now > expires_at:
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


# --------------------------------------------------------------------------- signing helpers


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
    benchmark; the result verifies with :func:`authenticate`.
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
    canon = "".join(f"{n}:{_trim_spaces(ci[n])}\n" for n in signed)
    scope = f"{amz_date[:8]}/{region}/{SERVICE}/{TERMINATOR}"
    creq = _canonical_request(
        method.upper(),
        canonical_uri(parts.path),
        canonical_query(parts.query),
        canon,
        ";".join(signed),
        payload_sha256,
    )
    key = derive_signing_key(credentials.secret_key, amz_date[:8], region)
    sig = _signature(key, _string_to_sign(amz_date, scope, creq))
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
    scope = f"{amz_date[:8]}/{region}/{SERVICE}/{TERMINATOR}"
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
    extra = "&".join(f"{k}={_uri_encode(v, keep_slash=False)}" for k, v in auth.items())
    query = f"{parts.query}&{extra}" if parts.query else extra
    creq = _canonical_request(
        method.upper(),
        canonical_uri(parts.path),
        canonical_query(query),
        "".join(f"{n}:{_trim_spaces(to_sign[n])}\n" for n in signed),
        ";".join(signed),
        "UNSIGNED-PAYLOAD",
    )
    key = derive_signing_key(credentials.secret_key, amz_date[:8], region)
    sig = _signature(key, _string_to_sign(amz_date, scope, creq))
    path = parts.path or "/"
    return f"{parts.scheme}://{parts.netloc}{path}?{query}&X-Amz-Signature={sig}"
