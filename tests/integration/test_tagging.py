"""Object and bucket tagging against a real sealstore process (SSE-S3 under the master-key KMS),
driven by boto3, awscli and the minio Python SDK.

It proves AWS S3's behaviour end to end: tags from ``x-amz-tagging`` on PutObject, on
CreateMultipartUpload (applied on completion) and through CopyObject's tagging directive;
Put/Get/DeleteObjectTagging (empty TagSet when untagged, 204 on delete) with AWS's limits and
codes (11 tags BadRequest, long key or value InvalidTag, MalformedXML); ``x-amz-tagging-count``
on GET and HEAD only for tagged objects; tags never shown as ``x-amz-meta-*``; retagging an
encrypted object leaves its data, ETag and Last-Modified alone and it still decrypts; and
Put/Get/DeleteBucketTagging (404 NoSuchTagSet, 50-tag limit, Content-MD5 required).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, base_env
from tests.integration.test_clients import BIN, awscli_env, minio_client, run

MASTER_KEY = "tagging-key:" + hashlib.sha256(b"tagging master").hexdigest()
BUCKET = "tags"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("tagging")
    (root / "data").mkdir()
    server = ServerProcess(
        root / "data",
        base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY, MINIO_SSE_AUTO_ENCRYPTION="on"),
        root / "server.log",
    ).start()
    server.wait_ready()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3(srv: ServerProcess) -> Any:
    return srv.client()


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    resp = exc.value.response
    return (
        resp["ResponseMetadata"]["HTTPStatusCode"],
        resp["Error"]["Code"],
        resp["Error"].get("Message", ""),
    )


def tagset(n: int, key_len: int = 0, value_len: int = 0) -> dict[str, Any]:
    """s3-tests' tag sets: ``n`` tags ``k<i>``/``v<i>``, padded with x to the given lengths."""

    def text(prefix: str, size: int) -> str:
        return (prefix + "x" * size)[:size] if size else prefix

    return {
        "TagSet": [
            {"Key": text(f"k{i}", key_len), "Value": text(f"v{i}", value_len)} for i in range(n)
        ]
    }


def strip_integrity(request: Any) -> None:
    """Drop the body's length and checksum headers (a hook changing what boto3 sends)."""
    for name in list(request.headers):
        if name.lower().startswith(
            ("content-md5", "content-length", "x-amz-checksum", "x-amz-sdk-checksum")
        ):
            del request.headers[name]


def tags_of(s3: Any, key: str, bucket: str = BUCKET) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


# ----------------------------------------------------------------------------- boto3


def test_put_object_with_tags_counts_them_on_get_and_head(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="obj", Body=b"hello", Tagging="foo=bar&bar=&sp%20ace=a+b")
    assert tags_of(s3, "obj") == {"foo": "bar", "bar": "", "sp ace": "a b"}
    get = s3.get_object(Bucket=BUCKET, Key="obj")
    assert get["Body"].read() == b"hello" and get["TagCount"] == 3
    head = s3.head_object(Bucket=BUCKET, Key="obj")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    assert head["Metadata"] == {} and head["ServerSideEncryption"] == "AES256"

    s3.put_object(Bucket=BUCKET, Key="plain", Body=b"p")
    assert s3.get_object_tagging(Bucket=BUCKET, Key="plain")["TagSet"] == []
    assert (
        "x-amz-tagging-count"
        not in s3.head_object(Bucket=BUCKET, Key="plain")["ResponseMetadata"]["HTTPHeaders"]
    )


def test_retagging_changes_no_data(s3: Any) -> None:
    data = b"encrypted body " * 5000
    s3.put_object(Bucket=BUCKET, Key="retag", Body=data, Metadata={"m": "1"})
    before = s3.head_object(Bucket=BUCKET, Key="retag")
    s3.put_object_tagging(Bucket=BUCKET, Key="retag", Tagging=tagset(10))
    assert tags_of(s3, "retag") == {f"k{i}": f"v{i}" for i in range(10)}
    s3.put_object_tagging(Bucket=BUCKET, Key="retag", Tagging=tagset(1, 128, 256))
    assert list(tags_of(s3, "retag").items()) == [("k0" + "x" * 126, "v0" + "x" * 254)]
    after = s3.get_object(Bucket=BUCKET, Key="retag")
    assert after["Body"].read() == data and after["Metadata"] == {"m": "1"}
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])
    deleted = s3.delete_object_tagging(Bucket=BUCKET, Key="retag")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object_tagging(Bucket=BUCKET, Key="retag")["TagSet"] == []


@pytest.mark.parametrize(
    ("tagging", "expected"),
    [
        (tagset(11), (400, "BadRequest", "Object tags cannot be greater than 10")),
        (tagset(10, 129, 256), (400, "InvalidTag", "The TagKey you have provided is invalid")),
        (tagset(10, 128, 259), (400, "InvalidTag", "The TagValue you have provided is invalid")),
        (
            {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]},
            (400, "InvalidTag", "Cannot provide multiple Tags with the same key"),
        ),
        (
            {"TagSet": [{"Key": "aws:x", "Value": "1"}]},
            (400, "InvalidTag", "Your TagKey cannot be prefixed with aws:"),
        ),
    ],
)
def test_refused_tag_sets_store_nothing(
    s3: Any, tagging: dict[str, Any], expected: tuple[int, str, str]
) -> None:
    s3.put_object(Bucket=BUCKET, Key="limits", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=BUCKET, Key="limits", Tagging=tagging)
    assert error(exc) == expected
    assert s3.get_object_tagging(Bucket=BUCKET, Key="limits")["TagSet"] == []


def test_bad_header_and_document_and_missing_object(srv: ServerProcess, s3: Any) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=BUCKET, Key="dup", Body=b"x", Tagging="a=1&a=2")
    assert error(exc)[:2] == (400, "InvalidArgument")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=BUCKET, Key="dup", Body=b"x", Tagging="k*=v")
    assert error(exc)[:2] == (400, "InvalidTag")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="dup")  # nothing was stored
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=BUCKET, Key="absent")
    assert error(exc)[:2] == (404, "NoSuchKey")

    raw = srv.client()

    def replace_body(request: Any, **_: Any) -> None:
        request.data = b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>"
        strip_integrity(request)

    raw.meta.events.register("before-sign.s3.PutObjectTagging", replace_body)
    s3.put_object(Bucket=BUCKET, Key="xml", Body=b"x")
    with pytest.raises(ClientError) as exc:
        raw.put_object_tagging(Bucket=BUCKET, Key="xml", Tagging=tagset(1))
    assert error(exc)[:2] == (400, "MalformedXML")


def test_copy_directives(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="src", Body=b"source", Tagging="a=1")
    source = {"Bucket": BUCKET, "Key": "src"}
    s3.copy_object(Bucket=BUCKET, Key="c-default", CopySource=source)
    assert tags_of(s3, "c-default") == {"a": "1"}
    s3.copy_object(
        Bucket=BUCKET, Key="c-replace", CopySource=source, TaggingDirective="REPLACE", Tagging="b=2"
    )
    assert tags_of(s3, "c-replace") == {"b": "2"}
    s3.copy_object(Bucket=BUCKET, Key="c-none", CopySource=source, TaggingDirective="REPLACE")
    assert tags_of(s3, "c-none") == {}
    s3.copy_object(
        Bucket=BUCKET,
        Key="c-meta",
        CopySource=source,
        MetadataDirective="REPLACE",
        Metadata={"n": "1"},
        Tagging="ignored=yes",
    )
    assert tags_of(s3, "c-meta") == {"a": "1"}  # tagging directive COPY: header ignored
    # A tagging REPLACE is a change: an object may be copied onto itself with new tags.
    s3.copy_object(
        Bucket=BUCKET, Key="src", CopySource=source, TaggingDirective="REPLACE", Tagging="c=3"
    )
    assert tags_of(s3, "src") == {"c": "3"}
    assert s3.get_object(Bucket=BUCKET, Key="src")["Body"].read() == b"source"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=BUCKET, Key="c-bad", CopySource=source, TaggingDirective="MERGE")
    assert error(exc) == (400, "InvalidArgument", "Unknown tagging directive.")


def test_multipart_upload_tags_apply_on_completion(s3: Any) -> None:
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="mp", Tagging="stage=done")
    part = s3.upload_part(
        Bucket=BUCKET, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"part"
    )
    with pytest.raises(ClientError):
        s3.get_object_tagging(Bucket=BUCKET, Key="mp")  # nothing visible before completion
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert tags_of(s3, "mp") == {"stage": "done"}
    assert s3.get_object(Bucket=BUCKET, Key="mp")["TagCount"] == 1
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=BUCKET, Key="mp2", Tagging="=v")
    assert error(exc)[:2] == (400, "InvalidArgument")


def test_bucket_tagging(srv: ServerProcess, s3: Any) -> None:
    s3.create_bucket(Bucket="btags")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket="btags")
    assert error(exc)[:2] == (404, "NoSuchTagSet")
    put = s3.put_bucket_tagging(Bucket="btags", Tagging=tagset(50))
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert len(s3.get_bucket_tagging(Bucket="btags")["TagSet"]) == 50
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket="btags", Tagging=tagset(51))
    assert error(exc) == (400, "BadRequest", "Bucket tag count cannot be greater than 50")
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket="btags", Tagging={"TagSet": [{"Key": "aws:a", "Value": ""}]})
    assert error(exc)[:2] == (400, "InvalidTag")
    assert len(s3.get_bucket_tagging(Bucket="btags")["TagSet"]) == 50  # unchanged
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket="no-such-bucket", Tagging=tagset(1))
    assert error(exc)[:2] == (404, "NoSuchBucket")

    raw = srv.client()

    raw.meta.events.register(
        "before-sign.s3.PutBucketTagging", lambda request, **_: strip_integrity(request)
    )
    with pytest.raises(ClientError) as exc:
        raw.put_bucket_tagging(Bucket="btags", Tagging=tagset(1))
    assert error(exc)[:2] == (400, "InvalidRequest")

    assert s3.delete_bucket_tagging(Bucket="btags")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket="btags")
    assert error(exc)[:2] == (404, "NoSuchTagSet")
    s3.delete_bucket(Bucket="btags")


# ----------------------------------------------------------------------------- awscli


def test_awscli(srv: ServerProcess, s3: Any, tmp_path: Path) -> None:
    env = awscli_env(tmp_path)
    api = [str(BIN / "aws"), "--endpoint-url", srv.endpoint, "--output", "json", "s3api"]
    body = tmp_path / "body.txt"
    body.write_bytes(b"from awscli")
    target = ["--bucket", BUCKET, "--key", "cli/obj"]
    run([*api, "put-object", *target, "--body", str(body), "--tagging", "team=ops&tier="], env)
    got = json.loads(run([*api, "get-object-tagging", *target], env))
    assert got["TagSet"] == [{"Key": "team", "Value": "ops"}, {"Key": "tier", "Value": ""}]
    run([*api, "put-object-tagging", *target, "--tagging", "TagSet=[{Key=k,Value=v}]"], env)
    assert tags_of(s3, "cli/obj") == {"k": "v"}
    head = json.loads(run([*api, "head-object", *target], env))
    assert head["TagCount"] == 1 and not head.get("Metadata")
    run([*api, "delete-object-tagging", *target], env)
    assert tags_of(s3, "cli/obj") == {}
    run(
        [*api, "put-bucket-tagging", "--bucket", BUCKET, "--tagging", "TagSet=[{Key=b,Value=1}]"],
        env,
    )
    got = json.loads(run([*api, "get-bucket-tagging", "--bucket", BUCKET], env))
    assert got["TagSet"] == [{"Key": "b", "Value": "1"}]
    run([*api, "delete-bucket-tagging", "--bucket", BUCKET], env)


# ----------------------------------------------------------------------------- minio SDK


def test_minio_sdk(srv: ServerProcess, s3: Any) -> None:
    from minio.commonconfig import Tags

    mc = minio_client(srv)
    tags = Tags.new_object_tags()
    tags["project"] = "sealstore"
    tags["env"] = "test"
    mc.put_object(BUCKET, "minio/obj", io.BytesIO(b"minio"), 5, tags=tags)
    assert dict(mc.get_object_tags(BUCKET, "minio/obj") or {}) == {
        "project": "sealstore",
        "env": "test",
    }
    retag = Tags.new_object_tags()
    retag["only"] = "one"
    mc.set_object_tags(BUCKET, "minio/obj", retag)
    assert tags_of(s3, "minio/obj") == {"only": "one"}
    mc.delete_object_tags(BUCKET, "minio/obj")
    assert not mc.get_object_tags(BUCKET, "minio/obj")

    btags = Tags.new_bucket_tags()
    btags["owner"] = "lead"
    mc.set_bucket_tags(BUCKET, btags)
    assert dict(mc.get_bucket_tags(BUCKET) or {}) == {"owner": "lead"}
    mc.delete_bucket_tags(BUCKET)
    assert mc.get_bucket_tags(BUCKET) is None
    resp = mc.get_object(BUCKET, "minio/obj")
    try:
        assert resp.read() == b"minio"
    finally:
        resp.close()
        resp.release_conn()
