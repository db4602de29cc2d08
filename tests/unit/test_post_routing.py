"""The one authentication exception: routing.is_browser_post admits exactly the requests that
route to PostObject with a multipart/form-data body (never ``?delete``, an object path, another
method or another body type), so no other handler can run without header authentication."""

from __future__ import annotations

import pytest

from sealstore.s3.routing import KNOWN_SUBRESOURCES, is_browser_post

FORM = "multipart/form-data; boundary=xyz"


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/bucket", FORM),
        ("POST", "/bucket/", FORM),
        ("POST", "/bucket?x-id=PostObject", FORM),  # a non-subresource parameter
        ("POST", "/bucket", "Multipart/Form-Data;boundary=xyz"),
    ],
)
def test_browser_posts(method: str, path: str, content_type: str) -> None:
    assert is_browser_post(method, path, content_type)


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/bucket?delete", FORM),  # DeleteObjects keeps header authentication
        ("POST", "/bucket/key", FORM),
        ("POST", "/bucket/key?uploads", FORM),
        ("POST", "/", FORM),
        ("PUT", "/bucket", FORM),
        ("GET", "/bucket", FORM),
        ("POST", "/bucket", "application/x-www-form-urlencoded"),
        ("POST", "/bucket", "multipart/mixed; boundary=xyz"),
        ("POST", "/bucket", None),
        ("POST", "/b%ff", FORM),  # undecodable bucket: normal authentication, then the error
        ("POST", "bucket", FORM),
    ],
)
def test_everything_else_is_authenticated_normally(
    method: str, path: str, content_type: str | None
) -> None:
    assert not is_browser_post(method, path, content_type)


@pytest.mark.parametrize("sub", sorted(KNOWN_SUBRESOURCES))
def test_no_subresource_is_a_browser_post(sub: str) -> None:
    assert not is_browser_post("POST", f"/bucket?{sub}", FORM)
    assert not is_browser_post("POST", f"/bucket?{sub}=1", FORM)
