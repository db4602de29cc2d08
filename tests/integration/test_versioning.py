"""S3 bucket versioning through real clients (boto3, awscli, the minio SDK) against a real
sealstore process with SSE-S3 (master-key KMS): the s3-tests clean-up (list every version,
delete each by VersionId) on unversioned buckets; Put/GetBucketVersioning and their errors;
Enabled buckets keep every version (encrypted ones each under their own key), write delete
markers and answer 404/405 with the marker headers; Suspended writes replace the null version;
copies from a version; DeleteObjects by version; paging; DeleteBucket waits for the last
version. One server for the module, small objects.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ROOT_PASSWORD, ServerProcess, base_env
from tests.integration.test_clients import awscli_env, minio_client

MASTER_KEY = "versions-key:" + hashlib.sha256(b"versioning master").hexdigest()
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("versioning")
    (root / "data").mkdir()
    server = ServerProcess(
        root / "data", base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY), root / "server.log"
    ).start()
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3(srv: ServerProcess):
    return srv.client()


def error_of(call, **kwargs) -> tuple[int, str, dict[str, str]]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    resp = caught.value.response
    return (
        resp["ResponseMetadata"]["HTTPStatusCode"],
        resp["Error"]["Code"],
        resp["ResponseMetadata"]["HTTPHeaders"],
    )


def versions_of(s3, bucket: str) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is marker) in the order the server listed them."""
    out = s3.list_object_versions(Bucket=bucket)
    rows = [
        (v["Key"], v["VersionId"], v["IsLatest"], False, v["LastModified"])
        for v in out.get("Versions", [])
    ]
    rows += [
        (m["Key"], m["VersionId"], m["IsLatest"], True, m["LastModified"])
        for m in out.get("DeleteMarkers", [])
    ]
    # boto3 splits Version and DeleteMarker into two lists: restore S3's order
    order = {(r[0], r[1]): i for i, r in enumerate(_raw_order(s3, bucket))}
    rows.sort(key=lambda r: order[(r[0], r[1])])
    return [r[:4] for r in rows]


def _raw_order(s3, bucket: str) -> list[tuple[str, str]]:
    """The entries' (key, version) order as sent on the wire (boto3 groups them by kind)."""
    captured: list[bytes] = []

    def grab(http_response, **_kwargs) -> None:
        captured.append(http_response.content)

    s3.meta.events.register("after-call.s3.ListObjectVersions", grab)
    try:
        s3.list_object_versions(Bucket=bucket)
    finally:
        s3.meta.events.unregister("after-call.s3.ListObjectVersions", grab)
    import xml.etree.ElementTree as ET

    root = ET.fromstring(captured[0])
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    return [
        (el.findtext(f"{ns}Key"), el.findtext(f"{ns}VersionId"))
        for el in root
        if el.tag in (f"{ns}Version", f"{ns}DeleteMarker")
    ]


def test_unversioned_bucket_cleanup_like_s3_tests(s3) -> None:
    s3.create_bucket(Bucket="plain")
    keys = ["a", "dir/b c", "dir/d+e", "z%"]
    for key in keys:
        put = s3.put_object(
            Bucket="plain", Key=key, Body=key.encode(), ServerSideEncryption="AES256"
        )
        assert "VersionId" not in put
    assert s3.get_bucket_versioning(Bucket="plain").get("Status") is None
    raw = s3.list_object_versions(Bucket="plain", EncodingType="url")  # boto3 leaves it encoded
    assert [v["Key"] for v in raw["Versions"]] == ["a", "dir/b%20c", "dir/d%2Be", "z%25"]
    listed = s3.list_object_versions(Bucket="plain")  # boto3 asks for url encoding and decodes
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [
        (k, "null", True) for k in keys
    ]
    assert s3.get_object(Bucket="plain", Key="a", VersionId="null")["Body"].read() == b"a"
    assert s3.head_object(Bucket="plain", Key="a", VersionId="null")["VersionId"] == "null"
    status, code, _ = error_of(s3.get_object, Bucket="plain", Key="a", VersionId="bogus")
    assert (status, code) == (400, "InvalidArgument")
    status, code, _ = error_of(s3.get_object, Bucket="plain", Key="a", VersionId="0" * 32)
    assert (status, code) == (404, "NoSuchVersion")
    status, _, _ = error_of(s3.head_object, Bucket="plain", Key="a", VersionId="0" * 32)
    assert status == 404
    delimited = s3.list_object_versions(Bucket="plain", Delimiter="/", MaxKeys=2)
    assert [p["Prefix"] for p in delimited["CommonPrefixes"]] == ["dir/"]
    assert delimited["IsTruncated"] and delimited["NextKeyMarker"] == "dir/"
    # the clean-up every s3-tests test runs: delete each listed version by its id
    s3.delete_object(Bucket="plain", Key="a", VersionId="null")
    rest = s3.list_object_versions(Bucket="plain")["Versions"]
    done = s3.delete_objects(
        Bucket="plain",
        Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in rest]},
    )
    assert sorted(d["Key"] for d in done["Deleted"]) == keys[1:]
    assert all(d["VersionId"] == "null" for d in done["Deleted"])
    assert "Versions" not in s3.list_object_versions(Bucket="plain")
    s3.delete_bucket(Bucket="plain")


def test_versioning_configuration(s3, srv) -> None:
    s3.create_bucket(Bucket="conf")
    assert "Status" not in s3.get_bucket_versioning(Bucket="conf")
    for status in ("Enabled", "Suspended", "Enabled"):
        s3.put_bucket_versioning(Bucket="conf", VersioningConfiguration={"Status": status})
        assert s3.get_bucket_versioning(Bucket="conf")["Status"] == status
    status, code, _ = error_of(
        s3.put_bucket_versioning, Bucket="conf", VersioningConfiguration={"Status": "On"}
    )
    assert (status, code) == (400, "IllegalVersioningConfigurationException")
    status, code, _ = error_of(
        s3.put_bucket_versioning,
        Bucket="conf",
        VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
        MFA="123 456",
    )
    assert (status, code) == (501, "NotImplemented")
    status, code, _ = error_of(s3.get_bucket_versioning, Bucket="no-such-bucket")
    assert (status, code) == (404, "NoSuchBucket")
    assert s3.get_bucket_versioning(Bucket="conf")["Status"] == "Enabled"
    s3.delete_bucket(Bucket="conf")


def test_enabled_versions_markers_and_copies(s3) -> None:
    s3.create_bucket(Bucket="ver")
    s3.put_object(Bucket="ver", Key="k", Body=b"null version")
    s3.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="ver", Key="k", Body=b"one", ServerSideEncryption="AES256")
    v2 = s3.put_object(Bucket="ver", Key="k", Body=b"two", ServerSideEncryption="AES256")
    id1, id2 = v1["VersionId"], v2["VersionId"]
    assert id1 != id2 and "null" not in (id1, id2)
    got = s3.get_object(Bucket="ver", Key="k")
    assert got["Body"].read() == b"two" and got["VersionId"] == id2
    old = s3.get_object(Bucket="ver", Key="k", VersionId=id1)
    assert old["Body"].read() == b"one" and old["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket="ver", Key="k", VersionId="null")["Body"].read() == b"null version"
    acl = s3.get_object_acl(Bucket="ver", Key="k", VersionId=id1)
    assert acl["Grants"][0]["Permission"] == "FULL_CONTROL"

    copied = s3.copy_object(
        Bucket="ver", Key="restored", CopySource={"Bucket": "ver", "Key": "k", "VersionId": id1}
    )
    assert copied["CopySourceVersionId"] == id1 and copied["VersionId"]
    assert s3.get_object(Bucket="ver", Key="restored")["Body"].read() == b"one"
    back = s3.copy_object(  # restore an old version onto its own key: allowed
        Bucket="ver", Key="k", CopySource={"Bucket": "ver", "Key": "k", "VersionId": id1}
    )
    assert back["VersionId"] not in (id1, id2)
    s3.delete_object(Bucket="ver", Key="k", VersionId=back["VersionId"])

    upload = s3.create_multipart_upload(Bucket="ver", Key="mp", ServerSideEncryption="AES256")
    part = s3.upload_part_copy(
        Bucket="ver",
        Key="mp",
        UploadId=upload["UploadId"],
        PartNumber=1,
        CopySource={"Bucket": "ver", "Key": "k", "VersionId": id1},
    )
    assert part["CopySourceVersionId"] == id1
    done = s3.complete_multipart_upload(
        Bucket="ver",
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
    )
    assert done["VersionId"] and s3.get_object(Bucket="ver", Key="mp")["Body"].read() == b"one"

    marker = s3.delete_object(Bucket="ver", Key="k")
    assert marker["DeleteMarker"] is True and marker["VersionId"] not in (id1, id2)
    status, code, headers = error_of(s3.get_object, Bucket="ver", Key="k")
    assert (status, code) == (404, "NoSuchKey")
    assert headers["x-amz-delete-marker"] == "true"
    assert headers["x-amz-version-id"] == marker["VersionId"]
    status, _, headers = error_of(s3.head_object, Bucket="ver", Key="k")
    assert status == 404 and headers["x-amz-delete-marker"] == "true"
    status, code, headers = error_of(
        s3.get_object, Bucket="ver", Key="k", VersionId=marker["VersionId"]
    )
    assert (status, code) == (405, "MethodNotAllowed")
    assert headers["x-amz-delete-marker"] == "true" and "last-modified" in headers
    status, code, _ = error_of(
        s3.copy_object,
        Bucket="ver",
        Key="x",
        CopySource={"Bucket": "ver", "Key": "k", "VersionId": marker["VersionId"]},
    )
    assert (status, code) == (400, "InvalidRequest")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="ver")["Contents"]] == ["mp", "restored"]
    assert versions_of(s3, "ver")[:4] == [
        ("k", marker["VersionId"], True, True),
        ("k", id2, False, False),
        ("k", id1, False, False),
        ("k", "null", False, False),
    ]

    status, code, _ = error_of(s3.delete_bucket, Bucket="ver")
    assert (status, code) == (409, "BucketNotEmpty")
    gone = s3.delete_object(Bucket="ver", Key="k", VersionId=marker["VersionId"])
    assert gone["DeleteMarker"] is True and gone["VersionId"] == marker["VersionId"]
    assert s3.get_object(Bucket="ver", Key="k")["Body"].read() == b"two"
    everything = [(k, v) for k, v, _, _ in versions_of(s3, "ver")]
    result = s3.delete_objects(
        Bucket="ver",
        Delete={"Objects": [{"Key": k, "VersionId": v} for k, v in everything]},
    )
    assert sorted((d["Key"], d["VersionId"]) for d in result["Deleted"]) == sorted(everything)
    assert versions_of(s3, "ver") == []
    s3.delete_bucket(Bucket="ver")


def test_suspended_writes_replace_the_null_version(s3) -> None:
    s3.create_bucket(Bucket="susp")
    s3.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket="susp", Key="k", Body=b"kept")["VersionId"]
    s3.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket="susp", Key="k", Body=b"n1")
    s3.put_object(Bucket="susp", Key="k", Body=b"n2", ServerSideEncryption="AES256")
    assert versions_of(s3, "susp") == [("k", "null", True, False), ("k", kept, False, False)]
    deleted = s3.delete_objects(Bucket="susp", Delete={"Objects": [{"Key": "k"}]})["Deleted"]
    assert deleted == [{"Key": "k", "DeleteMarker": True, "DeleteMarkerVersionId": "null"}]
    assert versions_of(s3, "susp") == [("k", "null", True, True), ("k", kept, False, False)]
    s3.delete_object(Bucket="susp", Key="k", VersionId="null")
    assert s3.get_object(Bucket="susp", Key="k")["Body"].read() == b"kept"
    paginator = s3.get_paginator("list_object_versions")
    for i in range(3):
        s3.put_object(Bucket="susp", Key=f"p{i}", Body=b"x")
    pages = list(paginator.paginate(Bucket="susp", PaginationConfig={"PageSize": 2}))
    assert len(pages) == 2
    assert [v["Key"] for p in pages for v in p.get("Versions", [])] == ["k", "p0", "p1", "p2"]


def test_awscli_and_minio_list_and_delete_versions(srv, s3, tmp_path) -> None:
    from minio.commonconfig import ENABLED
    from minio.versioningconfig import VersioningConfig

    mc = minio_client(srv)
    mc.make_bucket("clients")
    mc.set_bucket_versioning("clients", VersioningConfig(ENABLED))
    assert mc.get_bucket_versioning("clients").status == ENABLED
    ids = [
        s3.put_object(Bucket="clients", Key="obj", Body=b"v%d" % i)["VersionId"] for i in range(3)
    ]
    listed = list(mc.list_objects("clients", include_version=True))
    assert [(o.object_name, o.version_id, o.is_latest) for o in listed] == [
        ("obj", ids[2], "true"),
        ("obj", ids[1], "false"),
        ("obj", ids[0], "false"),
    ]
    mc.remove_object("clients", "obj", version_id=ids[1])
    assert mc.get_object("clients", "obj", version_id=ids[0]).read() == b"v0"

    env = awscli_env(tmp_path)
    aws = [str(BIN / "aws"), "--endpoint-url", srv.endpoint, "s3api"]

    def cli(*args: str) -> dict:
        proc = subprocess.run(
            [*aws, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        assert ROOT_PASSWORD not in proc.stdout + proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    out = cli("list-object-versions", "--bucket", "clients")
    assert [v["VersionId"] for v in out["Versions"]] == [ids[2], ids[0]]
    cli("delete-object", "--bucket", "clients", "--key", "obj", "--version-id", ids[2])
    assert s3.get_object(Bucket="clients", Key="obj")["Body"].read() == b"v0"
    cli("delete-object", "--bucket", "clients", "--key", "obj", "--version-id", ids[0])
    assert "Versions" not in cli("list-object-versions", "--bucket", "clients")
    mc.remove_bucket("clients")
