"""Parse and validate a policy document (AWS IAM JSON), with the messages AWS gives.

Two kinds share one grammar: a *bucket policy* (``bucket`` given) must name a ``Principal``
(or ``NotPrincipal``), only ``s3:`` actions and only resources inside its bucket, and every
action must apply to one of the statement's resources; an *identity policy* (a user's, from
the users file) must not name a principal. Everything is checked when the document is stored
or loaded, so evaluation (:mod:`.evaluate`) never meets a malformed element.

Principals (bucket policies) are ``"*"`` or ``{"AWS": ...}`` holding ``"*"`` (everyone,
anonymous requests included), ``arn:aws:iam::<12-digit account>:user/<name>`` (a user of the
users file, by name; any account number: this server is one account),
``arn:aws:iam::<account>:root`` or a bare 12-digit account (the account: in a Deny it matches
every signed request; in an Allow it grants nothing beyond the users' own policies, as in AWS),
or an access key (a user's, or the root user's). An unknown user or key is refused
("Invalid principal in policy"), as AWS refuses principals it cannot resolve.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sealstore.s3.policy import actions
from sealstore.s3.policy.conditions import KNOWN_KEYS, ConditionTest, parse_condition
from sealstore.s3.policy.errors import PolicyError
from sealstore.s3.policy.patterns import variables_in, wildcard_match

MAX_BUCKET_POLICY = 20 * 1024  # AWS's limit for a bucket policy document
VERSIONS = ("2012-10-17", "2008-10-17")
S3_ARN = "arn:aws:s3:::"
_USER_ARN = re.compile(r"arn:aws:iam::(\d{12}|\*)?:user/(?:[^/]+/)*([\w+=,.@-]{1,64})")
_ACCOUNT = re.compile(r"(?:arn:aws:iam::)?(\d{12})(?::root)?")
_STATEMENT_FIELDS = frozenset(
    [
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    ]
)


@dataclass(frozen=True)
class PrincipalSpec:
    """Who a ``Principal`` element names (see the module docstring)."""

    everyone: bool = False
    users: frozenset[str] = frozenset()
    access_keys: frozenset[str] = frozenset()
    account: bool = False


@dataclass(frozen=True)
class Statement:
    """One validated statement; ``not_*`` flags mean the element was NotAction etc."""

    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    sid: str | None = None
    not_action: bool = False
    not_resource: bool = False
    principal: PrincipalSpec | None = None
    not_principal: bool = False
    conditions: tuple[ConditionTest, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A validated document; ``text`` is what was stored (GetBucketPolicy returns it)."""

    version: str
    statements: tuple[Statement, ...]
    text: str = field(default="", repr=False, compare=False)

    @property
    def variables(self) -> bool:
        """True when ``${...}`` policy variables are substituted (Version 2012-10-17)."""
        return self.version == "2012-10-17"


@dataclass(frozen=True)
class KnownPrincipals:
    """The names a bucket policy may use: users (by name) and access keys (root's too)."""

    user_names: Collection[str] = ()
    access_keys: Collection[str] = ()


def parse_policy(
    text: str | bytes,
    *,
    bucket: str | None = None,
    principals: KnownPrincipals | None = None,
) -> Policy:
    """Validate ``text`` as a bucket policy for ``bucket``, or as an identity policy when
    ``bucket`` is None. ``principals`` are the names a new bucket policy may use (None: do not
    check, for a stored document). Raises :class:`PolicyError` saying what is wrong."""
    if isinstance(text, bytes):
        if bucket is not None and len(text) > MAX_BUCKET_POLICY:
            raise PolicyError("Policy exceeds the maximum allowed document size.")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("Policies must be valid JSON (UTF-8 text)") from None
    if not text.lstrip().startswith("{"):
        raise PolicyError("Policies must be valid JSON and the first byte must be '{'")
    if "\0" in text:
        raise PolicyError("Policies must be valid JSON: NUL character in policy")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(
            f"This policy contains invalid Json: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    return parse_document(doc, text=text, bucket=bucket, principals=principals)


def parse_document(
    doc: Any,
    *,
    text: str = "",
    bucket: str | None = None,
    principals: KnownPrincipals | None = None,
) -> Policy:
    """Validate an already-decoded JSON document (the users file holds them inline)."""
    if not isinstance(doc, dict):
        raise PolicyError("Policies must be a JSON object")
    for name in doc:
        if name not in ("Version", "Id", "Statement"):
            raise PolicyError(f"Unknown field {name}")
    version = doc.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise PolicyError(f"The policy must contain a valid version string (got {version!r})")
    raw = doc.get("Statement")
    if raw is None or raw == []:
        raise PolicyError("Missing required field Statement")
    items = raw if isinstance(raw, list) else [raw]
    statements = []
    sids: set[str] = set()
    for item in items:
        stmt = _statement(item, version, bucket, principals)
        if stmt.sid is not None and bucket is not None:
            if stmt.sid in sids:
                raise PolicyError(f"Statement IDs (SID) must be unique: {stmt.sid}")
            sids.add(stmt.sid)
        statements.append(stmt)
    return Policy(version=version, statements=tuple(statements), text=text)


def _strings(value: Any, name: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise PolicyError(f"{name} must be a non-empty string or list of strings")
    return tuple(items)


def _pair(stmt: dict[str, Any], name: str, required: bool = True) -> tuple[Any, bool]:
    """The value of ``name`` or ``Not<name>`` (never both) and whether it was the Not form."""
    plain, negated = stmt.get(name), stmt.get(f"Not{name}")
    if plain is not None and negated is not None:
        raise PolicyError(f"Statement cannot have both {name} and Not{name}")
    if plain is None and negated is None:
        if required:
            raise PolicyError(f"Missing required field {name}")
        return None, False
    return (negated, True) if plain is None else (plain, False)


def _statement(
    raw: Any, version: str, bucket: str | None, known: KnownPrincipals | None
) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError("Each Statement must be a JSON object")
    for name in raw:
        if name not in _STATEMENT_FIELDS:
            raise PolicyError(f"Unknown field {name}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyError("Sid must be a string")
    effect = raw.get("Effect")
    if effect is None:
        raise PolicyError("Missing required field Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"Invalid effect: {effect}")
    raw_actions, not_action = _pair(raw, "Action")
    acts = tuple(_action(a, bucket is not None) for a in _strings(raw_actions, "Action"))
    raw_resources, not_resource = _pair(raw, "Resource")
    resources = _strings(raw_resources, "Resource")
    for res in resources:
        _check_resource(res, bucket, version)
    principal: PrincipalSpec | None = None
    raw_principal, not_principal = _pair(raw, "Principal", required=bucket is not None)
    if bucket is None and raw_principal is not None:
        raise PolicyError("Policy document should not specify a principal.")
    if raw_principal is not None:
        principal = _principal(raw_principal, known)
    conditions = parse_condition(raw["Condition"]) if "Condition" in raw else ()
    if bucket is not None and not not_action and not not_resource:
        _check_applies(acts, resources)
    return Statement(
        effect=effect,
        actions=acts,
        resources=resources,
        sid=sid,
        not_action=not_action,
        not_resource=not_resource,
        principal=principal,
        not_principal=not_principal,
        conditions=conditions,
    )


def _action(action: str, bucket_policy: bool) -> str:
    """Validate one Action entry; identity policies may name other services' actions."""
    if action == "*":
        return action
    service, sep, name = action.partition(":")
    if not sep or not name or not service:
        raise PolicyError(f"Policy has invalid action: {action}")
    if service.lower() != "s3":
        if bucket_policy:
            raise PolicyError(f"Policy has invalid action: {action}")
        return action
    if not actions.expand(action):
        raise PolicyError(f"Policy has invalid action: {action}")
    return action


def _check_resource(res: str, bucket: str | None, version: str) -> None:
    if version == "2012-10-17":
        for var in variables_in(res):
            if var not in ("*", "?", "$") and var.lower() not in KNOWN_KEYS:
                raise PolicyError(f"Policy has invalid resource: unknown variable ${{{var}}}")
    if res == "*":
        return
    if bucket is None:
        if not res.startswith("arn:"):
            raise PolicyError(f'Resource {res} must be in ARN format or "*"')
        return
    if not res.startswith(S3_ARN):
        raise PolicyError(f"Policy has invalid resource: {res}")
    segment = res[len(S3_ARN) :].split("/", 1)[0]
    if "$" in segment or not wildcard_match(segment, bucket):
        raise PolicyError(f"Policy has invalid resource: {res}")


def _resource_kinds(res: str) -> set[str]:
    """Which resource kinds a bucket-policy resource pattern can stand for."""
    if res == "*":
        return {"bucket", "object"}
    rest = res[len(S3_ARN) :]
    if "/" in rest:
        return {"object"}
    return {"bucket", "object"} if "*" in rest else {"bucket"}


def _check_applies(acts: tuple[str, ...], resources: tuple[str, ...]) -> None:
    kinds: set[str] = set()
    for res in resources:
        kinds |= _resource_kinds(res)
    for pattern in acts:
        if not any(actions.kind_of(a) in kinds for a in actions.expand(pattern)):
            raise PolicyError("Action does not apply to any resource(s) in statement")


def _principal(raw: Any, known: KnownPrincipals | None) -> PrincipalSpec:
    """``known`` None: a document stored earlier, re-read for evaluation; its names were
    checked when it was stored, and a user removed since then simply matches nobody."""
    if raw == "*":
        return PrincipalSpec(everyone=True)
    if not isinstance(raw, dict) or set(raw) != {"AWS"}:
        raise PolicyError("Invalid principal in policy")
    try:
        names = _strings(raw["AWS"], "Principal")
    except PolicyError:
        raise PolicyError("Invalid principal in policy") from None
    everyone, account = False, False
    users: set[str] = set()
    keys: set[str] = set()
    for name in names:
        user = _USER_ARN.fullmatch(name)
        if name == "*":
            everyone = True
        elif user is not None and (known is None or user.group(2) in known.user_names):
            users.add(user.group(2))
        elif _ACCOUNT.fullmatch(name) and (name.isdigit() or name.endswith(":root")):
            account = True
        elif known is None or name in known.access_keys:
            keys.add(name)
        else:
            raise PolicyError(f"Invalid principal in policy: {name}")
    return PrincipalSpec(everyone, frozenset(users), frozenset(keys), account)
