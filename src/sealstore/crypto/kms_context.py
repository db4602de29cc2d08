"""Canonical encoding of KMS encryption contexts (the bytes bound into every KMS call).

MinIO serialises a context as a JSON object with byte-wise sorted keys and no whitespace. Since
2021-01 it escapes strings exactly like Go's ``encoding/json`` with HTML escaping on; before that
(2019 era) keys and values were inserted raw. The master-key KMS HMACs these bytes and derived
Vault keys use them, so a single differing byte makes a key undecryptable: ``json.dumps`` does not
match (it escapes ``\\b``/``\\f`` and non-ASCII differently), hence this hand-written encoder.

Python strings that carry undecodable bytes (``surrogateescape``) are mapped back to those bytes
first, so an invalid UTF-8 byte becomes ``\\ufffd`` exactly as in Go.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_HEX = "0123456789abcdef"
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters Go's encoder (HTML-safe mode) does not write raw: quote, backslash, C0 controls,
# < > &, U+2028/U+2029 and surrogates (which stand for invalid UTF-8 in a Python str).
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    short = _SHORT.get(ch)
    if short is not None:
        return short
    cp = ord(ch)
    if 0xDC80 <= cp <= 0xDCFF:
        # surrogateescape: one undecodable byte -> one replacement escape, as Go does.
        return "\\ufffd"
    if 0xD800 <= cp <= 0xDFFF:
        # A lone surrogate is 3 invalid bytes in Go's eyes (ED xx xx), each replaced.
        return "\\ufffd" * 3
    return "\\u" + _HEX[cp >> 12] + _HEX[(cp >> 8) & 15] + _HEX[(cp >> 4) & 15] + _HEX[cp & 15]


def _escape(s: str) -> str:
    return _NEEDS_ESCAPE.sub(_escape_char, s)


def _raw_bytes(s: str) -> bytes:
    """The bytes Go would have held for ``s`` (undecodable bytes restored via surrogateescape)."""
    return s.encode("utf-8", "surrogateescape")


def _sorted_items(ctx: Mapping[str, str]) -> list[tuple[str, str]]:
    # Go sorts map keys as byte strings; code-point order differs only for surrogates.
    return sorted(ctx.items(), key=lambda kv: _raw_bytes(kv[0]))


def encode_context(ctx: Mapping[str, str] | None) -> bytes:
    """Encode ``ctx`` as MinIO >= 2021: sorted keys, Go encoding/json escaping, ``{}`` if empty."""
    if not ctx:
        return b"{}"
    body = ",".join(f'"{_escape(k)}":"{_escape(v)}"' for k, v in _sorted_items(ctx))
    return ("{" + body + "}").encode("utf-8")


def encode_context_legacy(ctx: Mapping[str, str] | None) -> bytes:
    """Encode ``ctx`` as MinIO 2019 did: sorted keys, no escaping at all (may be invalid JSON)."""
    if not ctx:
        return b"{}"
    parts = [b'"' + _raw_bytes(k) + b'":"' + _raw_bytes(v) + b'"' for k, v in _sorted_items(ctx)]
    return b"{" + b",".join(parts) + b"}"


def context_encodings(ctx: Mapping[str, str] | None) -> list[bytes]:
    """Candidate encodings to try when decrypting: current first, legacy only if it differs."""
    current = encode_context(ctx)
    legacy = encode_context_legacy(ctx)
    return [current] if legacy == current else [current, legacy]
