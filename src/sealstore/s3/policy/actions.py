"""Which ``s3:`` action each S3 operation needs, and which kind of resource each action takes.

:data:`OPERATIONS` is the authoriser's complete table: every operation name the router can
produce (``s3/routing.py``), plus the ones other features add (versions, versioning, tagging,
attributes, POST object), maps to the action S3 checks for it (AWS's "Actions, resources and
condition keys for Amazon S3"). An operation missing from the table is denied to everyone but
root (fail closed); ``tests/unit/test_policy_actions.py`` proves every routed operation has a
row. :data:`ACTIONS` lists the S3 actions policies may name, with their resource kind, which
``document`` uses to refuse unknown actions and actions that apply to none of a statement's
resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sealstore.s3.policy.patterns import wildcard_match

ResourceKind = Literal["service", "bucket", "object"]

_OBJECT = """
AbortMultipartUpload BypassGovernanceRetention DeleteObject DeleteObjectTagging
DeleteObjectVersion DeleteObjectVersionTagging GetObject GetObjectAcl GetObjectAttributes
GetObjectLegalHold GetObjectRetention GetObjectTagging GetObjectTorrent GetObjectVersion
GetObjectVersionAcl GetObjectVersionAttributes GetObjectVersionForReplication
GetObjectVersionTagging GetObjectVersionTorrent InitiateReplication ListMultipartUploadParts
ObjectOwnerOverrideToBucketOwner PutObject PutObjectAcl PutObjectLegalHold PutObjectRetention
PutObjectTagging PutObjectVersionAcl PutObjectVersionTagging ReplicateDelete ReplicateObject
ReplicateTags RestoreObject
"""
_BUCKET = """
CreateBucket DeleteBucket DeleteBucketOwnershipControls DeleteBucketPolicy DeleteBucketWebsite
GetAccelerateConfiguration GetAnalyticsConfiguration GetBucketAcl GetBucketCORS
GetBucketLocation GetBucketLogging GetBucketNotification GetBucketObjectLockConfiguration
GetBucketOwnershipControls GetBucketPolicy GetBucketPolicyStatus GetBucketPublicAccessBlock
GetBucketRequestPayment GetBucketTagging GetBucketVersioning GetBucketWebsite
GetEncryptionConfiguration GetIntelligentTieringConfiguration GetInventoryConfiguration
GetLifecycleConfiguration GetMetricsConfiguration GetReplicationConfiguration ListBucket
ListBucketMultipartUploads ListBucketVersions PutAccelerateConfiguration
PutAnalyticsConfiguration PutBucketAcl PutBucketCORS PutBucketLogging PutBucketNotification
PutBucketObjectLockConfiguration PutBucketOwnershipControls PutBucketPolicy
PutBucketPublicAccessBlock PutBucketRequestPayment PutBucketTagging PutBucketVersioning
PutBucketWebsite PutEncryptionConfiguration PutIntelligentTieringConfiguration
PutInventoryConfiguration PutLifecycleConfiguration PutMetricsConfiguration
PutReplicationConfiguration
"""
_SERVICE = """
CreateJob GetAccountPublicAccessBlock ListAccessPoints ListAllMyBuckets ListJobs
PutAccountPublicAccessBlock
"""


def _kinds() -> dict[str, ResourceKind]:
    out: dict[str, ResourceKind] = {}
    for text, kind in ((_OBJECT, "object"), (_BUCKET, "bucket"), (_SERVICE, "service")):
        for name in text.split():
            out[f"s3:{name}"] = kind
    return out


# "s3:Name" -> the kind of resource it applies to.
ACTIONS: dict[str, ResourceKind] = _kinds()
_LOWER = {name.lower(): name for name in ACTIONS}


@dataclass(frozen=True)
class OperationAction:
    """What one operation needs.

    ``action`` is checked on the request's own resource; ``versioned`` replaces it when the
    request names a ``versionId`` (GetObjectVersion ...). ``copy_source`` operations also need
    ``s3:GetObject`` (or ``s3:GetObjectVersion``) on the ``x-amz-copy-source`` object.
    ``per_key`` operations (DeleteObjects) are authorised key by key by their handler, which
    reports a denied key as an ``AccessDenied`` entry instead of failing the request.
    """

    action: str
    versioned: str | None = None
    copy_source: bool = False
    per_key: bool = False

    def for_request(self, version_id: str | None) -> str:
        """The action for a request with (or without) a ``versionId``."""
        return self.versioned if version_id and self.versioned else self.action


_A = OperationAction
OPERATIONS: dict[str, OperationAction] = {
    "ListBuckets": _A("s3:ListAllMyBuckets"),
    "CreateBucket": _A("s3:CreateBucket"),
    "HeadBucket": _A("s3:ListBucket"),
    "DeleteBucket": _A("s3:DeleteBucket"),
    "GetBucketLocation": _A("s3:GetBucketLocation"),
    "GetBucketVersioning": _A("s3:GetBucketVersioning"),
    "PutBucketVersioning": _A("s3:PutBucketVersioning"),
    "GetBucketAcl": _A("s3:GetBucketAcl"),
    "GetObjectAcl": _A("s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
    "ListObjectsV1": _A("s3:ListBucket"),
    "ListObjectsV2": _A("s3:ListBucket"),
    "ListObjectVersions": _A("s3:ListBucketVersions"),
    "PutBucketEncryption": _A("s3:PutEncryptionConfiguration"),
    "GetBucketEncryption": _A("s3:GetEncryptionConfiguration"),
    # AWS: DeleteBucketEncryption is authorised as s3:PutEncryptionConfiguration.
    "DeleteBucketEncryption": _A("s3:PutEncryptionConfiguration"),
    "PutBucketPolicy": _A("s3:PutBucketPolicy"),
    "GetBucketPolicy": _A("s3:GetBucketPolicy"),
    "DeleteBucketPolicy": _A("s3:DeleteBucketPolicy"),
    "GetBucketPolicyStatus": _A("s3:GetBucketPolicyStatus"),
    "GetBucketTagging": _A("s3:GetBucketTagging"),
    "PutBucketTagging": _A("s3:PutBucketTagging"),
    # AWS: DeleteBucketTagging is authorised as s3:PutBucketTagging.
    "DeleteBucketTagging": _A("s3:PutBucketTagging"),
    "DeleteObjects": _A("s3:DeleteObject", "s3:DeleteObjectVersion", per_key=True),
    "PutObject": _A("s3:PutObject"),
    "PostObject": _A("s3:PutObject"),
    "CopyObject": _A("s3:PutObject", copy_source=True),
    "GetObject": _A("s3:GetObject", "s3:GetObjectVersion"),
    "HeadObject": _A("s3:GetObject", "s3:GetObjectVersion"),
    "GetObjectAttributes": _A("s3:GetObjectAttributes", "s3:GetObjectVersionAttributes"),
    "DeleteObject": _A("s3:DeleteObject", "s3:DeleteObjectVersion"),
    "GetObjectTagging": _A("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    "PutObjectTagging": _A("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
    "DeleteObjectTagging": _A("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"),
    "CreateMultipartUpload": _A("s3:PutObject"),
    "UploadPart": _A("s3:PutObject"),
    "UploadPartCopy": _A("s3:PutObject", copy_source=True),
    "CompleteMultipartUpload": _A("s3:PutObject"),
    "AbortMultipartUpload": _A("s3:AbortMultipartUpload"),
    "ListParts": _A("s3:ListMultipartUploadParts"),
    "ListMultipartUploads": _A("s3:ListBucketMultipartUploads"),
}


def canonical(action: str) -> str | None:
    """AWS's spelling of a known ``s3:`` action (names are case-insensitive), else None."""
    return _LOWER.get(action.lower())


def expand(pattern: str) -> list[str]:
    """Every known S3 action a (possibly wildcarded) action pattern matches."""
    if pattern == "*":
        return list(ACTIONS)
    return [name for name in ACTIONS if wildcard_match(pattern, name, ignore_case=True)]


def kind_of(action: str) -> ResourceKind:
    """The resource kind of a known action (KeyError for unknown ones)."""
    return ACTIONS[action]
