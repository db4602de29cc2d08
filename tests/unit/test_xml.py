"""s3/xml.py: escaping, documents, and safe request parsing."""

from __future__ import annotations

import pytest

from sealstore.s3.xml import (
    MalformedXMLError,
    child_text,
    children,
    document,
    escape,
    find_path,
    parse,
    tag,
    wrap,
)


def test_escape_markup_and_invalid_chars() -> None:
    assert escape('a<b>&"c') == "a&lt;b&gt;&amp;&quot;c"
    assert escape("x\x01y") == "x\ufffdy"
    assert escape("tab\tnl\n") == "tab\tnl\n"


def test_tag_values() -> None:
    assert tag("A", None) == ""
    assert tag("A", True) == "<A>true</A>"
    assert tag("A", 5) == "<A>5</A>"
    assert tag("Key", "a&b") == "<Key>a&amp;b</Key>"


def test_document_roundtrip() -> None:
    body = document("Root", [wrap("Item", tag("Key", "k<1>")), wrap("Item", [tag("Key", "k2")])])
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Root xmlns="')
    root = parse(body, "Root")
    assert [child_text(i, "Key") for i in children(root, "Item")] == ["k<1>", "k2"]


def test_error_document() -> None:
    from sealstore.s3.errors import S3Error

    root = parse(S3Error("NoSuchKey", "gone").to_xml("/b/k", "REQ1"), "Error")
    assert child_text(root, "Code") == "NoSuchKey"
    assert child_text(root, "RequestId") == "REQ1"


def test_parse_ignores_namespaces() -> None:
    data = (
        b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"
    )
    root = parse(data, "CreateBucketConfiguration")
    assert child_text(root, "LocationConstraint") == "eu-west-1"
    assert child_text(root, "Missing", "d") == "d"
    assert find_path(root, "LocationConstraint") is not None
    assert find_path(root, "Nope", "Deeper") is None


@pytest.mark.parametrize(
    "data",
    [
        b"<a><b></a>",
        b"",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "lol">]><x>&e;</x>',
        b'<!doctype x SYSTEM "file:///etc/passwd"><x/>',
    ],
)
def test_parse_rejects_bad_and_dtd(data: bytes) -> None:
    with pytest.raises(MalformedXMLError):
        parse(data)


def test_parse_wrong_root() -> None:
    with pytest.raises(MalformedXMLError):
        parse(b"<Other/>", "Delete")


def test_parse_size_limit() -> None:
    with pytest.raises(MalformedXMLError):
        parse(b"<a>" + b"x" * (3 * 1024 * 1024) + b"</a>")


DTD_DOC = '<!DOCTYPE Delete [<!ENTITY x "expanded">]><Delete><Key>&x;</Key></Delete>'


@pytest.mark.parametrize(
    "data",
    [
        DTD_DOC.encode("utf-16"),  # BOM, native order
        DTD_DOC.encode("utf-16-le"),
        DTD_DOC.encode("utf-16-be"),
        ('<?xml version="1.0" encoding="UTF-16"?>' + DTD_DOC).encode("utf-16-be"),
        b"\xef\xbb\xbf" + DTD_DOC.encode(),
        DTD_DOC.encode("utf-32"),
    ],
)
def test_parse_rejects_dtd_in_any_encoding(data: bytes) -> None:
    """The parser refuses the DTD after decoding: no ASCII '<!DOCTYPE' bytes are needed."""
    with pytest.raises(MalformedXMLError):
        parse(data)


def test_parse_utf16_without_dtd() -> None:
    root = parse("<Delete><Key>k é</Key></Delete>".encode("utf-16"), "Delete")
    assert child_text(root, "Key") == "k é"
