"""s3/routing.py: path-style splitting, the operation every method x target x subresource
combination selects (copy-source switching, MethodNotAllowed, NotImplemented for unknown or
combined subresources), and a route table whose every entry is a handler coroutine."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import sys

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDictProxy
from yarl import URL

from sealstore.s3.errors import S3Error
from sealstore.s3.routing import (
    KNOWN_SUBRESOURCES,
    ROUTES,
    handler_for,
    select_operation,
    split_path,
)

METHODS = ("GET", "PUT", "HEAD", "DELETE", "POST")


def query(qs: str) -> MultiDictProxy[str]:
    """The query multidict aiohttp hands the dispatcher for ``?qs``."""
    return URL("/b/k?" + qs).query if qs else URL("/b/k").query


def copy_headers() -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({"X-Amz-Copy-Source": "/src/obj"}))


def s3_error(fn: object, *args: object) -> S3Error:
    with pytest.raises(S3Error) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


# ----------------------------------------------------------------------------- split_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", (None, None)),
        ("/?acl", (None, None)),
        ("/bucket", ("bucket", None)),
        ("/bucket/", ("bucket", None)),  # trailing slash: still the bucket
        ("/bucket?location", ("bucket", None)),
        ("/bucket/key", ("bucket", "key")),
        ("/bucket/a/b/c", ("bucket", "a/b/c")),
        ("/bucket/dir/", ("bucket", "dir/")),  # a key keeps its trailing slash
        ("/bucket//x", ("bucket", "/x")),  # empty first segment belongs to the key
        ("/bucket/key?uploadId=1&partNumber=2", ("bucket", "key")),
        ("/bucket/a%2Fb", ("bucket", "a/b")),  # encoded slash inside the key
        ("/bucket/a%2fb%20c", ("bucket", "a/b c")),
        ("/bu%2Fck/key", ("bu/ck", "key")),  # encoded slash in the bucket cannot shift the split
        ("/bucket/%E2%82%AC", ("bucket", "\u20ac")),
        ("/bucket/%ZZ%", ("bucket", "%ZZ%")),  # not a percent escape: kept literally
        ("/bucket/%FF", ("bucket", "\udcff")),  # invalid UTF-8 key: surrogate-escaped, no error
    ],
)
def test_split_path(raw: str, expected: tuple[str | None, str | None]) -> None:
    assert split_path(raw) == expected


def test_path_without_leading_slash_is_invalid_uri() -> None:
    err = s3_error(split_path, "bucket/key")
    assert (err.code, err.status) == ("InvalidURI", 400)
    assert s3_error(split_path, "").code == "InvalidURI"


def test_invalid_utf8_in_the_bucket_is_refused() -> None:
    # Bucket names are decoded strictly (unlike keys): bytes that are not UTF-8 never become
    # a bucket name.
    with pytest.raises(UnicodeDecodeError):
        split_path("/%FF/key")


# ----------------------------------------------------------------------------- operations

# (method, target, sorted subresources) -> operation. Every combination of a method, a target
# and one known subresource (or none) that is NOT listed here must be refused.
EXPECTED: dict[tuple[str, str, tuple[str, ...]], str] = {
    ("GET", "service", ()): "ListBuckets",
    ("HEAD", "service", ()): "ListBuckets",
    ("GET", "bucket", ()): "ListObjectsV1",
    ("GET", "bucket", ("list-type",)): "ListObjectsV2",
    ("GET", "bucket", ("location",)): "GetBucketLocation",
    ("GET", "bucket", ("encryption",)): "GetBucketEncryption",
    ("GET", "bucket", ("uploads",)): "ListMultipartUploads",
    ("GET", "bucket", ("versioning",)): "GetBucketVersioning",
    ("GET", "bucket", ("acl",)): "GetBucketAcl",
    ("GET", "bucket", ("tagging",)): "GetBucketTagging",
    ("PUT", "bucket", ("tagging",)): "PutBucketTagging",
    ("DELETE", "bucket", ("tagging",)): "DeleteBucketTagging",
    ("PUT", "object", ("tagging",)): "PutObjectTagging",
    ("GET", "object", ("tagging",)): "GetObjectTagging",
    ("DELETE", "object", ("tagging",)): "DeleteObjectTagging",
    ("PUT", "bucket", ()): "CreateBucket",
    ("PUT", "bucket", ("encryption",)): "PutBucketEncryption",
    ("HEAD", "bucket", ()): "HeadBucket",
    ("DELETE", "bucket", ()): "DeleteBucket",
    ("DELETE", "bucket", ("encryption",)): "DeleteBucketEncryption",
    ("POST", "bucket", ("delete",)): "DeleteObjects",
    ("POST", "bucket", ()): "PostObject",
    ("GET", "bucket", ("versions",)): "ListObjectVersions",
    ("PUT", "bucket", ("versioning",)): "PutBucketVersioning",
    ("PUT", "object", ()): "PutObject",
    ("PUT", "object", ("partNumber", "uploadId")): "UploadPart",
    ("GET", "object", ()): "GetObject",
    ("GET", "object", ("partNumber",)): "GetObject",
    ("GET", "object", ("uploadId",)): "ListParts",
    ("GET", "object", ("acl",)): "GetObjectAcl",
    ("GET", "object", ("attributes",)): "GetObjectAttributes",
    ("HEAD", "object", ()): "HeadObject",
    ("HEAD", "object", ("partNumber",)): "HeadObject",
    ("GET", "bucket", ("policy",)): "GetBucketPolicy",
    ("GET", "bucket", ("policyStatus",)): "GetBucketPolicyStatus",
    ("PUT", "bucket", ("policy",)): "PutBucketPolicy",
    ("DELETE", "bucket", ("policy",)): "DeleteBucketPolicy",
    ("DELETE", "object", ()): "DeleteObject",
    ("DELETE", "object", ("uploadId",)): "AbortMultipartUpload",
    ("POST", "object", ("uploads",)): "CreateMultipartUpload",
    ("POST", "object", ("uploadId",)): "CompleteMultipartUpload",
}

TARGETS = {"service": (None, None), "bucket": ("b", None), "object": ("b", "k")}


def qs_for(subs: tuple[str, ...]) -> str:
    values = {"list-type": "2", "partNumber": "1", "uploadId": "abc"}
    return "&".join(f"{s}={values[s]}" if s in values else s for s in subs)


@pytest.mark.parametrize(("method", "target", "subs"), list(EXPECTED))
def test_expected_operation(method: str, target: str, subs: tuple[str, ...]) -> None:
    bucket, key = TARGETS[target]
    op = select_operation(method, bucket, key, query(qs_for(subs)), CIMultiDictProxy(CIMultiDict()))
    assert op == EXPECTED[(method, target, subs)]


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("method", METHODS)
def test_every_single_subresource_is_an_operation_or_refused(method: str, target: str) -> None:
    """Exhaustive: each method x target x (no subresource | each known one)."""
    bucket, key = TARGETS[target]
    for sub in (None, *sorted(KNOWN_SUBRESOURCES)):
        subs = (sub,) if sub else ()
        expected = EXPECTED.get((method, target, subs))
        if expected is not None:
            assert select_operation(method, bucket, key, query(qs_for(subs))) == expected
            continue
        err = s3_error(select_operation, method, bucket, key, query(qs_for(subs)))
        # The service (no bucket) has only ListBuckets: anything else is a wrong method there.
        want = "MethodNotAllowed" if target == "service" else "NotImplemented"
        assert err.code == want, (method, target, subs)
        if want == "NotImplemented":
            assert err.status == 501
            assert (sub or "this request") in err.message


@pytest.mark.parametrize(
    ("method", "bucket", "key", "subs"),
    [
        ("GET", "b", None, ("acl", "location")),
        ("GET", "b", None, ("encryption", "list-type")),
        ("GET", "b", None, ("tagging", "versioning")),
        ("PUT", "b", None, ("encryption", "tagging")),
        ("DELETE", "b", None, ("encryption", "policy")),
        ("POST", "b", None, ("delete", "uploads")),
        ("PUT", "b", "k", ("partNumber",)),  # a part without its upload
        ("PUT", "b", "k", ("uploadId",)),
        ("PUT", "b", "k", ("partNumber", "tagging", "uploadId")),
        ("GET", "b", "k", ("acl", "uploadId")),
        ("GET", "b", "k", ("partNumber", "uploadId")),
        ("HEAD", "b", "k", ("acl",)),
        ("DELETE", "b", "k", ("tagging", "uploadId")),
        ("POST", "b", "k", ("uploadId", "uploads")),
    ],
)
def test_combined_or_partial_subresources_are_not_implemented(
    method: str, bucket: str, key: str | None, subs: tuple[str, ...]
) -> None:
    err = s3_error(select_operation, method, bucket, key, query(qs_for(subs)))
    assert err.code == "NotImplemented"
    assert ", ".join(subs) in err.message  # names every subresource, sorted


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "TRACE", "PROPFIND"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_unknown_method_is_method_not_allowed(method: str, target: str) -> None:
    bucket, key = TARGETS[target]
    err = s3_error(select_operation, method, bucket, key, query(""))
    assert (err.code, err.status) == ("MethodNotAllowed", 405)


def test_service_level_with_subresource_is_method_not_allowed() -> None:
    assert s3_error(select_operation, "GET", None, None, query("acl")).code == "MethodNotAllowed"
    assert s3_error(select_operation, "PUT", None, None, query("")).code == "MethodNotAllowed"


def test_ordinary_query_parameters_do_not_change_the_operation() -> None:
    assert select_operation("GET", "b", None, query("prefix=a&max-keys=5")) == "ListObjectsV1"
    assert select_operation("GET", "b", None, query("list-type=2&prefix=a")) == "ListObjectsV2"
    assert select_operation("GET", "b", "k", query("x-id=GetObject")) == "GetObject"
    assert select_operation("PUT", "b", "k", query("X-Amz-Signature=ab&X-Amz-Date=1")) == (
        "PutObject"
    )


def test_copy_source_switches_put_object_and_upload_part() -> None:
    hdrs = copy_headers()
    assert select_operation("PUT", "b", "k", query(""), hdrs) == "CopyObject"
    assert select_operation("PUT", "b", "k", query("partNumber=1&uploadId=u"), hdrs) == (
        "UploadPartCopy"
    )
    # Header names are case-insensitive, as aiohttp delivers them.
    lower = CIMultiDictProxy(CIMultiDict({"x-amz-copy-source": "src/obj"}))
    assert select_operation("PUT", "b", "k", query(""), lower) == "CopyObject"


@pytest.mark.parametrize(
    ("method", "bucket", "key", "qs", "op"),
    [
        ("GET", "b", "k", "", "GetObject"),
        ("HEAD", "b", "k", "", "HeadObject"),
        ("DELETE", "b", "k", "", "DeleteObject"),
        ("POST", "b", "k", "uploads", "CreateMultipartUpload"),
        ("PUT", "b", None, "", "CreateBucket"),  # bucket-level PUT ignores the header
    ],
)
def test_copy_source_changes_nothing_else(
    method: str, bucket: str, key: str | None, qs: str, op: str
) -> None:
    assert select_operation(method, bucket, key, query(qs), copy_headers()) == op


def test_without_headers_put_stays_put_object() -> None:
    assert select_operation("PUT", "b", "k", query("")) == "PutObject"


# ----------------------------------------------------------------------------- route table


def all_selectable_operations() -> set[str]:
    ops: set[str] = set()
    for method, (bucket, key) in itertools.product(METHODS, TARGETS.values()):
        for subs in [()] + [(s,) for s in KNOWN_SUBRESOURCES] + [("partNumber", "uploadId")]:
            for hdrs in (None, copy_headers()):
                with contextlib.suppress(S3Error):
                    ops.add(select_operation(method, bucket, key, query(qs_for(subs)), hdrs))
    return ops


def test_every_selectable_operation_has_a_handler_coroutine() -> None:
    ops = all_selectable_operations()
    assert ops == set(EXPECTED.values()) | {"CopyObject", "UploadPartCopy"}
    assert ops == set(ROUTES)
    for op in ops:
        fn = handler_for(op)
        assert fn is ROUTES[op]
        assert inspect.iscoroutinefunction(fn), op
        assert fn.__module__.startswith("sealstore.s3.handlers."), (op, fn.__module__)


def test_route_table_names_the_matching_handler() -> None:
    # Direct references, not strings: each operation's handler is the function its module
    # exports under the operation's snake-case name (ListObjectsV1 -> list_objects_v1).
    for op, fn in ROUTES.items():
        snake = "".join("_" + c.lower() if c.isupper() else c for c in op).lstrip("_")
        assert getattr(sys.modules[fn.__module__], snake) is fn, op


def test_unknown_operation_is_not_implemented() -> None:
    err = s3_error(handler_for, "PutBucketLifecycle")
    assert (err.code, err.status) == ("NotImplemented", 501)
    assert "PutBucketLifecycle is not implemented" in err.message
