"""The one reading of a request's query string, shared by SigV4 and the request handlers.

A signature protects a request only if the server acts on exactly what was signed.  If the
verifier read ``prefix=a+b`` as ``a+b`` while the handler read it as ``a b``, a proxy could
turn a signed ``prefix=a%2Bb`` into ``prefix=a+b`` and change what the request does without
breaking its signature.  So both read the query through :func:`query_pairs` and nothing else:

* pairs are split on ``&``, name from value on the first ``=`` (a bare ``uploads`` is
  ``("uploads", "")``);
* ``+`` is a space and ``%XX`` one byte, as in every HTML form and as AWS S3, MinIO and
  aiohttp read query strings.  A literal plus must be sent as ``%2B`` (botocore and the other
  SDKs always do; SigV4 itself says spaces are ``%20``, never ``+``, in what is signed).

The canonical query (:func:`sealstore.s3.sigv4_canonical.canonical_query`) re-encodes these
decoded bytes; the handlers see them as text (:func:`query_multidict`).  Both are functions of
the same bytes, so two queries with one canonical form always mean the same request.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

from multidict import MultiDict, MultiDictProxy

__all__ = ["decode_component", "query_multidict", "query_pairs", "raw_bytes"]


def raw_bytes(text: str) -> bytes:
    """The bytes the client sent: aiohttp decodes non-UTF-8 input with surrogateescape."""
    return text.encode("utf-8", "surrogateescape")


def decode_component(text: str) -> bytes:
    """One query name or value as the bytes the client meant (``+`` is a space)."""
    raw = raw_bytes(text)
    if b"+" in raw:
        raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw


def query_pairs(raw_query: str) -> Iterator[tuple[bytes, bytes]]:
    """Decoded ``(name, value)`` bytes of a raw query string, in the order sent."""
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        yield decode_component(name), decode_component(value)


def _text(raw: bytes) -> str:
    # Invalid UTF-8 becomes U+FFFD: the handlers never see surrogates they could not store
    # or render, and the signature still covers the exact bytes.
    return raw.decode("utf-8", "replace")


def query_multidict(raw_query: str) -> MultiDictProxy[str]:
    """The query parameters as the handlers see them (repeated names kept, first one wins
    for ``get``), decoded from the same bytes the signature was checked over."""
    out: MultiDict[str] = MultiDict()
    for name, value in query_pairs(raw_query):
        out.add(_text(name), _text(value))
    return MultiDictProxy(out)
