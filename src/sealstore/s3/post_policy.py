"""The POST policy of a browser upload: parse the signed document, then hold a form to it.

The policy is base64-encoded JSON ``{"expiration": "<ISO 8601 UTC>", "conditions": [...]}``
(AWS "Creating a POST policy").  A condition is an exact match (``{"acl": "private"}`` or
``["eq", "$acl", "private"]``), a prefix (``["starts-with", "$key", "user/"]``; an empty prefix
allows any value; a Content-Type value that is a comma-separated list must have every item
start with the prefix), or ``["content-length-range", min, max]`` on the file's size.

S3's rules, all kept here: element names (``expiration``, ``conditions``) are case-sensitive,
field names and operators are not; a condition on a field the form lacks fails; every form
field must be named by at least one condition, except ``x-amz-signature``, ``file``,
``policy`` and ``x-ignore-*`` (and the bucket counts as a field: S3 requires a bucket
condition).  A malformed document is ``InvalidPolicyDocument`` (400); an expired policy, a
failed condition or an uncovered field is ``AccessDenied`` (403) with S3's "Invalid according
to Policy: ..." wording; sizes outside the range are ``EntityTooSmall``/``EntityTooLarge``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sealstore.s3.errors import S3Error

__all__ = ["EXEMPT_FIELDS", "Condition", "PostPolicy", "parse_policy"]

# Form fields that need no condition (AWS: the signature, the file and the policy itself).
EXEMPT_FIELDS = frozenset({"x-amz-signature", "file", "policy"})
IGNORED_PREFIX = "x-ignore-"
_EXPIRATION = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")
_OPERATORS = ("eq", "starts-with")
# Upper bound of content-length-range values: S3's largest single upload (5 TiB).
_MAX_RANGE = 5 * 1024**4


def _invalid(detail: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {detail}")


def _denied(detail: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {detail}")


@dataclass(frozen=True)
class Condition:
    """One ``eq``/``starts-with`` condition; ``field`` is lower-case without ``$``,
    ``text`` the condition as S3 quotes it in a failure message."""

    op: str
    field: str
    value: str
    text: str

    def holds(self, fields: Mapping[str, str]) -> bool:
        """Whether the form (lower-case names -> values) satisfies this condition."""
        actual = fields.get(self.field)
        if actual is None:
            return False
        if self.op == "eq":
            return actual == self.value
        if self.field == "content-type" and "," in actual:
            return all(item.strip().startswith(self.value) for item in actual.split(","))
        return actual.startswith(self.value)


@dataclass(frozen=True)
class PostPolicy:
    """A parsed policy: when it expires, its field conditions and the allowed file sizes."""

    expiration: datetime
    conditions: tuple[Condition, ...]
    min_size: int = 0
    max_size: int | None = None

    def check(self, fields: Mapping[str, str], now: datetime) -> None:
        """Expiry, then every condition, then field coverage; raises AccessDenied.

        ``fields`` maps lower-case form field names to values; it must include ``bucket``
        (the bucket of the URL) and ``key`` (after ``${filename}`` substitution).
        """
        if now >= self.expiration:
            raise _denied("Policy expired.")
        for cond in self.conditions:
            if not cond.holds(fields):
                raise _denied(f"Policy Condition failed: {cond.text}")
        covered = {c.field for c in self.conditions}
        extra = [
            name
            for name in fields
            if name not in covered
            and name not in EXEMPT_FIELDS
            and not name.startswith(IGNORED_PREFIX)
        ]
        if extra:
            raise _denied(f"Extra input fields: {', '.join(extra)}")

    def check_size(self, size: int, final: bool) -> None:
        """EntityTooLarge once ``size`` passes the maximum; at the end (``final``) also
        EntityTooSmall below the minimum.  Called while the file streams."""
        if self.max_size is not None and size > self.max_size:
            raise S3Error(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                extra={"MaxSizeAllowed": str(self.max_size)},
            )
        if final and size < self.min_size:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                extra={"ProposedSize": str(size), "MinSizeAllowed": str(self.min_size)},
            )


def _decode(policy_b64: str) -> object:
    try:
        raw = base64.b64decode(policy_b64.strip(), validate=True)
        return json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError included
        raise _invalid("Invalid JSON.") from None


def _parse_expiration(value: object) -> datetime:
    if not isinstance(value, str):
        raise _invalid("Invalid 'expiration' value: must be a string.")
    match = _EXPIRATION.fullmatch(value)
    if match is None:
        raise _invalid(f"Invalid 'expiration' value: '{value[:64]}'")
    year, month, day, hour, minute, second, frac = match.groups()
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((frac or "0").ljust(6, "0")[:6]),
            tzinfo=UTC,
        )
    except ValueError:
        raise _invalid(f"Invalid 'expiration' value: '{value[:64]}'") from None


def _field_name(raw: object, cond: list[object]) -> str:
    if not isinstance(raw, str) or not raw.startswith("$") or len(raw) < 2:
        raise _invalid(f"Invalid Condition: {_render(cond)} (the field must start with $).")
    return raw[1:].lower()


def _render(cond: object) -> str:
    return json.dumps(cond, ensure_ascii=False)[:256]


def _length(value: object, cond: list[object]) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_RANGE:
        raise _invalid(f"Invalid content-length-range: {_render(cond)}")
    return value


def _simple(item: dict[str, object]) -> list[Condition]:
    if not item:
        raise _invalid("Invalid Simple-Condition: a condition must name a field.")
    out = []
    for name, value in item.items():
        if not isinstance(value, str):
            raise _invalid(f"Invalid Simple-Condition: value of {name[:64]} must be a string.")
        out.append(Condition("eq", name.lower(), value, _render(["eq", f"${name}", value])))
    return out


def parse_policy(policy_b64: str) -> PostPolicy:
    """Decode and validate the ``policy`` form field; InvalidPolicyDocument if malformed."""
    doc = _decode(policy_b64)
    if not isinstance(doc, dict):
        raise _invalid("Invalid JSON.")
    if "expiration" not in doc:
        raise _invalid("Policy missing expiration.")
    expiration = _parse_expiration(doc["expiration"])
    conditions = doc.get("conditions")
    if conditions is None:
        raise _invalid("Policy missing conditions.")
    if not isinstance(conditions, list):
        raise _invalid("Policy conditions must be a list.")
    parsed: list[Condition] = []
    min_size, max_size = 0, None
    for item in conditions:
        if isinstance(item, dict):
            parsed.extend(_simple(item))
            continue
        if not isinstance(item, list) or not item or not isinstance(item[0], str):
            raise _invalid(f"Invalid Condition: {_render(item)}")
        op = item[0].lower()
        if op == "content-length-range":
            if len(item) != 3:
                raise _invalid(f"Invalid content-length-range: {_render(item)}")
            low, high = _length(item[1], item), _length(item[2], item)
            if low > high:
                raise _invalid(f"Invalid content-length-range: {_render(item)}")
            min_size = max(min_size, low)
            max_size = high if max_size is None else min(max_size, high)
            continue
        if op not in _OPERATORS:
            raise _invalid(f"Invalid Condition: unknown operation {_render(item[0])}.")
        if len(item) != 3 or not isinstance(item[2], str):
            raise _invalid(f"Invalid Condition: {_render(item)}")
        field = _field_name(item[1], item)
        parsed.append(Condition(op, field, item[2], _render([op, item[1], item[2]])))
    return PostPolicy(expiration, tuple(parsed), min_size, max_size)
