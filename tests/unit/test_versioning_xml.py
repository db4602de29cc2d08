"""Versioning's pure S3 shapes: VersioningConfiguration parsing (MalformedXML, the illegal
configuration and MFA answers) and rendering, versionId validation (InvalidArgument for
malformed ids), the ListObjectVersions query rules and its ListVersionsResult (AWS element
order, Version/DeleteMarker entries, url encoding, next markers), DeleteObjects' VersionId
parsing and its Deleted entries."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sealstore.s3.errors import S3Error
from sealstore.s3.handlers import delete_objects as do
from sealstore.s3.handlers.versioning_xml import (
    VersionsQuery,
    parse_version_id,
    parse_versioning,
    parse_versions_query,
    render_versioning,
    render_versions,
)
from sealstore.s3.xml import MalformedXMLError
from sealstore.storage.base import ObjectMeta, Versioning, VersionList, new_version_id

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
VID = "0123456789abcdef0123456789abcdef"


def conf(inner: str, attrs: str = "") -> bytes:
    return f"<VersioningConfiguration{attrs}>{inner}</VersioningConfiguration>".encode()


def _xml(data: bytes) -> ET.Element:
    return ET.fromstring(data)


def _names(root: ET.Element) -> list[str]:
    return [el.tag.removeprefix(NS) for el in root]


@pytest.mark.parametrize("status", ["Enabled", "Suspended"])
def test_parse_versioning_status(status: str) -> None:
    doc = conf(f"<Status>{status}</Status>", f' xmlns="{NS[1:-1]}"')
    assert parse_versioning(doc) is Versioning(status)
    with_mfa = conf(f"<Status>{status}</Status><MfaDelete>Disabled</MfaDelete>")
    assert parse_versioning(with_mfa) is Versioning(status)


@pytest.mark.parametrize(
    "doc",
    [
        b"not xml",
        b"<Other><Status>Enabled</Status></Other>",
        b"<VersioningConfiguration><Bogus/></VersioningConfiguration>",
    ],
)
def test_parse_versioning_malformed(doc: bytes) -> None:
    with pytest.raises(MalformedXMLError):
        parse_versioning(doc)


@pytest.mark.parametrize(
    "doc",
    [
        b"<VersioningConfiguration/>",
        b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>",
        b"<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>",
        conf("<Status>Enabled</Status><MfaDelete>Maybe</MfaDelete>"),
    ],
)
def test_parse_versioning_illegal(doc: bytes) -> None:
    with pytest.raises(S3Error) as caught:
        parse_versioning(doc)
    assert caught.value.code == "IllegalVersioningConfigurationException"
    assert caught.value.status == 400


def test_mfa_delete_enabled_is_not_implemented() -> None:
    doc = conf("<Status>Enabled</Status><MfaDelete>Enabled</MfaDelete>")
    with pytest.raises(S3Error) as caught:
        parse_versioning(doc)
    assert caught.value.status == 501


def test_render_versioning() -> None:
    empty = _xml(render_versioning(Versioning.UNVERSIONED))
    assert empty.tag == f"{NS}VersioningConfiguration" and list(empty) == []
    enabled = _xml(render_versioning(Versioning.ENABLED))
    assert enabled.findtext(f"{NS}Status") == "Enabled"


def test_version_ids() -> None:
    assert parse_version_id(None) is None
    assert parse_version_id("null") == "null"
    fresh = new_version_id()
    assert parse_version_id(fresh) == fresh and len(fresh) == 32
    assert new_version_id() != fresh
    for bad in ("", "nul", "NULL", VID.upper(), VID + "0", "../../x"):
        with pytest.raises(S3Error) as caught:
            parse_version_id(bad)
        assert (caught.value.code, caught.value.status) == ("InvalidArgument", 400)


def test_versions_query_rules() -> None:
    q = parse_versions_query(
        {
            "prefix": "p",
            "delimiter": "/",
            "key-marker": "k",
            "version-id-marker": VID,
            "max-keys": "5000",
        }
    )
    assert q == VersionsQuery("p", "/", "k", VID, 1000, False)
    assert parse_versions_query({"encoding-type": "url"}).encoding_url
    for bad in (
        {"version-id-marker": VID},  # without a key marker
        {"key-marker": "k", "version-id-marker": "x"},
        {"max-keys": "-1"},
        {"max-keys": "ten"},
        {"encoding-type": "base64"},
    ):
        with pytest.raises(S3Error) as caught:
            parse_versions_query(bad)
        assert caught.value.code == "InvalidArgument", bad


def test_render_versions_shape_and_order() -> None:
    version = ObjectMeta("b", "a b", size=3, etag="e1", last_modified=0.5, version_id=VID)
    marker = ObjectMeta("b", "a b", last_modified=0.25, is_delete_marker=True, is_latest=True)
    version.is_latest = False
    page = VersionList(
        [marker, version], ["dir/"], True, next_key_marker="a b", next_version_id_marker=VID
    )
    q = VersionsQuery(prefix="", delimiter="/", key_marker="+", encoding_url=True)
    root = _xml(render_versions("b", q, page, "<Owner><ID>o</ID></Owner>"))
    assert root.tag == f"{NS}ListVersionsResult"
    assert _names(root) == [
        "Name", "Prefix", "KeyMarker", "VersionIdMarker", "NextKeyMarker", "NextVersionIdMarker",
        "MaxKeys", "Delimiter", "EncodingType", "IsTruncated", "DeleteMarker", "Version",
        "CommonPrefixes",
    ]  # fmt: skip
    assert root.findtext(f"{NS}KeyMarker") == "%2B"
    assert root.findtext(f"{NS}NextKeyMarker") == "a%20b"
    dm = root.find(f"{NS}DeleteMarker")
    assert dm is not None
    assert _names(dm) == ["Key", "VersionId", "IsLatest", "LastModified", "Owner"]
    assert dm.findtext(f"{NS}VersionId") == "null" and dm.findtext(f"{NS}IsLatest") == "true"
    v = root.find(f"{NS}Version")
    assert v is not None
    assert _names(v) == [
        "Key", "VersionId", "IsLatest", "LastModified", "ETag", "Size", "Owner", "StorageClass"
    ]  # fmt: skip
    assert v.findtext(f"{NS}ETag") == '"e1"' and v.findtext(f"{NS}IsLatest") == "false"
    plain = _xml(render_versions("b", VersionsQuery(), VersionList([], [], False), ""))
    assert "NextKeyMarker" not in _names(plain) and "Delimiter" not in _names(plain)


def test_delete_objects_version_ids() -> None:
    doc = (
        b"<Delete><Object><Key>a</Key><VersionId>null</VersionId></Object>"
        b"<Object><Key>b</Key></Object></Delete>"
    )
    request = do.parse_delete_request(doc)
    assert request.keys == ["a", "b"]
    assert request.objects() == [("a", "null"), ("b", None)]
    rendered = _xml(
        do.render_delete_result(
            [
                do.Deleted("a", "null"),
                do.Deleted("b", None, True, VID),
                do.Deleted("c", VID, True, VID),
            ],
            [],
            quiet=False,
        )
    )
    entries = [[(el.tag.removeprefix(NS), el.text) for el in d] for d in rendered]
    assert entries == [
        [("Key", "a"), ("VersionId", "null")],
        [("Key", "b"), ("DeleteMarker", "true"), ("DeleteMarkerVersionId", VID)],
        [
            ("Key", "c"),
            ("VersionId", VID),
            ("DeleteMarker", "true"),
            ("DeleteMarkerVersionId", VID),
        ],
    ]
