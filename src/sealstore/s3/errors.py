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
from sealstore.s3.error_catalogue import CATALOGUE
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
