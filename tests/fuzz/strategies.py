"""Shared Hypothesis strategies and budgets for the fuzz suite.

The strategies mix well-formed shapes (what clients send) with mutations and raw noise, so the
fuzzer reaches the deep branches of each parser rather than failing on the first byte.
``budget`` scales a test's case count from the active profile (see conftest.py).
"""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("SEALSTORE_FUZZ_SCALE", "1"))


def budget(weight: float = 1.0) -> int:
    """``weight`` times the profile's max_examples (times SEALSTORE_FUZZ_SCALE), at least 1."""
    return max(1, int(settings.default.max_examples * weight * SCALE))


# Text the HTTP layer can deliver: latin-1 (aiohttp decodes header bytes as UTF-8 with
# surrogateescape, so any code point may show up) plus the characters parsers split on.
def _wire(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


SEPARATORS = st.sampled_from(list(",;=/ \t-_.:&%+*?#\"'\\\r\n\x00"))
# What aiohttp can hand a handler: any bytes, decoded as UTF-8 with surrogateescape, or any
# text without lone surrogates (which no byte sequence decodes to).
ANY_TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=80),
    st.binary(max_size=80).map(_wire),
)
HEADERISH = st.text(
    st.characters(blacklist_categories=("Cs",), max_codepoint=0x2FF) | SEPARATORS,
    max_size=80,
)
# ASCII digits plus Unicode ones that str.isdigit() accepts but int() may not (superscripts).
DIGITS_TEXT = st.text(st.sampled_from("0123456789\u00b2\u00b3\u00b9\u0663\u0966-+ ,x"), max_size=24)
HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
AMZ_DATE = st.one_of(
    st.just("20261202T000000Z"),
    st.datetimes().map(lambda d: d.strftime("%Y%m%dT%H%M%SZ")),
    HEADERISH,
)


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    """``base`` with a few characters inserted, deleted or replaced."""
    text = base
    for _ in range(draw(st.integers(0, 4))):
        if not text:
            text = draw(ANY_TEXT)
            continue
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(["ins", "del", "rep", "dup"]))
        piece = draw(st.text(max_size=3) | SEPARATORS)
        if op == "ins":
            text = text[:i] + piece + text[i:]
        elif op == "del":
            text = text[:i] + text[i + 1 :]
        elif op == "rep":
            text = text[:i] + piece + text[i + 1 :]
        else:
            text = text[:i] + text[i:] * 2
    return text


def around(base: str) -> st.SearchStrategy[str]:
    """``base`` itself, a mutation of it, or noise."""
    return st.one_of(st.just(base), mutated(base), HEADERISH)


def object_keys() -> st.SearchStrategy[str]:
    """Object keys: printable paths, path-escape shapes, control characters, long keys."""
    segment = st.text(
        st.characters() | st.sampled_from(list("/.%+ ")),
        min_size=0,
        max_size=12,
    )
    return st.one_of(
        st.lists(segment, min_size=1, max_size=6).map("/".join),
        st.sampled_from(["a//b", "a/b", "dir/", "dir", ".", "..", "a/./b", "a/../b", "/a", "x"]),
        st.text(min_size=1, max_size=8).map(lambda s: s * 150),
        ANY_TEXT,
    )


def client_error(exc: BaseException) -> bool:
    """True when the app would answer ``exc`` as a 4xx S3 error (its own typed errors)."""
    from sealstore.s3.errors import s3_error_for

    err = s3_error_for(exc)
    return err is not None and 400 <= err.status < 500


def typed(fn: object, *args: object, **kwargs: object) -> object:
    """Call ``fn``; a typed 4xx error becomes None, any other exception propagates."""
    try:
        return fn(*args, **kwargs)  # type: ignore[operator]
    except Exception as exc:
        if client_error(exc):
            return None
        raise
