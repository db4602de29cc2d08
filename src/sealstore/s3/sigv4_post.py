"""SigV4 for browser POST uploads: the form, not a header, carries the signature.

The string to sign is the ``policy`` field exactly as sent (base64 text); the key is the usual
SigV4 signing key of the ``x-amz-credential`` scope (:func:`.sigv4_canonical.derive_signing_key`,
the same derivation as every other request), and ``x-amz-signature`` is the hex HMAC-SHA256.
No clock check happens here: a POST's lifetime is the policy's ``expiration``, which
:mod:`.post_policy` enforces after the signature proved the policy authentic.

Errors are S3's: a missing field is ``InvalidArgument`` naming it, a SigV2 form (``signature``
with ``AWSAccessKeyId``) the same "not supported" InvalidRequest as a SigV2 header, a credential
or region problem ``AuthorizationQueryParametersError`` (the ``X-Amz-Credential`` family), an
unknown access key ``InvalidAccessKeyId`` and a wrong signature ``SignatureDoesNotMatch``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping

from .errors import S3Error
from .sigv4_canonical import ALGORITHM, SERVICE, TERMINATOR, derive_signing_key, signature

__all__ = ["AUTH_FIELDS", "is_signed_form", "missing_field", "verify_form"]

# The fields that make a form "signed"; any one of them present means all are required.
AUTH_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature", "policy")
_SIGV2_FIELDS = ("awsaccesskeyid", "signature")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_ECHO = 128


def missing_field(name: str) -> S3Error:
    """S3's answer to a POST form without the field ``name`` (or with it after the file)."""
    return S3Error(
        "InvalidArgument",
        f"Bucket POST must contain a field named '{name}'.  "
        "If it is specified, please check the order of the fields.",
        extra={"ArgumentName": name, "ArgumentValue": ""},
    )


def is_signed_form(fields: Mapping[str, str]) -> bool:
    """Whether the form claims authentication (else it is an anonymous upload).

    A SigV2 form is refused here, so it can never pass as anonymous.
    """
    if any(name in fields for name in _SIGV2_FIELDS) and "x-amz-signature" not in fields:
        raise S3Error(
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. "
            "Please use AWS4-HMAC-SHA256.",
        )
    return any(name in fields for name in AUTH_FIELDS)


def _credential(value: str, region: str) -> tuple[str, str]:
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
        )
    access_key, date, cred_region, service, terminal = parts
    if not re.fullmatch(r"\d{8}", date) or service != SERVICE or terminal != TERMINATOR:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "Error parsing the X-Amz-Credential parameter; the Credential scope must be "
            f'"YYYYMMDD/REGION/{SERVICE}/{TERMINATOR}".',
        )
    if cred_region != region:
        raise S3Error(
            "AuthorizationQueryParametersError",
            f"Error parsing the X-Amz-Credential parameter; the region '{cred_region[:64]}' "
            f"is wrong; expecting '{region}'",
            extra={"Region": region},
        )
    return access_key, date


def verify_form(fields: Mapping[str, str], lookup: Callable[[str], str | None], region: str) -> str:
    """Verify a signed form (lower-case field names -> values); return the access key."""
    for name in AUTH_FIELDS:
        if name not in fields:
            raise missing_field(name)
    if fields["x-amz-algorithm"] != ALGORITHM:
        raise S3Error(
            "InvalidArgument",
            f'x-amz-algorithm only supports "{ALGORITHM}"',
            extra={"ArgumentName": "x-amz-algorithm"},
        )
    access_key, date = _credential(fields["x-amz-credential"], region)
    amz_date = fields["x-amz-date"]
    if not _AMZ_DATE.fullmatch(amz_date):
        raise S3Error(
            "AuthorizationQueryParametersError",
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
        )
    if amz_date[:8] != date:
        raise S3Error(
            "AuthorizationQueryParametersError",
            f'Invalid credential date "{date}". '
            f'This date is not the same as X-Amz-Date: "{amz_date[:8]}".',
        )
    secret = lookup(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key[:_ECHO]})
    policy = fields["policy"]
    expected = signature(derive_signing_key(secret, date, region), policy)
    provided = fields["x-amz-signature"].strip().lower()
    if not hmac.compare_digest(expected.encode(), provided.encode("ascii", "replace")):
        raise S3Error(
            "SignatureDoesNotMatch",
            extra={
                "AWSAccessKeyId": access_key[:_ECHO],
                "StringToSign": policy[:4096],
                "SignatureProvided": fields["x-amz-signature"][:_ECHO],
            },
        )
    return access_key
