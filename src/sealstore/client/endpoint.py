"""S3 plumbing of the SSE client: the boto3 client, the signed KMS status call, error lines.

Kept apart from the round-trip logic so that the one-line error vocabulary (unreachable
endpoint, bad credentials, TLS failure) is defined once and reused by every subcommand.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from sealstore.client.config import Credentials

KMS_STATUS_PATH = "/minio/kms/v1/key/status"
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "the access key is unknown to the server",
    "SignatureDoesNotMatch": "the secret key is wrong",
    "InvalidToken": "the session token is invalid",
    "ExpiredToken": "the session token has expired",
}


class FatalClientError(Exception):
    """An error that makes every further check pointless (endpoint down, bad credentials)."""


def _boto() -> tuple[Any, Any, Any]:
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError:  # pragma: no cover - depends on the install
        raise FatalClientError(
            "boto3 is not installed: install sealstore with the 'client' extra "
            "(pip install 'sealstore[client]')"
        ) from None
    return boto3, botocore.config, botocore.exceptions


def make_s3(endpoint: str, region: str, creds: Credentials, ca_bundle: str | None) -> Any:
    """A path-style SigV4 boto3 client with short timeouts and few retries (fail fast)."""
    boto3, bconfig, _ = _boto()
    cfg = bconfig.Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=5,
        read_timeout=120,
        region_name=region,
    )
    session = boto3.session.Session(
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.session_token,
        region_name=region,
    )
    return session.client("s3", endpoint_url=endpoint, config=cfg, verify=ca_bundle or True)


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def describe_error(exc: BaseException, endpoint: str) -> tuple[str, bool]:
    """Turn an exception into (one clear line, is_fatal)."""
    _, _, bexc = _boto()
    code = error_code(exc)
    if code in _CREDENTIAL_CODES:
        return f"bad credentials: {code} ({_CREDENTIAL_CODES[code]})", True
    if code:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")  # type: ignore[attr-defined]
        message = exc.response.get("Error", {}).get("Message", "")  # type: ignore[attr-defined]
        return f"{code} (HTTP {status}){': ' + message if message else ''}", False
    if isinstance(exc, bexc.SSLError):
        return f"TLS error talking to {endpoint}: {_root_cause(exc)}", True
    if isinstance(exc, bexc.EndpointConnectionError | bexc.ConnectionClosedError):
        return f"endpoint unreachable: {endpoint} ({_root_cause(exc)})", True
    if isinstance(exc, bexc.ConnectTimeoutError | bexc.ReadTimeoutError):
        return f"timeout talking to {endpoint}: {exc}", True
    if isinstance(exc, bexc.NoCredentialsError):
        return "no credentials", True
    if isinstance(exc, bexc.BotoCoreError):
        return f"{type(exc).__name__}: {exc}", False
    if isinstance(exc, FatalClientError):
        return str(exc), True
    return f"{type(exc).__name__}: {exc}", False


def _root_cause(exc: BaseException) -> str:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        if nxt is None or nxt is seen:
            break
        seen = nxt
    text = str(seen) or type(seen).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed (wrong or missing --ca-bundle?)"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    return text.split("\n")[0][:200]


@dataclass
class KMSStatus:
    """The server's KMS self-test, normalised from MinIO's or sealstore's JSON shape."""

    available: bool
    ok: bool
    key_id: str | None = None
    kind: str | None = None
    latency_ms: float | None = None
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _normalise_status(doc: dict[str, Any]) -> KMSStatus:
    key_id = doc.get("key-id") or doc.get("key_id") or doc.get("keyId")
    errors = [
        str(doc[k]) for k in ("encryption-error", "decryption-error", "update-error") if doc.get(k)
    ]
    if doc.get("error"):
        errors.append(str(doc["error"]))
    ok = bool(doc["ok"]) if "ok" in doc else not errors
    latency = doc.get("latency_ms", doc.get("latency-ms"))
    return KMSStatus(
        available=True,
        ok=ok and not errors,
        key_id=str(key_id) if key_id else None,
        kind=str(doc["kind"]) if doc.get("kind") else None,
        latency_ms=float(latency) if isinstance(latency, int | float) else None,
        error="; ".join(errors) or (None if ok else "self-test failed"),
        raw=doc,
    )


def fetch_kms_status(
    endpoint: str, region: str, creds: Credentials, ca_bundle: str | None, timeout: float = 15.0
) -> KMSStatus:
    """GET the SigV4-signed KMS self-test; 404/501 means the endpoint offers none."""
    _boto()
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    url = endpoint.rstrip("/") + KMS_STATUS_PATH
    request = AWSRequest(method="GET", url=url, data=b"")
    bcreds = BotoCredentials(creds.access_key, creds.secret_key, creds.session_token)
    S3SigV4Auth(bcreds, "s3", region).add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(url, method="GET", headers=dict(prepared.headers.items()))  # noqa: S310
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:  # noqa: S310
            body = resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        body = exc.read(1 << 16)
        code = _xml_code(body)
        if code in _CREDENTIAL_CODES:
            raise FatalClientError(f"bad credentials: {code} ({_CREDENTIAL_CODES[code]})") from None
        if exc.code in (404, 405, 501):
            return KMSStatus(
                available=False, ok=False, error=f"HTTP {exc.code} {code or ''}".strip()
            )
        try:
            return _normalise_status(json.loads(body))
        except (ValueError, AttributeError):
            return KMSStatus(
                available=True, ok=False, error=f"HTTP {exc.code} {code or exc.reason}".strip()
            )
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError):
            raise FatalClientError(f"TLS error talking to {endpoint}: {reason}") from None
        if isinstance(reason, ConnectionRefusedError):
            raise FatalClientError(
                f"endpoint unreachable: {endpoint} (connection refused)"
            ) from None
        raise FatalClientError(f"endpoint unreachable: {endpoint} ({reason})") from None
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise FatalClientError(f"endpoint unreachable: {endpoint} ({exc})") from None
    try:
        doc = json.loads(body)
    except ValueError:
        return KMSStatus(available=True, ok=False, error="KMS status is not JSON")
    if not isinstance(doc, dict):
        return KMSStatus(available=True, ok=False, error="KMS status is not a JSON object")
    return _normalise_status(doc)


def _xml_code(body: bytes) -> str | None:
    text = body.decode("utf-8", "replace")
    start = text.find("<Code>")
    end = text.find("</Code>", start)
    if start < 0 or end < 0:
        return None
    return text[start + len("<Code>") : end].strip() or None
