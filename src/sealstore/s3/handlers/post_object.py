"""PostObject: ``POST /bucket`` with a multipart/form-data body (browser-based uploads).

The form replaces the headers of a PUT: ``key`` (``${filename}`` becomes the file's name),
``Content-Type`` and the other stored headers, ``x-amz-meta-*``, the SSE fields, ``acl``,
``tagging``, ``success_action_status``/``success_action_redirect``, and the SigV4 POST fields
with the signed ``policy``.  The dispatcher skips header authentication for exactly this
operation (``routing.is_browser_post``); this handler authenticates the form instead:

read fields (``post_form``, bounded) -> ``key`` present -> signature (``auth.authenticate_form``)
-> policy expiry, conditions, coverage (``post_policy``) -> :func:`authorize_upload` -> the
fields turned into the header mapping a PUT carries, the ``tagging`` field's tags (published
in the same commit) -> ``ObjectService.put`` with the file part streaming in
(content-length-range checked as it streams) -> 204, 200, 201 (PostResponse XML) or a 303
redirect.

SSE reuses the PUT path exactly: the form's SSE fields become headers, parsed by
``sse_headers`` (:func:`form_sse` is the single seam).  ``acl`` is validated against S3's
canned ACLs but not stored: this server keeps no ACLs (every object is private to its
credentials), the same as a PUT's ``x-amz-acl``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from aiohttp import web
from multidict import CIMultiDict

from sealstore.objects import tagging as tag_rules
from sealstore.objects.choice import SSEChoice
from sealstore.objects.service import NewObject
from sealstore.s3 import sse_headers
from sealstore.s3.auth import authenticate_form
from sealstore.s3.body import IdleTimeoutStream
from sealstore.s3.context import USER_META_PREFIX, S3Request
from sealstore.s3.errors import S3Error
from sealstore.s3.form_data import FormError, FormReader, boundary_of
from sealstore.s3.handlers.object_request import (
    DEFAULT_CONTENT_TYPE,
    MAX_USER_METADATA,
    STORED_HEADERS,
)
from sealstore.s3.handlers.tagging import parse_tagging
from sealstore.s3.handlers.versions import version_headers
from sealstore.s3.policy.authorize import authorize_as
from sealstore.s3.post_form import FileBody, PostForm, form_checksums, read_fields
from sealstore.s3.post_policy import PostPolicy, parse_policy
from sealstore.s3.sigv4_post import is_signed_form, missing_field
from sealstore.s3.xml import MalformedXMLError, document, tag
from sealstore.storage.base import ObjectMeta

NOT_A_FORM = "Bucket POST must be of the enclosure-type multipart/form-data"
# S3's canned ACLs (x-amz-acl / the acl field); accepted, not stored (module docstring).
CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "aws-exec-read",
        "authenticated-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
        "log-delivery-write",
    }
)
_SSE_PREFIX = "x-amz-server-side-encryption"
_HEADER_FIELDS = {name.lower(): name for name in (*STORED_HEADERS, "Content-Type")}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_NOT_IN_HEADER = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


async def post_object(req: S3Request) -> web.StreamResponse:
    """POST /bucket: store the form's ``file`` as the form's ``key``."""
    bucket = req.bucket
    assert bucket is not None  # routing sends only bucket-level POSTs here
    try:
        boundary = boundary_of(req.header("Content-Type"))
    except FormError as exc:
        raise S3Error("MalformedPOSTRequest", f"{NOT_A_FORM}: {exc}") from None
    if boundary is None:
        raise S3Error("PreconditionFailed", NOT_A_FORM, extra={"Condition": NOT_A_FORM})
    stream = IdleTimeoutStream(req.http.content, req.ctx.settings.body_idle_timeout)
    reader = FormReader(stream, boundary)
    form = await read_fields(reader)
    key = _key(form)
    view = {**form.fields, "bucket": bucket, "key": key}
    policy: PostPolicy | None = None
    access_key: str | None = None
    if is_signed_form(form.fields):
        access_key = authenticate_form(form.fields, req.ctx.settings, req.ctx.users.current)
        policy = parse_policy(form.fields["policy"])
        policy.check(view, datetime.now(UTC))
    await authorize_upload(req, bucket, key, access_key, form.fields)

    headers = form_headers(form.fields)
    requested = form_sse(req, headers)
    attrs = _new_object(headers)
    _check_acl(form.fields.get("acl"))
    tagging = form.fields.get("tagging")
    if tagging is not None:
        attrs = replace(attrs, tagging=_form_tags(tagging))
    expected = form_checksums(form.fields)
    check = policy.check_size if policy is not None else None
    body = FileBody(reader.stream(), check, expected=expected)
    meta = await req.ctx.objects.put(bucket, key, body, attrs, sse=requested)
    resp = _respond(req, meta, form.fields)
    resp.headers.update(sse_headers.response_for(meta.internal, requested))
    resp.headers.update(version_headers(meta))
    resp.headers.update(body.checksums)
    return resp


def _key(form: PostForm) -> str:
    """The ``key`` field with ``${filename}`` replaced; InvalidArgument when absent."""
    key = form.fields.get("key")
    if key is None:
        raise missing_field("key")
    if "${filename}" in key:
        key = key.replace("${filename}", form.filename or "")
    if not key:
        raise missing_field("key")
    return key


async def authorize_upload(
    req: S3Request, bucket: str, key: str, access_key: str | None, form: Mapping[str, str]
) -> None:
    """The one authorisation decision of a browser upload: ``s3:PutObject`` for the form's
    signer (root, a user, or anonymous for an unsigned form), judged by the same identity
    and bucket policies as a PUT. The SSE condition keys come from the form's fields, since
    a form carries them there instead of in headers."""
    fields = {
        f"s3:{name}": form_value
        for name in _SSE_CONDITION_FIELDS
        if (form_value := form.get(name)) is not None
    }
    await authorize_as(req, access_key, "s3:PutObject", bucket, key, fields)


def form_headers(fields: Mapping[str, str]) -> CIMultiDict[str]:
    """The form fields a PUT would carry as headers: stored headers, Content-Type,
    ``x-amz-meta-*`` and the SSE fields.  Values must be valid header values (a form can
    send CR/LF, a header cannot) and metadata names valid header names."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in fields.items():
        if name in _HEADER_FIELDS:
            header = _HEADER_FIELDS[name]
        elif name.startswith((USER_META_PREFIX, _SSE_PREFIX)):
            header = name
            if not _TOKEN.fullmatch(name):
                raise S3Error(
                    "InvalidArgument",
                    "A metadata field name is not a valid HTTP header name.",
                    extra={"ArgumentName": name[:64]},
                )
        else:
            continue
        if _NOT_IN_HEADER.search(value):
            raise S3Error(
                "InvalidArgument",
                f"The {name[:64]} field contains a character not allowed in a header value.",
                extra={"ArgumentName": name[:64]},
            )
        out[header] = value
    return out


def form_sse(req: S3Request, headers: Mapping[str, str]) -> SSEChoice | None:
    """The encryption the form asks for, parsed exactly as a PUT's SSE headers are: SSE-S3,
    SSE-KMS (key id, context) and SSE-C (customer key fields, refused over plain HTTP as on
    a PUT unless the server allows it for tests)."""
    return sse_headers.requested_sse(headers, secure=sse_headers.ssec_allowed(req))


def _new_object(headers: Mapping[str, str]) -> NewObject:
    meta = {k: v for k, v in headers.items() if k.startswith(USER_META_PREFIX)}
    size = sum(len(k) - len(USER_META_PREFIX) + len(v) for k, v in meta.items())
    if size > MAX_USER_METADATA:
        raise S3Error("MetadataTooLarge")
    stored: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = headers.get(name)
        if value is not None:
            stored[name] = value
    content_type = headers.get("Content-Type") or DEFAULT_CONTENT_TYPE
    return NewObject(content_type=content_type, user_meta=meta, headers=stored)


def _check_acl(acl: str | None) -> None:
    if acl is not None and acl not in CANNED_ACLS:
        raise S3Error("InvalidArgument", extra={"ArgumentName": "acl", "ArgumentValue": acl[:64]})


def _form_tags(document_text: str) -> str:
    """The canonical tag text of the form's ``tagging`` field (a ``<Tagging>`` document, as
    for PutObjectTagging), checked with the same limits before any byte is stored; the tags
    are published with the object in the same commit."""
    try:
        tags = parse_tagging(document_text.encode("utf-8"))
    except MalformedXMLError as exc:
        raise S3Error("MalformedXML", str(exc)) from None
    return tag_rules.encode(tag_rules.validate(tags))


_SSE_CONDITION_FIELDS = (
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",
)


def _location(req: S3Request, bucket: str, key: str) -> str:
    host = req.http.host
    return f"{req.http.scheme}://{host}/{quote(bucket, safe='')}/{quote(key, safe='/')}"


def _redirect_url(fields: Mapping[str, str]) -> str | None:
    """``success_action_redirect`` (or the older ``redirect``) if it is an http(s) URL; S3
    ignores anything else and answers with the status instead."""
    target = fields.get("success_action_redirect") or fields.get("redirect")
    if not target or _NOT_IN_HEADER.search(target):
        return None
    parts = urlsplit(target)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return target


def _respond(req: S3Request, meta: ObjectMeta, fields: Mapping[str, str]) -> web.Response:
    """S3's answers: a 303 to the redirect URL (with bucket, key and ETag in its query), else
    ``success_action_status`` 200 (empty), 201 (PostResponse XML) or 204 (the default, also
    for any other value)."""
    etag = f'"{meta.etag}"'
    location = _location(req, meta.bucket, meta.key)
    redirect = _redirect_url(fields)
    status = fields.get("success_action_status", "")
    if redirect is not None:
        query = "&".join(
            f"{name}={quote(value, safe='')}"
            for name, value in (("bucket", meta.bucket), ("key", meta.key), ("etag", etag))
        )
        resp = req.make_response(303)
        resp.headers["Location"] = redirect + ("&" if "?" in redirect else "?") + query
    elif status == "201":
        body = document(
            "PostResponse",
            [
                tag("Location", location),
                tag("Bucket", meta.bucket),
                tag("Key", meta.key),
                tag("ETag", etag),
            ],
            namespace=False,
        )
        resp = req.xml_response(body, status=201)
        resp.headers["Location"] = location
    else:
        resp = req.make_response(200 if status == "200" else 204)
        resp.headers["Location"] = location
    resp.headers["ETag"] = etag
    return resp
