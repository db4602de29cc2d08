"""The operation -> action table is complete and only names real S3 actions: every operation
the router can dispatch has a row (so no request reaches a handler unjudged), and an operation
without a row is denied to everyone but root (fail closed)."""

from __future__ import annotations

import pytest

from sealstore.s3.policy import actions
from sealstore.s3.policy.evaluate import ANONYMOUS, Decision, Principal, Request, decide
from sealstore.s3.routing import ROUTES

# Operations other features add concurrently; their rows must already be here.
UPCOMING = {
    "ListObjectVersions": "s3:ListBucketVersions",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "GetObjectTagging": "s3:GetObjectTagging",
    "PutObjectTagging": "s3:PutObjectTagging",
    "DeleteObjectTagging": "s3:DeleteObjectTagging",
    "GetBucketTagging": "s3:GetBucketTagging",
    "PutBucketTagging": "s3:PutBucketTagging",
    "GetObjectAttributes": "s3:GetObjectAttributes",
    "PostObject": "s3:PutObject",
}


@pytest.mark.parametrize("op", sorted(ROUTES))
def test_every_routed_operation_has_an_action(op: str) -> None:
    assert op in actions.OPERATIONS, f"{op} has no row in s3/policy/actions.OPERATIONS"


def test_table_names_only_known_actions() -> None:
    for op, spec in actions.OPERATIONS.items():
        for name in (spec.action, spec.versioned):
            if name is not None:
                assert name in actions.ACTIONS, (op, name)


@pytest.mark.parametrize(("op", "action"), sorted(UPCOMING.items()))
def test_upcoming_operations_have_their_aws_actions(op: str, action: str) -> None:
    assert actions.OPERATIONS[op].action == action


def test_versioned_requests_use_the_version_actions() -> None:
    assert actions.OPERATIONS["GetObject"].for_request("v1") == "s3:GetObjectVersion"
    assert actions.OPERATIONS["GetObject"].for_request(None) == "s3:GetObject"
    assert actions.OPERATIONS["DeleteObject"].for_request("v1") == "s3:DeleteObjectVersion"
    assert actions.OPERATIONS["PutObject"].for_request("v1") == "s3:PutObject"


def test_wildcards_expand_case_insensitively() -> None:
    got = set(actions.expand("s3:get*"))
    assert "s3:GetObject" in got and "s3:GetBucketPolicy" in got
    assert "s3:PutObject" not in got
    assert set(actions.expand("*")) == set(actions.ACTIONS)
    assert actions.expand("s3:GetObjec") == []
    assert actions.canonical("S3:getobject") == "s3:GetObject"


def test_an_unknown_action_allows_nobody_but_root() -> None:
    """What authorize does with an operation missing from the table, shown on decide: a
    policy allowing s3:* still cannot allow an action name that is not an S3 action."""
    from sealstore.s3.policy.document import parse_document

    everything = parse_document(
        {
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        }
    )
    user = Principal("user", "AKUSER", "user", (everything,))
    req = Request("NoSuchOperation", "arn:aws:s3:::b")
    assert decide(user, req) is Decision.IMPLICIT_DENY
    assert decide(ANONYMOUS, req) is Decision.IMPLICIT_DENY
    assert decide(Principal("root", "root", "root"), req) is Decision.ALLOW
