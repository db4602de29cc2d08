"""Pure request parsing / response rendering of the listing, multipart, DeleteObjects and
bucket-encryption handlers: exact S3 XML shapes and every validation error code.

(One file for all four handler families' XML because they share helpers and fixtures.)
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest

from sealstore.s3.errors import S3Error, s3_error_for
from sealstore.s3.handlers import bucket_encryption as be
from sealstore.s3.handlers import delete_objects as do
from sealstore.s3.handlers import listing as ls
from sealstore.s3.handlers import multipart as mp
from sealstore.s3.xml import MalformedXMLError
from sealstore.storage import base as st
from sealstore.storage.base import multipart_etag

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _xml(data: bytes) -> ET.Element:
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(data)
    assert root.tag.startswith(NS), root.tag
    return root


def _t(el: ET.Element, name: str) -> str | None:
    c = el.find(NS + name)
    return None if c is None else (c.text or "")


# --------------------------------------------------------------------------- listing params


def test_default_params_v1_and_v2():
    p1 = ls.parse_list_params({})
    assert not p1.v2 and p1.max_keys == 1000 and p1.effective_marker == ""
    p2 = ls.parse_list_params({"list-type": "2"})
    assert p2.v2 and p2.max_keys == 1000 and not p2.fetch_owner


@pytest.mark.parametrize("raw,expected", [("0", 0), ("1", 1), ("999", 999), ("5000", 1000)])
def test_max_keys_valid(raw, expected):
    assert ls.parse_list_params({"list-type": "2", "max-keys": raw}).max_keys == expected


@pytest.mark.parametrize("raw", ["-1", "abc", "1.5", " 3", "99999999999"])
def test_max_keys_invalid(raw):
    with pytest.raises(S3Error) as ei:
        ls.parse_list_params({"list-type": "2", "max-keys": raw})
    assert ei.value.code == "InvalidArgument" and ei.value.status == 400


def test_continuation_token_roundtrip_unicode():
    for marker in ["a", "dir/", "ключ/ü x+y", "z" * 1024]:
        tok = ls.encode_continuation_token(marker)
        assert ls.decode_continuation_token(tok) == marker
        p = ls.parse_list_params({"list-type": "2", "continuation-token": tok, "start-after": "a"})
        assert p.effective_marker == marker  # token wins over start-after


@pytest.mark.parametrize("tok", ["!!!", "YQ", "YQ==x", base64.b64encode(b"\xff\xfe").decode()])
def test_continuation_token_invalid(tok):
    with pytest.raises(S3Error) as ei:
        ls.parse_list_params({"list-type": "2", "continuation-token": tok})
    assert ei.value.code == "InvalidArgument"


def test_bad_encoding_type_and_fetch_owner():
    with pytest.raises(S3Error):
        ls.parse_list_params({"encoding-type": "base64"})
    with pytest.raises(S3Error):
        ls.parse_list_params({"list-type": "2", "fetch-owner": "yes"})
    with pytest.raises(S3Error):
        ls.parse_list_params({"list-type": "3"})


def test_v1_ignores_v2_parameters():
    p = ls.parse_list_params({"marker": "m", "start-after": "x", "continuation-token": "??"})
    assert p.effective_marker == "m" and p.continuation_token is None


@pytest.mark.parametrize(
    "raw,enc",
    [
        ("a b", "a%20b"),
        ("a+b", "a%2Bb"),
        ("dir/sub/", "dir/sub/"),
        ("ü", "%C3%BC"),
        ("a&b<c>", "a%26b%3Cc%3E"),
        ("\x01ctl", "%01ctl"),
        ("~._-", "~._-"),
    ],
)
def test_s3_url_encode(raw, enc):
    assert ls.s3_url_encode(raw) == enc
    from urllib.parse import unquote_plus

    assert unquote_plus(enc) == raw  # what botocore does with encoding-type=url


# --------------------------------------------------------------------------- listing XML


def _page(truncated: bool = False) -> ls.ListPage:
    return ls.ListPage(
        contents=[
            ls.ListEntry("a b+c", 1_700_000_000.123, "0" * 32, 5),
            ls.ListEntry("k&<", 1_700_000_001.0, "f" * 32 + "-3", 12 * 1024 * 1024),
        ],
        common_prefixes=["dir/"],
        is_truncated=truncated,
        next_marker="k&<" if truncated else None,
    )


def test_render_v2_fields_and_order():
    params = ls.parse_list_params(
        {"list-type": "2", "prefix": "", "delimiter": "/", "max-keys": "3", "start-after": "a"}
    )
    root = _xml(ls.render_v2("bkt", params, _page(truncated=True), "AKID"))
    assert root.tag == NS + "ListBucketResult"
    names = [c.tag[len(NS) :] for c in root]
    assert names[:10] == [
        "Name",
        "Prefix",
        "StartAfter",
        "KeyCount",
        "MaxKeys",
        "Delimiter",
        "IsTruncated",
        "NextContinuationToken",
        "Contents",
        "Contents",
    ]
    assert _t(root, "KeyCount") == "3" and _t(root, "IsTruncated") == "true"
    assert ls.decode_continuation_token(_t(root, "NextContinuationToken")) == "k&<"
    contents = root.findall(NS + "Contents")
    assert _t(contents[0], "Key") == "a b+c"
    assert _t(contents[0], "ETag") == '"' + "0" * 32 + '"'
    assert _t(contents[0], "LastModified") == "2023-11-14T22:13:20.123Z"
    assert _t(contents[1], "Size") == str(12 * 1024 * 1024)
    assert _t(contents[1], "StorageClass") == "STANDARD"
    assert contents[0].find(NS + "Owner") is None  # only with fetch-owner=true
    assert [_t(c, "Prefix") for c in root.findall(NS + "CommonPrefixes")] == ["dir/"]


def test_render_v2_url_encoding_and_owner():
    params = ls.parse_list_params(
        {
            "list-type": "2",
            "prefix": "a b",
            "delimiter": "/",
            "encoding-type": "url",
            "fetch-owner": "true",
            "start-after": "a b/x y",
        }
    )
    root = _xml(ls.render_v2("bkt", params, _page(), "AKID"))
    assert _t(root, "Prefix") == "a%20b"
    assert _t(root, "StartAfter") == "a%20b/x%20y"
    assert _t(root, "EncodingType") == "url"
    assert _t(root, "Delimiter") == "/"
    c0 = root.findall(NS + "Contents")[0]
    assert _t(c0, "Key") == "a%20b%2Bc"
    assert _t(c0.find(NS + "Owner"), "DisplayName") == "AKID"
    assert len(_t(c0.find(NS + "Owner"), "ID")) == 64
    assert _t(root, "NextContinuationToken") is None and _t(root, "IsTruncated") == "false"


def test_render_v1_next_marker_only_with_delimiter():
    with_delim = ls.parse_list_params({"delimiter": "/", "marker": "a"})
    root = _xml(ls.render_v1("bkt", with_delim, _page(truncated=True), "AKID"))
    assert _t(root, "NextMarker") == "k&<" and _t(root, "Marker") == "a"
    assert root.find(NS + "KeyCount") is None
    # V1 always carries Owner.
    assert root.find(NS + "Contents").find(NS + "Owner") is not None
    no_delim = ls.parse_list_params({})
    root = _xml(ls.render_v1("bkt", no_delim, _page(truncated=True), "AKID"))
    assert root.find(NS + "NextMarker") is None and _t(root, "IsTruncated") == "true"


def test_render_escapes_control_chars_to_parseable_xml():
    page = ls.ListPage(contents=[ls.ListEntry("x\x01y", 0.0, "0" * 32, 0)])
    root = _xml(ls.render_v2("b", ls.parse_list_params({"list-type": "2"}), page, "A"))
    assert _t(root.find(NS + "Contents"), "Key") == "x\ufffdy"


# --------------------------------------------------------------------------- bucket encryption

AES_DOC = (
    b'<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
    b"</ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"
)


def test_encryption_config_aes256_roundtrip():
    rule = be.parse_encryption_config(AES_DOC)
    assert rule == be.SSERule("AES256")
    text = be.render_encryption_config(rule)
    assert be.parse_encryption_config(text) == rule
    assert be.default_sse_algorithm(text.decode()) == "AES256"
    assert be.default_sse_algorithm(None) is None
    assert be.default_sse_algorithm("") is None


def test_encryption_config_without_namespace_and_kms_key():
    doc = (
        b"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>"
        b"<SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>arn:aws:kms:my-key</KMSMasterKeyID>"
        b"</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule>"
        b"</ServerSideEncryptionConfiguration>"
    )
    rule = be.parse_encryption_config(doc)
    assert rule == be.SSERule("aws:kms", "my-key", True)
    assert be.default_sse_algorithm(be.render_encryption_config(rule).decode()) == "aws:kms"


def _rule(inner: str, rules: int = 1) -> bytes:
    apply = "ApplyServerSideEncryptionByDefault"
    body = f"<Rule><{apply}>{inner}</{apply}></Rule>"
    root = "ServerSideEncryptionConfiguration"
    return f"<{root}>{body * rules}</{root}>".encode()


@pytest.mark.parametrize(
    "doc,code",
    [
        (_rule("<SSEAlgorithm>AES256</SSEAlgorithm>", rules=2), "MalformedXML"),
        (_rule("<SSEAlgorithm>AES256</SSEAlgorithm>", rules=0), "MalformedXML"),
        (_rule("<SSEAlgorithm>DES</SSEAlgorithm>"), "MalformedXML"),
        (
            _rule("<SSEAlgorithm>AES256</SSEAlgorithm><KMSMasterKeyID>k</KMSMasterKeyID>"),
            "InvalidArgument",
        ),
        (
            _rule("<SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID> k</KMSMasterKeyID>"),
            "InvalidArgument",
        ),
        (b"<Nope/>", "MalformedXML"),
        (
            b"<ServerSideEncryptionConfiguration><Rule></Rule></ServerSideEncryptionConfiguration>",
            "MalformedXML",
        ),
        (b"not xml", "MalformedXML"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><ServerSideEncryptionConfiguration/>', "MalformedXML"),
    ],
)
def test_encryption_config_rejects(doc, code):
    with pytest.raises((S3Error, MalformedXMLError)) as ei:
        be.parse_encryption_config(doc)
    got = ei.value.code if isinstance(ei.value, S3Error) else "MalformedXML"
    assert got == code


def test_default_sse_algorithm_refuses_damaged_config():
    with pytest.raises(Exception) as ei:
        be.default_sse_algorithm("<garbage")
    err = s3_error_for(ei.value)
    assert isinstance(err, S3Error)
    assert err.code == "InternalError"


# --------------------------------------------------------------------------- DeleteObjects


def test_parse_delete_request():
    doc = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>'
        b"<Object><Key>a</Key></Object><Object><Key>b c</Key><VersionId>null</VersionId></Object>"
        b"</Delete>"
    )
    r = do.parse_delete_request(doc)
    assert r.keys == ["a", "b c"] and r.quiet
    assert not do.parse_delete_request(b"<Delete><Object><Key>a</Key></Object></Delete>").quiet


@pytest.mark.parametrize(
    "doc",
    [
        b"<Delete></Delete>",
        b"<Delete><Object></Object></Delete>",
        b"<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>",
        b"<Delete><Bogus/><Object><Key>a</Key></Object></Delete>",
        b"<Remove><Object><Key>a</Key></Object></Remove>",
        b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
    ],
)
def test_parse_delete_request_malformed(doc):
    with pytest.raises((S3Error, MalformedXMLError)) as ei:
        do.parse_delete_request(doc)
    if isinstance(ei.value, S3Error):
        assert ei.value.code == "MalformedXML"


def test_delete_accepts_exactly_1000():
    doc = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1000 + b"</Delete>"
    assert len(do.parse_delete_request(doc).keys) == 1000


def test_render_delete_result_quiet_and_verbose():
    fails = [do.DeleteFailure("bad", "InvalidArgument", "nope")]
    root = _xml(do.render_delete_result(["a", "b"], fails, quiet=False))
    assert [_t(d, "Key") for d in root.findall(NS + "Deleted")] == ["a", "b"]
    err = root.find(NS + "Error")
    assert (_t(err, "Key"), _t(err, "Code"), _t(err, "Message")) == (
        "bad",
        "InvalidArgument",
        "nope",
    )
    root = _xml(do.render_delete_result(["a", "b"], fails, quiet=True))
    assert root.findall(NS + "Deleted") == [] and len(root.findall(NS + "Error")) == 1


def test_integrity_header_detection():
    from multidict import CIMultiDict

    assert not do.has_integrity_header(CIMultiDict())
    assert do.has_integrity_header(CIMultiDict({"content-md5": "x"}))
    assert do.has_integrity_header(CIMultiDict({"X-Amz-Checksum-CRC32": "x"}))
    assert do.has_integrity_header(CIMultiDict({"x-amz-trailer": "x-amz-checksum-crc64nvme"}))
    assert not do.has_integrity_header(CIMultiDict({"x-amz-trailer": "x-amz-meta-foo"}))


# --------------------------------------------------------------------------- multipart


def _complete(*parts: tuple[str, str]) -> bytes:
    body = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts)
    return f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()


def test_parse_complete_request_normalises_etags():
    e1, e2 = "A" * 32, "b" * 32
    parts = mp.parse_complete_request(_complete(("1", f'"{e1}"'), ("3", e2)))
    assert parts == [mp.CompletePart(1, "a" * 32), mp.CompletePart(3, e2)]


@pytest.mark.parametrize(
    "doc,code",
    [
        (_complete(("2", "x"), ("1", "y")), "InvalidPartOrder"),
        (_complete(("1", "x"), ("1", "y")), "InvalidPartOrder"),
        (_complete(("0", "x")), "InvalidArgument"),
        (_complete(("10001", "x")), "InvalidArgument"),
        (_complete(("abc", "x")), "MalformedXML"),
        (b"<CompleteMultipartUpload/>", "MalformedXML"),
        (
            b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
            "MalformedXML",
        ),
        (b"<Complete/>", "MalformedXML"),
    ],
)
def test_parse_complete_request_errors(doc, code):
    with pytest.raises((S3Error, MalformedXMLError)) as ei:
        mp.parse_complete_request(doc)
    got = ei.value.code if isinstance(ei.value, S3Error) else "MalformedXML"
    assert got == code


def test_multipart_etag_matches_s3_definition():
    data = [b"x" * 10, b"y" * 7, b"z"]
    md5s = [hashlib.md5(d).hexdigest() for d in data]
    expected = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in data)).hexdigest() + "-3"
    assert multipart_etag(md5s) == expected
    with pytest.raises(Exception) as ei:
        multipart_etag(["nothex"])
    err = s3_error_for(ei.value)
    assert isinstance(err, S3Error)
    assert err.code == "InvalidPart"


@pytest.mark.parametrize("raw", [None, "", "0", "10001", "-1", "1e3", "abc"])
def test_part_number_invalid(raw):
    with pytest.raises(S3Error) as ei:
        mp.parse_part_number(raw)
    assert ei.value.code == "InvalidArgument"


def test_part_number_valid():
    assert mp.parse_part_number("1") == 1 and mp.parse_part_number("10000") == 10000


def test_render_list_parts_and_uploads():
    up = st.UploadMeta("uid1", "bkt", "dir/k", 1_700_000_000.0, st.ObjectMeta("bkt", "dir/k"))
    parts = [
        st.PartMeta(1, "a" * 32, 5 << 20, 0, 1_700_000_000.0),
        st.PartMeta(2, "b" * 32, 3, 0, 0.0),
    ]
    root = _xml(
        mp.render_list_parts(up, parts, marker=0, max_parts=2, truncated=True, access_key="AK")
    )
    assert _t(root, "UploadId") == "uid1" and _t(root, "NextPartNumberMarker") == "2"
    assert _t(root, "IsTruncated") == "true" and _t(root, "MaxParts") == "2"
    assert _t(root.find(NS + "Initiator"), "DisplayName") == "AK"
    ps = root.findall(NS + "Part")
    assert [_t(p, "PartNumber") for p in ps] == ["1", "2"]
    assert _t(ps[0], "ETag") == '"' + "a" * 32 + '"' and _t(ps[0], "Size") == str(5 << 20)

    q = mp.parse_uploads_query({"delimiter": "/", "encoding-type": "url"})
    up2 = st.UploadMeta("uid2", "bkt", "top key", 1_700_000_000.0, st.ObjectMeta("bkt", "top key"))
    kept, prefixes = mp.group_uploads([up, up2], q.prefix, q.delimiter)
    assert [u.key for u in kept] == ["top key"] and prefixes == ["dir/"]
    root = _xml(mp.render_list_uploads("bkt", q, kept, prefixes, False, "", "", "AK"))
    assert _t(root.find(NS + "Upload"), "Key") == "top%20key"
    assert _t(root.find(NS + "CommonPrefixes"), "Prefix") == "dir/"
    assert _t(root, "IsTruncated") == "false"


def test_render_initiate_and_complete():
    root = _xml(mp.render_initiate("b", "k", "u"))
    assert (_t(root, "Bucket"), _t(root, "Key"), _t(root, "UploadId")) == ("b", "k", "u")
    root = _xml(mp.render_complete("http://h/b/k", "b", "k", "e-2"))
    assert _t(root, "ETag") == '"e-2"' and _t(root, "Location") == "http://h/b/k"


# --------------------------------------------------------------------------- paging vs a model


def _model(keys: list[str], prefix: str, delimiter: str, after: str) -> list[tuple[str, bool]]:
    """Brute-force S3 listing: (name, is_prefix) entries after ``after`` in UTF-8 order."""
    out: dict[bytes, tuple[str, bool]] = {}
    for k in keys:
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix) :]
        if delimiter and delimiter in rest:
            cp = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            out[cp.encode()] = (cp, True)
        else:
            out[k.encode()] = (k, False)
    return [v for b, v in sorted(out.items()) if b > after.encode()]


def _walk(storage, prefix: str, delimiter: str, max_keys: int, v2: bool):
    """Page through fetch_page the way a client does (tokens for V2, markers for V1)."""
    import asyncio

    seen: list[tuple[str, bool]] = []
    query = {"prefix": prefix, "delimiter": delimiter, "max-keys": str(max_keys)}
    if v2:
        query["list-type"] = "2"
    for _ in range(10_000):
        params = ls.parse_list_params(query)
        page = asyncio.run(ls.fetch_page(storage, "bkt", params))
        assert len(page.contents) + len(page.common_prefixes) <= max_keys
        rows = [(e.key, False) for e in page.contents] + [(p, True) for p in page.common_prefixes]
        rows.sort(key=lambda r: r[0].encode())
        seen.extend(rows)
        if not page.is_truncated:
            return seen
        assert rows, "a truncated page must make progress"
        if v2:
            body = ls.render_v2("bkt", params, page, "AK")
            token = _t(ET.fromstring(body), "NextContinuationToken")
            query = {**query, "continuation-token": token}
        else:
            body = ls.render_v1("bkt", params, page, "AK")
            root = ET.fromstring(body)
            nxt = _t(root, "NextMarker")
            if nxt is None:  # V1 without delimiter: the client continues after the last key
                nxt = root.findall(NS + "Contents")[-1].find(NS + "Key").text
            query = {**query, "marker": nxt}
    raise AssertionError("listing did not terminate")


@pytest.fixture(scope="module")
def filled_storage(tmp_path_factory):
    import asyncio
    import random

    from sealstore.storage.fs import FSBackend

    rnd = random.Random(5)
    alphabet = ["a", "b", "/", "ü", " ", "+", "z", "Ω", "-"]
    keys = {"".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 7))) for _ in range(260)}
    keys = sorted(k for k in keys if not k.startswith("/") and "//" not in k)
    # Keys with '.'-segments or a leading '/' are refused by storage; keep the valid ones.
    keys = [k for k in keys if all(seg not in (".", "..") for seg in k.split("/"))]
    fs = FSBackend(tmp_path_factory.mktemp("data"))

    async def fill() -> None:
        await fs.open()
        await fs.create_bucket("bkt")
        for k in keys:
            w = await fs.new_writer("bkt", k)
            await w.write(k.encode())
            await w.commit(st.ObjectMeta("bkt", k, size=len(k.encode()), etag="0" * 32))

    asyncio.run(fill())
    yield fs, keys
    asyncio.run(fs.close())


@pytest.mark.parametrize("v2", [True, False])
@pytest.mark.parametrize("delimiter", ["", "/", "b"])
@pytest.mark.parametrize("prefix", ["", "a", "a/", "ü"])
@pytest.mark.parametrize("max_keys", [1, 3, 1000])
def test_paging_matches_model(filled_storage, v2, delimiter, prefix, max_keys):
    fs, keys = filled_storage
    got = _walk(fs, prefix, delimiter, max_keys, v2)
    assert got == _model(keys, prefix, delimiter, "")


def test_start_after_and_max_keys_zero(filled_storage):
    import asyncio

    fs, keys = filled_storage
    after = keys[len(keys) // 2]
    params = ls.parse_list_params({"list-type": "2", "start-after": after, "delimiter": "/"})
    page = asyncio.run(ls.fetch_page(fs, "bkt", params))
    rows = [(e.key, False) for e in page.contents] + [(p, True) for p in page.common_prefixes]
    assert sorted(rows, key=lambda r: r[0].encode()) == _model(keys, "", "/", after)
    zero = ls.parse_list_params({"list-type": "2", "max-keys": "0"})
    page = asyncio.run(ls.fetch_page(fs, "bkt", zero))
    assert page.contents == [] and page.common_prefixes == [] and not page.is_truncated


def test_parse_copy_range():
    assert mp.parse_copy_range(None, 10) == (0, 10)
    assert mp.parse_copy_range("bytes=0-0", 10) == (0, 1)
    assert mp.parse_copy_range("bytes=2-9", 10) == (2, 8)
    # Malformed (s3-tests' improper ranges): 400 InvalidArgument, as S3 answers.
    for bad in (
        "bytes=5-4",
        "bytes=-3",
        "bytes=3-",
        "bits=0-1",
        "bytes=a-b",
        "0-2",
        "bytes=0",
        "bytes=hello-world",
        "bytes=0-bar",
        "bytes=0-2,3-5",
    ):
        with pytest.raises(S3Error) as ei:
            mp.parse_copy_range(bad, 10)
        assert (ei.value.code, ei.value.status) == ("InvalidArgument", 400), bad
    # Well-formed but past the source: 416 InvalidRange (it was InvalidArgument before).
    for outside in ("bytes=0-10", "bytes=10-10", "bytes=0-21"):
        with pytest.raises(S3Error) as ei:
            mp.parse_copy_range(outside, 10)
        assert (ei.value.code, ei.value.status) == ("InvalidRange", 416), outside
    with pytest.raises(S3Error) as ei:
        mp.parse_copy_range("bytes=0-0", 0)
    assert ei.value.code == "InvalidRange"
