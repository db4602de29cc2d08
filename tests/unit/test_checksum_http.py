"""Flexible checksums on the wire: CreateMultipartUpload and UploadPart rules with S3's error
codes and wording, which checksum GET/HEAD return (mode, range, partNumber), the
CompleteMultipartUpload parsing, and the GetObjectAttributes document."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest

from sealstore.objects import checksum as ck
from sealstore.s3 import checksums as http
from sealstore.s3.errors import S3Error
from sealstore.s3.handlers.attributes import parse_attributes, render_attributes
from sealstore.storage.base import ObjectMeta, PartMeta

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
SHA = base64.b64encode(bytes(range(32))).decode()
CRC = base64.b64encode(b"\1\2\3\4").decode()


def s3_error(fn, *args) -> S3Error:
    with pytest.raises(S3Error) as exc:
        fn(*args)
    return exc.value


@pytest.mark.parametrize(
    ("headers", "choice"),
    [
        ({}, None),
        ({"x-amz-checksum-algorithm": "SHA256"}, ("sha256", "COMPOSITE")),
        ({"x-amz-checksum-algorithm": "crc64nvme"}, ("crc64nvme", "FULL_OBJECT")),
        (
            {"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "FULL_OBJECT"},
            ("crc32", "FULL_OBJECT"),
        ),
    ],
)
def test_create_choice(headers: dict[str, str], choice: tuple[str, str] | None) -> None:
    assert http.create_choice(headers) == choice


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            {"x-amz-checksum-type": "COMPOSITE"},
            "can only be used with the x-amz-checksum-algorithm",
        ),
        ({"x-amz-checksum-algorithm": "MD4"}, "unsupported"),
        ({"x-amz-checksum-algorithm": "SHA1", "x-amz-checksum-type": "X"}, "is invalid"),
        (
            {"x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-type": "FULL_OBJECT"},
            "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm.",
        ),
        (
            {"x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "COMPOSITE"},
            "cannot be used with the crc64nvme",
        ),
    ],
)
def test_create_choice_refusals(headers: dict[str, str], message: str) -> None:
    err = s3_error(http.create_choice, headers)
    assert err.code == "InvalidRequest" and message in err.message


def test_part_rule() -> None:
    composite = ck.upload_entries(("sha256", "COMPOSITE"))
    full = ck.upload_entries(("crc32", "FULL_OBJECT"))
    assert http.part_rule({}, "crc32") == (None, False)  # verified and echoed, not kept
    assert http.part_rule(composite, "sha256") == ("sha256", True)
    assert http.part_rule(full, None) == ("crc32", True)  # the server hashes it
    err = s3_error(http.part_rule, composite, None)
    assert "expected checksum Type: sha256, actual checksum Type: null" in err.message
    assert "actual checksum Type: crc32" in s3_error(http.part_rule, composite, "crc32").message


def _meta(cs: ck.Checksum | None, parts: list[PartMeta] | None = None) -> ObjectMeta:
    return ObjectMeta(
        "b", "k", size=7, etag="abc-2" if parts else "abc",
        internal=cs.entry() if cs else {}, parts=parts or [],
    )  # fmt: skip


def _parts() -> list[PartMeta]:
    return [
        PartMeta(1, "e1", 5, 5, 0.0, ck.Checksum("sha256", SHA).entry()),
        PartMeta(2, "e2", 2, 2, 0.0, ck.Checksum("sha256", SHA).entry()),
    ]


def test_get_headers() -> None:
    on = {"x-amz-checksum-mode": "ENABLED"}
    full = _meta(ck.Checksum("crc32", CRC))
    assert http.get_headers({}, full, None, False) == {}
    assert http.get_headers(on, full, None, True) == {}  # a range
    assert http.get_headers(on, full, None, False) == {
        "x-amz-checksum-crc32": CRC,
        "x-amz-checksum-type": "FULL_OBJECT",
    }
    comp = _meta(ck.Checksum("sha256", SHA, ck.COMPOSITE, 2), _parts())
    assert http.get_headers(on, comp, None, False)["x-amz-checksum-sha256"] == SHA + "-2"
    assert http.get_headers(on, comp, "2", False) == {
        "x-amz-checksum-sha256": SHA,
        "x-amz-checksum-type": "COMPOSITE",
    }
    assert http.get_headers(on, comp, "3", False) == {}
    full_mp = _meta(ck.Checksum("crc32", CRC), _parts())
    assert http.get_headers(on, full_mp, "1", False) == {}


def test_completion_parsing() -> None:
    body = (
        f'<CompleteMultipartUpload xmlns="{NS[1:-1]}"><Part><PartNumber>1</PartNumber>'
        f"<ETag>e</ETag><ChecksumSHA256>{SHA}</ChecksumSHA256></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>"
    ).encode()
    got = http.completion(
        {"x-amz-checksum-sha256": SHA + "-2", "x-amz-checksum-type": "COMPOSITE"}, body
    )
    assert got.parts == {1: ("sha256", SHA)} and got.whole == ("sha256", SHA + "-2")
    assert got.type == "COMPOSITE"
    bad = body.replace(SHA.encode(), b"AAAA")
    assert s3_error(http.completion, {}, bad).code == "InvalidPart"
    assert s3_error(http.completion, {"x-amz-checksum-crc32": "zz"}, body).code == "InvalidRequest"


def test_parse_attributes() -> None:
    assert parse_attributes(["ETag, Checksum", "ObjectSize"]) == {"ETag", "Checksum", "ObjectSize"}
    assert s3_error(parse_attributes, []).code == "InvalidRequest"
    assert s3_error(parse_attributes, [" , "]).code == "InvalidRequest"
    assert s3_error(parse_attributes, ["ETag,Size"]).code == "InvalidArgument"


def test_render_attributes_composite_paging() -> None:
    meta = _meta(ck.Checksum("sha256", SHA, ck.COMPOSITE, 2), _parts())
    doc = ET.fromstring(
        render_attributes(
            meta,
            set(http.ALGORITHMS)
            | {"ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"},
            0,
            1,
        )
    )
    assert doc.tag == NS + "GetObjectAttributesResponse"
    assert [c.tag[len(NS) :] for c in doc] == [
        "ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize",
    ]  # fmt: skip
    assert doc.findtext(NS + "ETag") == "abc-2"
    assert doc.findtext(f"{NS}Checksum/{NS}ChecksumSHA256") == SHA  # no -N here
    parts = doc.find(NS + "ObjectParts")
    assert parts is not None
    assert parts.findtext(NS + "PartsCount") == "2"
    assert parts.findtext(NS + "IsTruncated") == "true"
    assert parts.findtext(NS + "NextPartNumberMarker") == "1"
    assert [p.findtext(NS + "PartNumber") for p in parts.findall(NS + "Part")] == ["1"]


def test_render_attributes_full_object_and_single_part() -> None:
    full_mp = _meta(ck.Checksum("crc32", CRC), _parts())
    doc = ET.fromstring(render_attributes(full_mp, {"ObjectParts"}, 0, 1000))
    parts = doc.find(NS + "ObjectParts")
    assert parts is not None and [c.tag[len(NS) :] for c in parts] == ["PartsCount"]
    single = ET.fromstring(render_attributes(_meta(None), {"ObjectParts", "Checksum"}, 0, 1000))
    assert list(single) == []
