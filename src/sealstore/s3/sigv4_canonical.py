"""The SigV4 building blocks that signing and verification must compute identically.

One implementation of the signing key, the canonical request, the string to sign and the
signature, used by the server's verifier (:mod:`.sigv4`) and by the client-side signer
(:mod:`sealstore.client.signing`), so that the two cannot drift apart.  Pure functions: no
I/O, no clock, no knowledge of the request object.

Canonicalisation follows what S3 itself accepts from real clients:

* The canonical URI is the path re-encoded with AWS ``UriEncode`` (every byte except
  ``A-Za-z0-9-._~`` and ``/`` percent-encoded, after decoding what the client sent).  S3 never
  normalises ``.``/``..``/``//``.
* The canonical query re-encodes the same way the decoded pairs of :func:`.query.query_pairs`
  (``+`` is a space), the reading the request handlers use too, sorted by encoded name then
  value.
* Header values are trimmed with AWS ``Trimall``; :func:`trim_whitespace` is botocore's reading
  of it (tabs too), which the verifier also tries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote, unquote_to_bytes

from .errors import S3Error
from .query import query_pairs, raw_bytes

__all__ = [
    "ALGORITHM",
    "AMZ_DATE_FORMAT",
    "EMPTY_SHA256",
    "MAX_PRESIGN_EXPIRES",
    "SERVICE",
    "TERMINATOR",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "credential_scope",
    "derive_signing_key",
    "raw_bytes",
    "signature",
    "string_to_sign",
    "trim_spaces",
    "trim_whitespace",
    "unquote",
    "uri_encode",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGN_EXPIRES = 604800  # one week, the S3 limit
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_SPACES = re.compile(r" +")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~/]*")
_PLAIN_PARAM_BYTES = re.compile(rb"[A-Za-z0-9\-._~]*")
# Bytes AWS UriEncode leaves alone; quote() always keeps ASCII letters and digits.
_UNRESERVED = "-_.~"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def derive_signing_key(secret_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """``kSigning`` = HMAC chain over date, region, service and ``aws4_request``."""
    k = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, TERMINATOR)


def credential_scope(date: str, region: str) -> str:
    """``YYYYMMDD/region/s3/aws4_request``, the scope in the credential and string to sign."""
    return f"{date}/{region}/{SERVICE}/{TERMINATOR}"


def unquote(text: str) -> bytes:
    """Percent-decode what the client sent, down to the bytes it meant."""
    return unquote_to_bytes(raw_bytes(text))


def uri_encode(raw: bytes | str, *, keep_slash: bool) -> str:
    """AWS ``UriEncode``: every byte but ``A-Za-z0-9-._~`` (and ``/`` if kept) as ``%XX``."""
    safe = _UNRESERVED + ("/" if keep_slash else "")
    return quote(raw, safe=safe)


def canonical_uri(raw_path: str) -> str:
    """AWS-style canonical URI for S3: decode what was sent, re-encode each byte once.  A
    path made only of unreserved characters (the common case) is already canonical."""
    if not raw_path:
        return "/"
    if _PLAIN_PATH.fullmatch(raw_path):
        return raw_path
    return uri_encode(unquote(raw_path), keep_slash=True)


def canonical_query(raw_query: str, *, exclude: str = "") -> str:
    """Canonical query string from the raw query: the pairs as :func:`.query.query_pairs`
    decodes them (the handlers' reading), each re-encoded once, sorted by name then value.

    ``exclude`` names one parameter to leave out (``X-Amz-Signature`` for presigned URLs).
    """
    pairs: list[tuple[str, str]] = []
    for name, value in query_pairs(raw_query):
        enc_name = _encode_param(name)
        if exclude and enc_name == exclude:
            continue
        pairs.append((enc_name, _encode_param(value)))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def _encode_param(raw: bytes) -> str:
    """One decoded name or value, encoded once the AWS way (unreserved bytes as they are)."""
    if _PLAIN_PARAM_BYTES.fullmatch(raw):
        return raw.decode("ascii")
    return uri_encode(raw, keep_slash=False)


def _header_values(headers: Mapping[str, str], name: str) -> list[str] | None:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        values = list(getall(name, []))
        return values or None
    value = headers.get(name)
    return None if value is None else [value]


def trim_spaces(value: str) -> str:
    """AWS ``Trimall``: strip, and collapse runs of spaces (SDKs other than botocore)."""
    return _SPACES.sub(" ", value.strip())


def trim_whitespace(value: str) -> str:
    """botocore's reading of ``Trimall``: every whitespace run (tabs too) becomes one space."""
    return " ".join(value.split())


def canonical_headers(
    headers: Mapping[str, str],
    signed: Iterable[str],
    trim: Callable[[str], str] = trim_spaces,
) -> str:
    """``name:value\\n`` for each signed header, repeated values joined with ``,``.

    ``headers`` is looked up by the lowercase names in ``signed``: a case-insensitive mapping
    (aiohttp's ``CIMultiDict``, whose repeated headers all count) or a dict keyed lowercase.
    A signed header that is absent is refused as S3 does.
    """
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


def canonical_request(
    method: str, uri: str, query: str, canon_headers: str, signed: str, payload: str
) -> str:
    """The six canonical-request lines; ``signed`` is the ``;``-joined SignedHeaders list."""
    return f"{method}\n{uri}\n{query}\n{canon_headers}\n{signed}\n{payload}"


def string_to_sign(amz_date: str, scope: str, canonical_req: str) -> str:
    """``AWS4-HMAC-SHA256``, the date, the scope and the SHA-256 of the canonical request."""
    digest = hashlib.sha256(raw_bytes(canonical_req)).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signature(signing_key: bytes, to_sign: str) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign."""
    return hmac.new(signing_key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
