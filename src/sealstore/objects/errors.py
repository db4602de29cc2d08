"""Failures of the object service that are neither storage nor KMS errors.

Like `storage.base.StorageError`, each class carries as ``code`` the S3 error code it stands
for and a human ``message`` (None = the code's standard wording), so the HTTP layer maps all of
them with one table entry (`s3/errors.py`) and this package never imports the HTTP layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sealstore.storage.base import ObjectMeta


class ObjectError(Exception):
    """Base of the service's own failures; ``code`` is the S3 error code to answer with."""

    code = "InternalError"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message


class BadDigest(ObjectError):
    """The body's MD5 differs from the request's Content-MD5: nothing was stored."""

    code = "BadDigest"


class InvalidRequest(ObjectError):
    """A request that is well-formed but not allowed (e.g. copying an object onto itself)."""

    code = "InvalidRequest"


class CustomerKeyMismatch(ObjectError):
    """The SSE-C key a read presented does not unseal the object's key (AWS: 403)."""

    code = "AccessDenied"

    def __init__(self) -> None:
        super().__init__(
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide the correct secret key."
        )


class NotSupported(ObjectError):
    """The request or the object needs something this server does not offer (SSE-C, SSE-KMS
    for multipart uploads, an encrypted object without a KMS)."""

    code = "NotImplemented"


class KMSNotConfigured(NotSupported):
    """Encryption is wanted but no KMS is configured (MinIO answers 501 NotImplemented)."""

    def __init__(self) -> None:
        super().__init__("Server side encryption specified but KMS is not configured")


class EntityTooLarge(ObjectError):
    """A part is bigger than S3 allows."""

    code = "EntityTooLarge"


class InvalidPartETag(ObjectError):
    """A CompleteMultipartUpload part ETag cannot belong to any part (not 32 hex chars)."""

    code = "InvalidPart"


class BucketConfigUnreadable(ObjectError):
    """The stored bucket encryption rule no longer parses (a damaged index): refuse rather
    than store plaintext that the operator asked to have encrypted."""

    def __init__(self) -> None:
        super().__init__("The stored bucket encryption configuration is unreadable")


class InternalError(ObjectError):
    """An invariant broke (e.g. a copy source ended early); never the client's fault."""


class ObjectIntegrityError(ObjectError):
    """The index disagrees with the object's authenticated layout (size, ETag, part list) or
    with the DARE size arithmetic: someone changed the stored object. Answered before the
    first byte with MinIO's tampering code (500); the reason goes to the log line."""

    code = "XMinioObjectTampered"

    def __init__(self, bucket: str, key: str, reason: str) -> None:
        super().__init__(
            "The object's stored layout does not match its authenticated layout "
            "(size or part list changed at rest); nothing was sent."
        )
        self.reason = reason
        self.args = (f"object {bucket}/{key}: integrity check failed: {reason}",)


class DeleteMarkerRequested(ObjectError):
    """A GET or HEAD named a delete marker's version id: S3 answers 405 MethodNotAllowed with
    the marker's headers (``marker`` carries them to the HTTP layer's error table)."""

    code = "MethodNotAllowed"

    def __init__(self, marker: ObjectMeta) -> None:
        super().__init__("The specified method is not allowed against this resource.")
        self.marker = marker
