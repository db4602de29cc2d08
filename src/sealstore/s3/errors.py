"""S3 error type and catalogue.

Every failure a client can see leaves the server as one of these: a stable S3 ``Code`` that SDKs
switch on, the HTTP status AWS uses for that code, and a human message.  Keeping the catalogue in
one place means handlers can raise ``S3Error("NoSuchKey", resource=...)`` without repeating (and
drifting on) statuses and wording, and it lets tests check every code against AWS's table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from email.utils import formatdate
from xml.sax.saxutils import escape

from sealstore.crypto.dare import DareError
from sealstore.crypto.keys import KeyMismatchError
from sealstore.kms import base as kms_base
from sealstore.objects.errors import DeleteMarkerRequested, ObjectError
from sealstore.objects.metadata import SSEMetadataError
from sealstore.s3.xml import MalformedXMLError
from sealstore.storage import base as st

__all__ = [
    "CATALOGUE",
    "ERROR_TABLE",
    "S3Error",
    "kms_not_configured",
    "kms_unavailable",
    "s3_error_for",
]

# code -> (HTTP status, default message).  Statuses follow the AWS S3 error table; the few
# MinIO-specific codes follow MinIO (cmd/api-errors.go) so MinIO-aware clients behave the same.
CATALOGUE: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied."),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (
        400,
        "Error parsing the X-Amz-Credential parameter; the query parameters are malformed.",
    ),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    # AWS's code for a tag set over the per-object (10) or per-bucket (50) limit.
    "BadRequest": (400, "Bad Request."),
    "BucketAlreadyExists": (
        409,
        "The requested bucket name is not available. The bucket namespace is shared by all "
        "users of the system. Please select a different name and try again.",
    ),
    "BucketAlreadyOwnedByYou": (
        409,
        "Your previous request to create the named bucket succeeded and you already own it.",
    ),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty."),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (
        400,
        "Your proposed upload is smaller than the minimum allowed object size.",
    ),
    "ExpiredToken": (400, "The provided token has expired."),
    "IllegalLocationConstraintException": (
        400,
        "The specified location constraint is not valid for this server.",
    ),
    "IllegalVersioningConfigurationException": (
        400,
        "The versioning configuration specified in the request is invalid.",
    ),
    "IncompleteBody": (
        400,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    ),
    "IncorrectNumberOfFilesInPostRequest": (
        400,
        "POST requires exactly one file upload per request.",
    ),
    "InternalError": (500, "We encountered an internal error, please try again."),
    "InvalidAccessKeyId": (
        403,
        "The AWS access key ID you provided does not exist in our records.",
    ),
    "InvalidArgument": (400, "Invalid argument."),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidBucketState": (409, "The request is not valid with the current state of the bucket."),
    "InvalidChunkSizeError": (
        403,
        "Only the last chunk is allowed to have a size less than 8192 bytes.",
    ),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidEncryptionAlgorithmError": (
        400,
        "The encryption request you specified is not valid. The valid value is AES256.",
    ),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "InvalidObjectState": (403, "The operation is not valid for the current state of the object."),
    "InvalidPart": (
        400,
        "One or more of the specified parts could not be found. The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag.",
    ),
    "InvalidPartOrder": (
        400,
        "The list of parts was not in ascending order. The parts list must be specified in "
        "order by part number.",
    ),
    "InvalidPolicyDocument": (
        400,
        "The content of the form does not meet the conditions specified in the policy document.",
    ),
    "InvalidRange": (416, "The requested range is not satisfiable."),
    "InvalidRequest": (400, "Invalid Request."),
    "InvalidStorageClass": (400, "The storage class you specified is not valid."),
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "KeyTooLongError": (400, "Your key is too long."),
    "KMS.NotFoundException": (400, "The specified KMS key does not exist."),
    "MalformedPOSTRequest": (
        400,
        "The body of your POST request is not well-formed multipart/form-data.",
    ),
    "MalformedTrailerError": (
        400,
        "The request contained trailing data that was not well-formed or did not conform to "
        "our published schema.",
    ),
    "MalformedPolicy": (400, "Policy has invalid resource."),
    "MalformedXML": (
        400,
        "The XML you provided was not well-formed or did not validate against our published "
        "schema.",
    ),
    "MaxPostPreDataLengthExceededError": (
        400,
        "Your POST request fields preceding the upload file were too large.",
    ),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata size."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingRequestBodyError": (400, "Request body is empty."),
    "MissingSecurityHeader": (400, "Your request is missing a required header."),
    "NoSuchBucket": (404, "The specified bucket does not exist."),
    "NoSuchBucketPolicy": (404, "The bucket policy does not exist."),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (
        404,
        "The specified multipart upload does not exist. The upload ID may be invalid, or the "
        "upload may have been aborted or completed.",
    ),
    "ConditionalRequestConflict": (
        409,
        "The conditional request cannot succeed due to a conflicting operation against this "
        "resource.",
    ),
    "NoSuchTagSet": (404, "The TagSet does not exist."),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NotImplemented": (
        501,
        "A header you provided implies functionality that is not implemented.",
    ),
    "OperationAborted": (
        409,
        "A conflicting conditional operation is currently in progress against this resource. "
        "Try again.",
    ),
    "PreconditionFailed": (
        412,
        "At least one of the preconditions you specified did not hold.",
    ),
    "RequestHeaderSectionTooLarge": (
        400,
        "Your request header section exceeds the maximum allowed size.",
    ),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within the "
        "timeout period.",
    ),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the server's time is too large.",
    ),
    "ServerSideEncryptionConfigurationNotFoundError": (
        404,
        "The server side encryption configuration was not found.",
    ),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    "SlowDown": (503, "Please reduce your request rate."),
    "TooManyParts": (400, "You have attempted to upload more than 10000 parts."),
    "UnexpectedContent": (400, "This request does not support content."),
    "XAmzContentSHA256Mismatch": (
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
    # MinIO's code for stored ciphertext that fails authentication or size checks.  MinIO
    # answers it with 206 (an accident of its table); a corrupt object is a server-side fault,
    # so we answer 500 and keep MinIO's code so operators recognise it.
    "XMinioObjectTampered": (500, "The requested object was modified and may be compromised."),
    # MinIO's code (and status, 507 Insufficient Storage) for a full data drive.  Clients
    # should not retry blindly: space has to be freed first, and nothing was stored.
    "XMinioStorageFull": (
        507,
        "The server's storage is full (no space or quota left); nothing was stored. "
        "Free space or add capacity, then retry.",
    ),
}

# XML 1.0 forbids most control characters even when escaped; object keys may contain them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: str) -> str:
    """Escape text for an XML element, replacing characters XML 1.0 cannot carry at all."""
    return escape(_XML_INVALID.sub("\ufffd", value))


class S3Error(Exception):
    """An error that is answered to the client as an S3 XML error document.

    ``extra`` holds additional child elements AWS includes for some codes (for example
    ``StringToSign`` and ``CanonicalRequest`` for SignatureDoesNotMatch, ``ServerTime`` for
    RequestTimeTooSkewed), which SDKs print and which make signing bugs debuggable.
    ``headers`` are extra response headers such as ``Retry-After``.
    """

    code: str
    message: str
    status: int
    resource: str | None
    headers: dict[str, str]
    extra: dict[str, str]

    def __init__(
        self,
        code: str,
        message: str | None = None,
        status: int | None = None,
        *,
        resource: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        known = CATALOGUE.get(code)
        if known is None and (status is None or message is None):
            # A typo in a code would otherwise silently become a 500 with no message.
            raise ValueError(f"unknown S3 error code {code!r} needs an explicit status and message")
        default_status, default_message = known if known is not None else (500, "")
        self.code = code
        self.message = message if message is not None else default_message
        self.status = status if status is not None else default_status
        self.resource = resource
        self.headers = dict(headers) if headers else {}
        self.extra = dict(extra) if extra else {}
        super().__init__(f"{self.code}: {self.message}")

    def __repr__(self) -> str:
        return f"S3Error({self.code!r}, {self.message!r}, {self.status})"

    def to_xml(self, resource: str | None = None, request_id: str = "") -> bytes:
        """Render the standard S3 ``<Error>`` document.

        The resource given at raise time (e.g. a bucket name) wins over the request path the
        app passes in, matching what S3 reports for bucket-level errors.
        """
        res = self.resource if self.resource is not None else (resource or "")
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
            f"<Code>{_xml_text(self.code)}</Code>",
            f"<Message>{_xml_text(self.message)}</Message>",
        ]
        for name, value in self.extra.items():
            parts.append(f"<{name}>{_xml_text(value)}</{name}>")
        parts.append(f"<Resource>{_xml_text(res)}</Resource>")
        parts.append(f"<RequestId>{_xml_text(request_id)}</RequestId>")
        parts.append("</Error>")
        return "".join(parts).encode("utf-8")


def kms_unavailable(detail: str | None = None, *, retry_after: int = 5) -> S3Error:
    """The KMS could not be reached (network, sealed Vault, timeout): 503 so clients retry.

    ``detail`` must never contain secrets (tokens, secret-ids); callers pass the KMS error text.
    """
    message = "The KMS is unreachable; the request was not processed"
    if detail:
        message = f"{message}: {detail}"
    return S3Error(
        "ServiceUnavailable",
        message,
        headers={"Retry-After": str(retry_after)},
    )


def kms_not_configured() -> S3Error:
    """SSE was requested but no KMS is configured (MinIO answers 501 NotImplemented)."""
    return S3Error(
        "NotImplemented",
        "Server side encryption specified but KMS is not configured",
    )


# --------------------------------------------------------------------------- exception table


def _kms_login(exc: BaseException) -> S3Error:
    # Credentials refused: still 503 + Retry-After (the server keeps logging in, so a
    # re-deployed secret-id heals it), but say what is wrong instead of "unreachable".
    return S3Error(
        "ServiceUnavailable",
        f"{exc}; the request was not processed",
        headers={"Retry-After": "5"},
    )


def _unsealable(_exc: BaseException) -> S3Error:
    return S3Error(
        "AccessDenied", "The object's key could not be unsealed with the configured KMS key"
    )


def _object_name(exc: BaseException) -> S3Error:
    reason = exc.reason if isinstance(exc, st.InvalidObjectName) else str(exc)
    if "at most" in reason:
        return S3Error("KeyTooLongError")
    return S3Error("InvalidArgument", f"Object name is invalid: {reason}")


def _bucket_name(exc: BaseException) -> S3Error:
    reason = exc.reason if isinstance(exc, st.InvalidBucketName) else str(exc)
    return S3Error("InvalidBucketName", f"The specified bucket is not valid: {reason}")


def _object_error(exc: BaseException) -> S3Error:
    assert isinstance(exc, ObjectError)
    return S3Error(exc.code, exc.message)


def _marker_headers(marker: st.ObjectMeta, *, last_modified: bool) -> dict[str, str]:
    """The headers S3 sends with an error about a delete marker."""
    headers = {"x-amz-delete-marker": "true", "x-amz-version-id": marker.version_label}
    if last_modified:
        headers["Last-Modified"] = formatdate(marker.last_modified, usegmt=True)
    return headers


def _marker_current(exc: BaseException) -> S3Error:
    assert isinstance(exc, st.DeleteMarkerCurrent)
    return S3Error("NoSuchKey", headers=_marker_headers(exc.marker, last_modified=False))


def _marker_requested(exc: BaseException) -> S3Error:
    assert isinstance(exc, DeleteMarkerRequested)
    return S3Error("MethodNotAllowed", headers=_marker_headers(exc.marker, last_modified=True))


def _itself(exc: BaseException) -> S3Error:
    assert isinstance(exc, S3Error)
    return exc


def _code(code: str) -> Callable[[BaseException], S3Error]:
    return lambda _exc: S3Error(code)


# Exception class -> the S3 error a client sees. Looked up along the exception's MRO, so the
# most specific entry wins (KMSLoginError before KMSUnavailableError before KMSError). The
# StorageError base itself is absent on purpose: an unclassified storage failure is a 500.
ERROR_TABLE: dict[type[BaseException], Callable[[BaseException], S3Error]] = {
    S3Error: _itself,
    MalformedXMLError: lambda exc: S3Error("MalformedXML", str(exc)),
    ObjectError: _object_error,
    DeleteMarkerRequested: _marker_requested,
    kms_base.KMSLoginError: _kms_login,
    kms_base.KMSUnavailableError: lambda exc: kms_unavailable(str(exc) or None),
    kms_base.KMSAccessDeniedError: lambda exc: S3Error(
        "AccessDenied", f"The KMS denied access to the key: {exc}"
    ),
    kms_base.KMSKeyNotFoundError: lambda exc: S3Error("KMS.NotFoundException", str(exc) or None),
    kms_base.KMSDecryptError: _unsealable,
    KeyMismatchError: _unsealable,
    kms_base.KMSError: lambda exc: S3Error("InternalError", f"KMS error: {exc}"),
    DareError: _code("XMinioObjectTampered"),
    SSEMetadataError: _code("XMinioObjectTampered"),
    st.NoSuchBucket: _code("NoSuchBucket"),
    st.NoSuchKey: _code("NoSuchKey"),
    st.DeleteMarkerCurrent: _marker_current,
    st.NoSuchVersion: _code("NoSuchVersion"),
    st.BucketAlreadyOwnedByYou: _code("BucketAlreadyOwnedByYou"),
    st.BucketNotEmpty: _code("BucketNotEmpty"),
    st.NoSuchUpload: _code("NoSuchUpload"),
    st.InvalidPart: _code("InvalidPart"),
    st.InvalidPartOrder: _code("InvalidPartOrder"),
    st.EntityTooSmall: _code("EntityTooSmall"),
    st.StorageFull: _code("XMinioStorageFull"),
    # A metadata-only compare-and-swap lost to a concurrent write (admin tools re-read).
    st.ObjectChanged: _code("ConditionalRequestConflict"),
    # A data file shorter than the index says, found when the files are opened: no byte sent.
    st.DataCorrupted: lambda _exc: S3Error(
        "XMinioObjectTampered", "The object's stored data is shorter than its index says."
    ),
    # The storage message names the argument and its range ("part number must be ...").
    st.InvalidArgument: lambda exc: S3Error("InvalidArgument", str(exc) or None),
    st.InvalidBucketName: _bucket_name,
    st.InvalidObjectName: _object_name,
}


def s3_error_for(exc: BaseException) -> S3Error | None:
    """The S3 error for a known internal exception, or None (an unexpected failure: 500)."""
    for cls in type(exc).__mro__:
        entry = ERROR_TABLE.get(cls)
        if entry is not None:
            return entry(exc)
    return None
