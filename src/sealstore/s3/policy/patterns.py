"""IAM wildcards and policy variables.

``*`` matches any run of characters (also ``/``), ``?`` exactly one; actions match
case-insensitively, resources and ``StringLike`` values case-sensitively. Patterns are compiled
once and cached: a policy's patterns are few and reused on every request.

Policy variables (documents of Version ``2012-10-17`` only): ``${aws:username}`` and the other
request values :func:`substitute` is given, plus the escapes ``${*}``, ``${?}`` and ``${$}`` for
a literal ``*``, ``?`` and ``$``. A substituted value is literal text: a user name can never
act as a wildcard.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Stand-ins for literal "*" and "?" inside a substituted pattern (NUL never occurs in policies:
# JSON text from the wire is checked for control characters by ``document``).
_STAR, _QMARK = "\0*", "\0?"
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@lru_cache(maxsize=4096)
def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\0" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """True when ``value`` matches ``pattern`` as a whole."""
    if pattern == "*":
        return True
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == value.lower() if ignore_case else pattern == value
    return _compile(pattern, ignore_case).fullmatch(value) is not None


def literal(text: str) -> str:
    """``text`` as a pattern that matches only itself."""
    return text.replace("*", _STAR).replace("?", _QMARK)


def plain(pattern: str) -> str:
    """A substituted pattern back as text, for exact (non-wildcard) comparisons."""
    return pattern.replace(_STAR, "*").replace(_QMARK, "?")


def variables_in(text: str) -> list[str]:
    """The names of every ``${...}`` variable in ``text`` (escapes included)."""
    return _VARIABLE.findall(text)


def substitute(text: str, variables: dict[str, str]) -> str | None:
    """``text`` with ``${name}`` replaced from ``variables`` (keys lower-case); None when it
    names a variable the request does not have, so the element cannot match (as in IAM)."""
    if "${" not in text:
        return text
    missing = False

    def repl(m: re.Match[str]) -> str:
        nonlocal missing
        name = m.group(1)
        if name in ("*", "?"):
            return literal(name)
        if name == "$":
            return "$"
        value = variables.get(name.lower())
        if value is None:
            missing = True
            return ""
        return literal(value)

    out = _VARIABLE.sub(repl, text)
    return None if missing else out
