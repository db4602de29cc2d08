"""Browser POST uploads (PostObject) against a real sealstore process (master-key KMS), with
forms signed by two real clients: boto3's ``generate_presigned_post`` and minio-py's
``PostPolicy``/``presigned_post_policy``, sent as multipart/form-data by ``requests``.

Proves: the object, its metadata, Content-Type and SSE-S3/SSE-KMS encryption arrive as a PUT
would store them (ciphertext at rest); 204/200/201/303 answers; ``${filename}``; the policy's
expiry, conditions, field coverage and content-length-range (nothing stored on failure); S3's
codes for bad signatures, unknown keys, malformed policies, missing or misplaced fields, too
large fields, anonymous forms; that ``POST ?delete`` still routes to DeleteObjects; and SSE-C
fields go the same way as SSE-C headers on a PUT.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from sealstore.client.scan import scan_dir
from sealstore.s3.sigv4_canonical import derive_signing_key, signature
from tests.integration.server import (
    REGION,
    ROOT_PASSWORD,
    ROOT_USER,
    ServerProcess,
    base_env,
    make_client,
)

KEY_ID = "post-test-key"
MASTER_KEY = KEY_ID + ":" + hashlib.sha256(b"post object master").hexdigest()


def content(size: int, seed: str) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("post")
    server = ServerProcess(
        root / "data",
        # SSE-C over loopback HTTP for the form's customer-key fields (tests only)
        base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY, SEALSTORE_ALLOW_INSECURE_SSEC="on"),
        root / "server.log",
    ).start()
    server.wait_ready()
    yield server
    server.stop()
    log = server.log_text()
    for secret in (ROOT_PASSWORD, MASTER_KEY.split(":")[1]):
        assert secret not in log


@pytest.fixture(scope="module")
def s3(srv: ServerProcess):
    return srv.client()


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    name = f"post-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name)
    return name


def post(
    srv: ServerProcess,
    bucket: str,
    fields: dict[str, str] | list[tuple[str, str]],
    data: bytes,
    filename: str = "upload.bin",
    **kwargs: Any,
) -> requests.Response:
    """POST a form: fields first (in order), then the file, as a browser does."""
    return requests.post(
        f"{srv.endpoint}/{bucket}",
        data=fields,
        files={"file": (filename, data)},
        timeout=30,
        **kwargs,
    )


def error_of(resp: requests.Response) -> tuple[int, str, str]:
    root = ET.fromstring(resp.content)
    return resp.status_code, root.findtext("Code") or "", root.findtext("Message") or ""


def absent(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("404", "NoSuchKey")
    return False


def presigned(s3, bucket: str, key: str, fields=None, conditions=None, expires: int = 300):
    return s3.generate_presigned_post(
        bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=expires
    )


# =========================================================================== boto3: success


def test_boto3_form_with_metadata_sse_s3_and_201(srv, s3, bucket) -> None:
    data = content(3 * 1024 * 1024 + 17, "big")  # many network reads, delimiter search
    fields = {
        "Content-Type": "text/plain",
        "Cache-Control": "max-age=60",
        "x-amz-meta-color": "blue",
        "success_action_status": "201",
        "x-amz-server-side-encryption": "AES256",
        "acl": "private",
    }
    conditions = [
        ["starts-with", "$key", "uploads/"],
        {"Content-Type": "text/plain"},
        ["starts-with", "$Cache-Control", ""],
        {"x-amz-meta-color": "blue"},
        {"success_action_status": "201"},
        {"x-amz-server-side-encryption": "AES256"},
        {"acl": "private"},
        ["content-length-range", 1, 8 * 1024 * 1024],
    ]
    form = presigned(s3, bucket, "uploads/${filename}", fields, conditions)
    r = post(srv, bucket, form["fields"], data, filename="report.txt")
    assert r.status_code == 201, r.text
    doc = ET.fromstring(r.content)
    assert doc.tag == "PostResponse"
    assert doc.findtext("Bucket") == bucket
    assert doc.findtext("Key") == "uploads/report.txt"
    assert doc.findtext("ETag") == f'"{hashlib.md5(data).hexdigest()}"'
    assert doc.findtext("Location", "").endswith(f"/{bucket}/uploads/report.txt")
    assert r.headers["x-amz-server-side-encryption"] == "AES256"
    head = s3.head_object(Bucket=bucket, Key="uploads/report.txt")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "text/plain"
    assert head["CacheControl"] == "max-age=60"
    assert head["Metadata"] == {"color": "blue"}
    got = s3.get_object(Bucket=bucket, Key="uploads/report.txt")["Body"].read()
    assert got == data
    res = scan_dir(str(srv.data_dir), lambda off, n: data[off : off + n], len(data))
    assert res.ok, f"plaintext at rest: {res.leaks[:2]}"


def test_boto3_form_sse_kms_default_204_and_headers(srv, s3, bucket) -> None:
    fields = {
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": f"arn:aws:kms:{KEY_ID}",
    }
    conditions = [{name: value} for name, value in fields.items()]
    form = presigned(s3, bucket, "kms/obj", fields, conditions)
    r = post(srv, bucket, form["fields"], b"kms payload")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert r.headers["ETag"] == f'"{hashlib.md5(b"kms payload").hexdigest()}"'
    assert r.headers["Location"].endswith(f"/{bucket}/kms/obj")
    assert r.headers["x-amz-server-side-encryption"] == "aws:kms"
    head = s3.head_object(Bucket=bucket, Key="kms/obj")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == f"arn:aws:kms:{KEY_ID}"
    assert head["ContentType"] == "binary/octet-stream"  # no Content-Type field: S3's default
    assert s3.get_object(Bucket=bucket, Key="kms/obj")["Body"].read() == b"kms payload"


def test_status_200_redirect_303_and_ignored_fields(srv, s3, bucket) -> None:
    form = presigned(
        s3, bucket, "s/200", {"success_action_status": "200"}, [{"success_action_status": "200"}]
    )
    fields = {**form["fields"], "x-ignore-note": "not in the policy"}
    r = post(srv, bucket, fields, b"two hundred")
    assert (r.status_code, r.content) == (200, b"")

    target = "https://example.invalid/done?from=form"
    form = presigned(
        s3,
        bucket,
        "s/a b+c",
        {"success_action_redirect": target},
        [{"success_action_redirect": target}],
    )
    r = post(srv, bucket, form["fields"], b"redirected", allow_redirects=False)
    assert r.status_code == 303, r.text
    etag = hashlib.md5(b"redirected").hexdigest()
    assert r.headers["Location"] == (
        f"{target}&bucket={bucket}&key=s%2Fa%20b%2Bc&etag=%22{etag}%22"
    )
    assert s3.get_object(Bucket=bucket, Key="s/a b+c")["Body"].read() == b"redirected"
    # POST ?delete is still DeleteObjects
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "s/200"}, {"Key": "s/a b+c"}]})
    assert absent(s3, bucket, "s/200") and absent(s3, bucket, "s/a b+c")


# =========================================================================== policy failures


def test_content_length_range_stores_nothing(srv, s3, bucket) -> None:
    form = presigned(s3, bucket, "range/obj", conditions=[["content-length-range", 10, 100]])
    status, code, _ = error_of(post(srv, bucket, form["fields"], b"x" * 101))
    assert (status, code) == (400, "EntityTooLarge")
    status, code, _ = error_of(post(srv, bucket, form["fields"], b"x" * 9))
    assert (status, code) == (400, "EntityTooSmall")
    assert absent(s3, bucket, "range/obj")
    assert post(srv, bucket, form["fields"], b"x" * 100).status_code == 204


@pytest.mark.parametrize(
    ("case", "want"),
    [
        ("expired", (403, "AccessDenied", "Invalid according to Policy: Policy expired.")),
        ("extra", (403, "AccessDenied", "Invalid according to Policy: Extra input fields: acl")),
        ("condition", (403, "AccessDenied", "Invalid according to Policy: Policy Condition")),
        ("signature", (403, "SignatureDoesNotMatch", "")),
        ("access-key", (403, "InvalidAccessKeyId", "")),
        (
            "key-after-file",
            (400, "InvalidArgument", "Bucket POST must contain a field named 'key'"),
        ),
        ("anonymous", (403, "AccessDenied", "")),
        ("sigv2", (400, "InvalidRequest", "")),
        ("duplicate", (400, "InvalidArgument", "")),
        ("too-large-fields", (400, "MaxPostPreDataLengthExceededError", "")),
    ],
)
def test_refused_forms(srv, s3, bucket, case: str, want: tuple[int, str, str]) -> None:
    key = f"refused/{case}"
    form = presigned(s3, bucket, key, expires=-5 if case == "expired" else 300)
    fields: Any = dict(form["fields"])
    data = b"refused"
    if case == "extra":
        fields["acl"] = "private"
    elif case == "condition":
        form = presigned(s3, bucket, key, conditions=[["starts-with", "$x-amz-meta-a", "ok"]])
        fields = {**form["fields"], "x-amz-meta-a": "not ok"}
    elif case == "signature":
        fields["x-amz-signature"] = "0" * 64
    elif case == "access-key":
        other = make_client(srv.endpoint, access_key="nobody", secret_key="x" * 20)
        fields = presigned(other, bucket, key)["fields"]
    elif case == "key-after-file":
        del fields["key"]
    elif case == "anonymous":
        fields = {"key": key}
    elif case == "sigv2":
        fields = {"key": key, "AWSAccessKeyId": ROOT_USER, "signature": "x", "policy": "e30="}
    elif case == "duplicate":
        fields = [*fields.items(), ("KEY", "refused/other")]
    elif case == "too-large-fields":
        fields["x-ignore-pad"] = "p" * (21 * 1024)
    resp = post(srv, bucket, fields, data)
    status, code, message = error_of(resp)
    assert (status, code) == want[:2], resp.text
    assert message.startswith(want[2]), message
    assert absent(s3, bucket, key)


def sign_policy(doc: bytes) -> dict[str, str]:
    """A form around a hand-written policy document, signed with the SigV4 POST scheme."""
    now = datetime.now(UTC)
    date = now.strftime("%Y%m%d")
    policy = base64.b64encode(doc).decode()
    key = derive_signing_key(ROOT_PASSWORD, date, REGION)
    return {
        "key": "hand/obj",
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"{ROOT_USER}/{date}/{REGION}/s3/aws4_request",
        "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
        "policy": policy,
        "x-amz-signature": signature(key, policy),
    }


def test_malformed_policy_and_not_a_form(srv, s3, bucket) -> None:
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for doc in (
        b'{"expiration": "' + later.encode() + b'", "conditions": [',
        json.dumps({"expiration": later}).encode(),
        json.dumps({"expiration": later, "conditions": [{}]}).encode(),
    ):
        status, code, _ = error_of(post(srv, bucket, sign_policy(doc), b"x"))
        assert (status, code) == (400, "InvalidPolicyDocument")
    # a policy that covers everything: the hand-signed form itself works
    conditions = [
        {"bucket": bucket},
        {"key": "hand/obj"},
        ["starts-with", "$x-amz-credential", ROOT_USER + "/"],
        ["starts-with", "$x-amz-date", ""],
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
    ]
    doc = json.dumps({"expiration": later, "conditions": conditions}).encode()
    assert post(srv, bucket, sign_policy(doc), b"hand").status_code == 204
    # a POST on a bucket that is not a form: header authentication, then S3's 412
    r = requests.post(f"{srv.endpoint}/{bucket}", data={"key": "k"}, timeout=10)
    assert error_of(r)[:2] == (403, "AccessDenied")
    body = b"--b\r\nContent-Disposition: form-data; name=key\r\n\r\nk\r\n"  # never closed
    r = requests.post(
        f"{srv.endpoint}/{bucket}",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        timeout=10,
    )
    assert error_of(r)[:2] == (400, "MalformedPOSTRequest")


def test_checksum_field_is_verified(srv, s3, bucket) -> None:
    data = b"checked payload"
    good = base64.b64encode(hashlib.sha256(data).digest()).decode()
    bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    for key, value in (("sum/good", good), ("sum/bad", bad)):
        form = presigned(
            s3, bucket, key, {"x-amz-checksum-sha256": value}, [{"x-amz-checksum-sha256": value}]
        )
        r = post(srv, bucket, form["fields"], data)
        if value == good:
            assert r.status_code == 204, r.text
            assert r.headers["x-amz-checksum-sha256"] == good
        else:
            assert error_of(r)[:2] == (400, "BadDigest")
    assert s3.get_object(Bucket=bucket, Key="sum/good")["Body"].read() == data
    assert absent(s3, bucket, "sum/bad")


def test_tagging_field_tags_the_object_and_is_checked(srv, s3, bucket) -> None:
    tagging = (
        "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag>"
        "<Tag><Key>team</Key><Value>ops 1</Value></Tag></TagSet></Tagging>"
    )
    form = presigned(s3, bucket, "tagged/obj", {"tagging": tagging}, [{"tagging": tagging}])
    assert post(srv, bucket, form["fields"], b"tagged").status_code == 204
    got = s3.get_object_tagging(Bucket=bucket, Key="tagged/obj")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in got) == [("k", "v"), ("team", "ops 1")]
    assert (
        s3.head_object(Bucket=bucket, Key="tagged/obj")["ResponseMetadata"]["HTTPHeaders"][
            "x-amz-tagging-count"
        ]
        == "2"
    )
    reserved = "<Tagging><TagSet><Tag><Key>aws:x</Key><Value>v</Value></Tag></TagSet></Tagging>"
    form = presigned(s3, bucket, "tagged/aws", {"tagging": reserved}, [{"tagging": reserved}])
    assert error_of(post(srv, bucket, form["fields"], b"x"))[:2] == (400, "InvalidTag")
    assert absent(s3, bucket, "tagged/aws")
    form = presigned(s3, bucket, "tagged/bad", {"tagging": "<Tagging>"}, [{"tagging": "<Tagging>"}])
    assert error_of(post(srv, bucket, form["fields"], b"x"))[:2] == (400, "MalformedXML")
    assert absent(s3, bucket, "tagged/bad")


# =========================================================================== SSE-C


def test_sse_c_fields_store_an_sse_c_object(srv, s3, bucket) -> None:
    """The form's SSE-C fields do what the same headers do on a PUT: the object opens only
    with that key, the answer echoes the algorithm and key MD5, and the key is not stored."""
    customer_key = os.urandom(32)
    key_md5 = base64.b64encode(hashlib.md5(customer_key).digest()).decode()
    fields = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(customer_key).decode(),
        "x-amz-server-side-encryption-customer-key-MD5": key_md5,
    }
    conditions = [{name: value} for name, value in fields.items()]
    form = presigned(s3, bucket, "ssec/obj", fields, conditions)
    r = post(srv, bucket, form["fields"], b"customer keyed")
    assert r.status_code == 204, r.text
    assert r.headers["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    assert r.headers["x-amz-server-side-encryption-customer-key-MD5"] == key_md5
    got = s3.get_object(
        Bucket=bucket, Key="ssec/obj", SSECustomerAlgorithm="AES256", SSECustomerKey=customer_key
    )
    assert got["Body"].read() == b"customer keyed"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="ssec/obj")
    assert exc.value.response["Error"]["Code"] == "InvalidRequest"
    with pytest.raises(ClientError) as exc:
        s3.get_object(
            Bucket=bucket,
            Key="ssec/obj",
            SSECustomerAlgorithm="AES256",
            SSECustomerKey=os.urandom(32),
        )
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    bad = dict(
        fields, **{"x-amz-server-side-encryption-customer-key-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="}
    )
    form = presigned(s3, bucket, "ssec/bad", bad, [{n: v} for n, v in bad.items()])
    assert error_of(post(srv, bucket, form["fields"], b"x"))[:2] == (400, "InvalidArgument")
    assert absent(s3, bucket, "ssec/bad")


# =========================================================================== minio-py


def test_minio_presigned_post_policy(srv, s3, bucket) -> None:
    from minio import Minio
    from minio.datatypes import PostPolicy

    client = Minio(
        srv.endpoint.removeprefix("http://"),
        access_key=ROOT_USER,
        secret_key=ROOT_PASSWORD,
        secure=False,
        region=REGION,
    )
    policy = PostPolicy(bucket, datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=5))
    policy.add_starts_with_condition("key", "minio/")
    policy.add_equals_condition("Content-Type", "image/png")
    policy.add_starts_with_condition("x-amz-meta-owner", "team-")
    policy.add_content_length_range_condition(1, 1024 * 1024)
    form = client.presigned_post_policy(policy)
    data = content(200_000, "minio")
    fields = {
        **form,
        "key": "minio/${filename}",
        "Content-Type": "image/png",
        "x-amz-meta-owner": "team-a",
    }
    r = post(srv, bucket, fields, data, filename="pic.png")
    assert r.status_code == 204, r.text
    head = s3.head_object(Bucket=bucket, Key="minio/pic.png")
    assert head["ContentType"] == "image/png"
    assert head["Metadata"] == {"owner": "team-a"}
    stat = client.stat_object(bucket, "minio/pic.png")
    assert stat.etag == hashlib.md5(data).hexdigest()
    assert client.get_object(bucket, "minio/pic.png").read() == data
    # the same form with a key outside the policy's prefix is refused, nothing stored
    r = post(srv, bucket, {**fields, "key": "elsewhere/pic.png"}, data)
    assert error_of(r)[:2] == (403, "AccessDenied")
    assert absent(s3, bucket, "elsewhere/pic.png")
