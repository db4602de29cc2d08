"""XML request bodies with a DTD are refused in every encoding (issue 8, item 4).

Proves against a real server process that DeleteObjects and CompleteMultipartUpload bodies
carrying a DOCTYPE with an internal entity, sent as UTF-16 (LE/BE, with and without BOM) or
UTF-8, answer 400 MalformedXML and never echo an expanded entity; before the fix the byte
filter saw no ASCII ``<!DOCTYPE`` in UTF-16 and ``<Key>&x;</Key>`` came back expanded. A
plain UTF-16 body without a DTD is still accepted.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.server import REGION, ROOT_PASSWORD, ROOT_USER, ServerProcess, base_env

MASTER_KEY = "xml-key:" + hashlib.sha256(b"xml entities master").hexdigest()
BUCKET = "xml-bucket"
EXPANSION = "ENTITY-WAS-EXPANDED-" * 8
DTD = f'<!DOCTYPE Delete [<!ENTITY x "{EXPANSION}">]>'
ENCODINGS = {
    "utf-16-le+bom": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf-16-be+bom": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "utf-16-le": lambda t: t.encode("utf-16-le"),
    "utf-16-be": lambda t: t.encode("utf-16-be"),
    "utf-16-decl": lambda t: ('<?xml version="1.0" encoding="UTF-16"?>' + t).encode("utf-16"),
    "utf-8": lambda t: t.encode("utf-8"),
}


def signed(srv: ServerProcess, method: str, path: str, body: bytes = b"") -> requests.Response:
    url = srv.endpoint + path
    headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    if body:
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    S3SigV4Auth(Credentials(ROOT_USER, ROOT_PASSWORD), "s3", REGION).add_auth(req)
    return requests.request(method, url, data=body, headers=dict(req.prepare().headers), timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = Path(tmp_path_factory.mktemp("xml-entities"))
    srv = ServerProcess(
        root / "data", base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY), root / "server.log"
    )
    srv.start()
    try:
        assert signed(srv, "PUT", f"/{BUCKET}").status_code == 200
        yield srv
    finally:
        srv.stop()


def malformed(resp: requests.Response) -> None:
    assert resp.status_code == 400, (resp.status_code, resp.content[:500])
    assert ET.fromstring(resp.content).findtext("Code") == "MalformedXML"
    assert EXPANSION.encode() not in resp.content


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_delete_objects_refuses_dtd(server: ServerProcess, encoding: str) -> None:
    text = f"{DTD}<Delete><Object><Key>&x;</Key></Object></Delete>"
    malformed(signed(server, "POST", f"/{BUCKET}?delete", ENCODINGS[encoding](text)))


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_complete_multipart_refuses_dtd(server: ServerProcess, encoding: str) -> None:
    created = signed(server, "POST", f"/{BUCKET}/mp?uploads")
    assert created.status_code == 200
    upload_id = re.search(rb"<UploadId>([^<]+)</UploadId>", created.content).group(1).decode()
    text = (
        DTD.replace("Delete", "CompleteMultipartUpload")
        + "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&x;</ETag></Part>"
        + "</CompleteMultipartUpload>"
    )
    path = f"/{BUCKET}/mp?uploadId={upload_id}"
    malformed(signed(server, "POST", path, ENCODINGS[encoding](text)))
    assert signed(server, "DELETE", path).status_code == 204


def test_nested_entities_refused_without_growth(server: ServerProcess) -> None:
    """A small UTF-16 'billion laughs' body answers a small 400, not a huge document."""
    levels = ['<!ENTITY l0 "lol">'] + [
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 8)
    ]
    text = f"<!DOCTYPE Delete [{''.join(levels)}]><Delete><Object><Key>&l7;</Key></Object></Delete>"
    resp = signed(server, "POST", f"/{BUCKET}?delete", text.encode("utf-16"))
    malformed(resp)
    assert len(resp.content) < 4096


def test_utf16_without_dtd_still_works(server: ServerProcess) -> None:
    assert signed(server, "PUT", f"/{BUCKET}/k16", b"x").status_code == 200
    body = "<Delete><Object><Key>k16</Key></Object></Delete>".encode("utf-16")
    resp = signed(server, "POST", f"/{BUCKET}?delete", body)
    assert resp.status_code == 200, resp.content
    assert b"<Key>k16</Key>" in resp.content
