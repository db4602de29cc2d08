"""The ``Condition`` element: operators, the keys this server knows, and their evaluation.

Semantics follow IAM: a block holds only when every operator holds; an operator holds when
every key in it holds; a key holds when the request value matches any listed value (negated
operators: matches none). A key absent from the request makes positive operators false and
negated ones (``StringNotEquals``, ``StringNotLike``, ``NotIpAddress``, ``NumericNotEquals``)
true, which is what makes the classic "deny PUTs whose ``s3:x-amz-server-side-encryption`` is
not AES256" policy deny unencrypted PUTs. ``...IfExists`` makes an absent key true;
``ForAnyValue:`` / ``ForAllValues:`` compare every value of a multi-valued key (absent:
false / true); ``Null`` tests presence itself.

Keys are case-insensitive (stored lower-case). A key this server cannot supply is refused when
the policy is stored ("Policy has an invalid condition key") rather than silently never
matching, because in a Deny statement that would fail open.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sealstore.s3.policy.errors import PolicyError
from sealstore.s3.policy.patterns import plain, substitute, wildcard_match

# Every condition key the authoriser fills in (see ``authorize.condition_context``).
KNOWN_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:SecureTransport",
        "aws:SourceIp",
        "aws:username",
        "aws:PrincipalType",
        "aws:UserAgent",
        "aws:Referer",
        "s3:x-amz-server-side-encryption",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "s3:x-amz-server-side-encryption-customer-algorithm",
        "s3:x-amz-copy-source",
        "s3:x-amz-metadata-directive",
        "s3:prefix",
        "s3:delimiter",
        "s3:max-keys",
        "s3:VersionId",
        "s3:authType",
        "s3:signatureversion",
    )
)

_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "NumericNotEquals",
    "NotIpAddress",
}


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def test(value: str, expected: str) -> bool:
        a, b = _num(value), _num(expected)
        return a is not None and b is not None and compare(a, b)

    return test


def _ip(value: str, expected: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


# Base operator -> does one request value match one policy value (before negation)?
_BASE: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda v, e: v == plain(e),
    "StringNotEquals": lambda v, e: v == plain(e),
    "StringEqualsIgnoreCase": lambda v, e: v.lower() == plain(e).lower(),
    "StringNotEqualsIgnoreCase": lambda v, e: v.lower() == plain(e).lower(),
    "StringLike": lambda v, e: wildcard_match(e, v),
    "StringNotLike": lambda v, e: wildcard_match(e, v),
    "NumericEquals": _numeric(lambda a, b: a == b),
    "NumericNotEquals": _numeric(lambda a, b: a == b),
    "NumericLessThan": _numeric(lambda a, b: a < b),
    "NumericLessThanEquals": _numeric(lambda a, b: a <= b),
    "NumericGreaterThan": _numeric(lambda a, b: a > b),
    "NumericGreaterThanEquals": _numeric(lambda a, b: a >= b),
    "Bool": lambda v, e: v.lower() == e.lower(),
    "IpAddress": _ip,
    "NotIpAddress": _ip,
}


@dataclass(frozen=True)
class ConditionTest:
    """One operator applied to one key, e.g. ``StringEquals`` on ``s3:prefix``."""

    operator: str  # the base operator, without qualifier or IfExists
    key: str  # lower-case
    values: tuple[str, ...]
    qualifier: str | None = None  # "ForAnyValue" | "ForAllValues"
    if_exists: bool = False

    def holds(self, context: Mapping[str, Sequence[str]], variables: dict[str, str]) -> bool:
        """Evaluate against the request's condition values (keys lower-case)."""
        present = context.get(self.key)
        if self.operator == "Null":
            wants_absent = self.values[0].lower() == "true"
            return (not present) == wants_absent
        expected = [e for e in (substitute(v, variables) for v in self.values) if e is not None]
        negated = self.operator in _NEGATED
        if not present:
            if self.qualifier == "ForAllValues":
                return True
            if self.qualifier == "ForAnyValue":
                return False
            return negated or self.if_exists
        base = _BASE[self.operator]

        def one(value: str) -> bool:
            hit = any(base(value, e) for e in expected)
            return not hit if negated else hit

        if self.qualifier == "ForAllValues":
            return all(one(v) for v in present)
        if self.qualifier == "ForAnyValue" or not negated:
            return any(one(v) for v in present)
        return all(one(v) for v in present)


def holds(
    tests: Sequence[ConditionTest],
    context: Mapping[str, Sequence[str]],
    variables: dict[str, str],
) -> bool:
    """A whole ``Condition`` block: every test holds."""
    return all(t.holds(context, variables) for t in tests)


def _values(raw: object, operator: str, key: str) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, (int, float, str)):
            out.append(str(item))
        else:
            raise PolicyError(f"Invalid Condition value for {operator} on {key}: not a string")
    if not out:
        raise PolicyError(f"Invalid Condition value for {operator} on {key}: no value")
    return tuple(out)


def _check_values(operator: str, key: str, values: tuple[str, ...]) -> None:
    bad: str | None = None
    if operator in ("Bool", "Null"):
        bad = next((v for v in values if v.lower() not in ("true", "false")), None)
    elif operator.startswith("Numeric"):
        bad = next((v for v in values if _num(v) is None), None)
    elif operator.endswith("IpAddress"):
        for v in values:
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError:
                bad = v
                break
    if bad is not None:
        raise PolicyError(f"Invalid Condition value for {operator} on {key}: {bad!r}")
    if operator == "Null" and len(values) != 1:
        raise PolicyError(f"Invalid Condition value for Null on {key}: give one true or false")


def parse_condition(block: object) -> tuple[ConditionTest, ...]:
    """Validate a ``Condition`` object (``{operator: {key: value|[values]}}``)."""
    if not isinstance(block, dict):
        raise PolicyError("Condition must be an object of operators")
    tests: list[ConditionTest] = []
    for raw_op, keys in block.items():
        op, qualifier, if_exists = str(raw_op), None, False
        for q in ("ForAnyValue:", "ForAllValues:"):
            if op.startswith(q):
                qualifier, op = q[:-1], op[len(q) :]
        if op.endswith("IfExists") and op != "Null":
            if_exists, op = True, op[: -len("IfExists")]
        if (op not in _BASE and op != "Null") or (op == "Null" and (if_exists or qualifier)):
            raise PolicyError(f"Invalid Condition type : {raw_op}")
        if not isinstance(keys, dict) or not keys:
            raise PolicyError(f"Condition {raw_op} must map condition keys to values")
        for raw_key, raw_values in keys.items():
            key = str(raw_key).lower()
            if key not in KNOWN_KEYS:
                raise PolicyError(f"Policy has an invalid condition key: {raw_key}")
            values = _values(raw_values, op, str(raw_key))
            _check_values(op, str(raw_key), values)
            tests.append(ConditionTest(op, key, values, qualifier, if_exists))
    return tuple(tests)
