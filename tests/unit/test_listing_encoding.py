"""ListObjects V1/V2 under ``encoding-type=url`` encode exactly the elements S3 encodes (the
table below, which is also what botocore URL-decodes per version: V1 leaves the top-level
Prefix as sent), and an empty V2 ``continuation-token`` lists from the start and is echoed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sealstore.s3.handlers import listing as ls

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
RAW = "a b+c/"  # every value below starts with this, so encoding is visible in each element
ENC = "a%20b%2Bc/"

# element -> (encoded in V1, encoded in V2), per the AWS ListObjects / ListObjectsV2 references
TABLE = {
    "Prefix": (False, True),
    "Delimiter": (True, True),
    "Marker": (True, None),  # None: not a V2 element
    "NextMarker": (True, None),
    "StartAfter": (None, True),
    "Contents/Key": (True, True),
    "CommonPrefixes/Prefix": (True, True),
}


def _render(v2: bool) -> ET.Element:
    query = {"prefix": RAW, "delimiter": RAW, "encoding-type": "url"}
    query |= {"list-type": "2", "start-after": RAW + "0"} if v2 else {"marker": RAW + "0"}
    params = ls.parse_list_params(query)
    page = ls.ListPage(
        contents=[ls.ListEntry(RAW + "k", 0.0, "0" * 32, 1)],
        common_prefixes=[RAW + "p" + RAW],
        is_truncated=True,
        next_marker=RAW + "p" + RAW,
    )
    render = ls.render_v2 if v2 else ls.render_v1
    return ET.fromstring(render("bkt", params, page, "AKID"))


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("element", sorted(TABLE))
def test_encoded_elements(v2: bool, element: str) -> None:
    want = TABLE[element][v2]
    root = _render(v2)
    path = "/".join(NS + part for part in element.split("/"))
    found = root.find(path)
    if want is None:
        assert found is None
        return
    assert found is not None and found.text is not None
    assert found.text.startswith(ENC if want else RAW), (element, found.text)
    assert (element in (ls.ENCODED_V2 if v2 else ls.ENCODED_V1)) is want
    assert root.findtext(NS + "EncodingType") == "url"


def test_nothing_encoded_without_encoding_type() -> None:
    params = ls.parse_list_params({"prefix": RAW, "delimiter": RAW, "marker": RAW})
    page = ls.ListPage(contents=[ls.ListEntry(RAW, 0.0, "0" * 32, 1)])
    root = ET.fromstring(ls.render_v1("bkt", params, page, "AKID"))
    assert [root.findtext(NS + n) for n in ("Prefix", "Delimiter", "Marker")] == [RAW] * 3
    assert root.find(NS + "EncodingType") is None


def test_empty_continuation_token_lists_from_the_start_and_is_echoed() -> None:
    params = ls.parse_list_params({"list-type": "2", "continuation-token": ""})
    assert params.continuation_token == "" and params.effective_marker == ""
    with_start = ls.parse_list_params(
        {"list-type": "2", "continuation-token": "", "start-after": "m"}
    )
    assert with_start.effective_marker == "m"
    root = ET.fromstring(ls.render_v2("bkt", params, ls.ListPage(), "AKID"))
    token = root.find(NS + "ContinuationToken")
    assert token is not None and (token.text or "") == ""
