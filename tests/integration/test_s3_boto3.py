"""A real sealstore process driven by boto3: S3 semantics, SSE-S3 with the master key,
authentication failures, at-rest encryption and the MinIO on-disk format.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from sealstore.crypto import dare, keys
from sealstore.objects import metadata as sse
from tests.integration.server import ROOT_PASSWORD, ServerProcess, base_env, make_client

MASTER_KEY = "sealstore-test-key:" + hashlib.sha256(b"integration master").hexdigest()
PKG = 65536


def body_of(size: int, seed: str = "x") -> bytes:
    """Deterministic, non-repeating content (every 16-byte window is distinctive)."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{i}".encode()).hexdigest().encode()
        i += 1
    return bytes(out[:size])


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
def mk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("mk")
    env = base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY)
    srv = ServerProcess(root / "data", env, root / "server.log").start()
    srv.wait_ready()
    yield srv
    srv.stop()
    log = srv.log_text()
    for secret in (ROOT_PASSWORD, MASTER_KEY, MASTER_KEY.split(":")[1]):
        assert secret not in log


@pytest.fixture(scope="module")
def s3(mk_server: ServerProcess):
    return mk_server.client()


@pytest.fixture
def bucket(s3) -> str:
    name = f"b-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name)
    return name


# ------------------------------------------------------------------------- buckets


def test_bucket_lifecycle(s3) -> None:
    s3.create_bucket(Bucket="life-cycle")
    assert "life-cycle" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="life-cycle")
    assert s3.get_bucket_location(Bucket="life-cycle").get("LocationConstraint") in (None, "")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="life-cycle")
    assert code_of(e) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="life-cycle", Key="k", Body=b"v")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="life-cycle")
    assert code_of(e) == "BucketNotEmpty"
    s3.delete_object(Bucket="life-cycle", Key="k")
    s3.delete_bucket(Bucket="life-cycle")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="life-cycle")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_bucket_errors(s3) -> None:
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="Bad_Name")
    assert code_of(e) == "InvalidBucketName"
    with pytest.raises(ClientError) as e:
        s3.create_bucket(
            Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    assert code_of(e) == "InvalidLocationConstraint"
    s3.create_bucket(
        Bucket="same-region", CreateBucketConfiguration={"LocationConstraint": "us-east-1"}
    )
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="no-such-bucket-x", Key="k", Body=b"v")
    assert code_of(e) == "NoSuchBucket"


# ------------------------------------------------------------------------- objects


def test_plain_put_get_head_delete_with_metadata(s3, bucket: str) -> None:
    data = body_of(1000)
    r = s3.put_object(
        Bucket=bucket,
        Key="dir/a b+c.txt",
        Body=data,
        ContentType="text/plain",
        Metadata={"Color": "blue", "n": "1"},
        CacheControl="no-cache",
    )
    assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert "ServerSideEncryption" not in r
    g = s3.get_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert g["Body"].read() == data
    assert g["ContentType"] == "text/plain"
    assert g["Metadata"] == {"color": "blue", "n": "1"}
    assert g["CacheControl"] == "no-cache"
    h = s3.head_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert h["ContentLength"] == 1000
    assert not any(
        k.lower().startswith("x-minio-internal") for k in h["ResponseMetadata"]["HTTPHeaders"]
    )
    s3.delete_object(Bucket=bucket, Key="dir/a b+c.txt")
    s3.delete_object(Bucket=bucket, Key="dir/a b+c.txt")  # idempotent, 204
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert code_of(e) == "NoSuchKey"


@pytest.mark.parametrize("key", ["a/../../etc/passwd", "../x", "./y", "nul\x00byte", "/abs"])
def test_escaping_keys_are_rejected(s3, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert code_of(e) in ("InvalidArgument", "InvalidURI")


def test_content_md5(s3, bucket: str) -> None:
    data = b"hello world"
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=data, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5", Body=data, ContentMD5=bad)
    assert code_of(e) == "BadDigest"
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == data


@pytest.mark.parametrize("size", [0, 1, PKG - 1, PKG, PKG + 1, 3 * PKG + 5, 5 * 1024 * 1024 + 3])
def test_sse_roundtrip_sizes(s3, bucket: str, size: int) -> None:
    data = body_of(size, seed=str(size))
    r = s3.put_object(Bucket=bucket, Key=f"obj-{size}", Body=data, ServerSideEncryption="AES256")
    assert r["ServerSideEncryption"] == "AES256"
    assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    g = s3.get_object(Bucket=bucket, Key=f"obj-{size}")
    assert g["ServerSideEncryption"] == "AES256"
    assert g["ContentLength"] == size
    assert hashlib.sha256(g["Body"].read()).digest() == hashlib.sha256(data).digest()
    h = s3.head_object(Bucket=bucket, Key=f"obj-{size}")
    assert h["ServerSideEncryption"] == "AES256"
    assert h["ContentLength"] == size
    assert h["ETag"] == r["ETag"]


def test_ranges_on_encrypted_object_across_packages(s3, bucket: str) -> None:
    size = 4 * PKG + 1234
    data = body_of(size, "ranges")
    s3.put_object(Bucket=bucket, Key="r", Body=data, ServerSideEncryption="AES256")
    cases = [
        (0, 0),
        (0, 15),
        (PKG - 10, PKG + 10),
        (PKG, PKG),
        (PKG - 1, 3 * PKG + 1),
        (2 * PKG + 7, size - 1),
        (size - 1, size - 1),
    ]
    for a, b in cases:
        g = s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={a}-{b}")
        assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert g["ContentRange"] == f"bytes {a}-{b}/{size}"
        assert g["Body"].read() == data[a : b + 1], (a, b)
    g = s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={3 * PKG}-")
    assert g["Body"].read() == data[3 * PKG :]
    g = s3.get_object(Bucket=bucket, Key="r", Range="bytes=-70000")
    assert g["Body"].read() == data[-70000:]
    g = s3.get_object(Bucket=bucket, Key="r", Range=f"bytes=10-{size * 2}")
    assert g["Body"].read() == data[10:]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={size}-")
    assert code_of(e) == "InvalidRange"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_conditional_requests(s3, bucket: str) -> None:
    r = s3.put_object(Bucket=bucket, Key="c", Body=b"cond", ServerSideEncryption="AES256")
    etag = r["ETag"]
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"cond"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123"')
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"cond"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="c", IfNoneMatch="*")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_response_overrides(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    g = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/json",
        ResponseContentDisposition="attachment; filename=o.json",
    )
    assert g["ContentType"] == "application/json"
    assert g["ContentDisposition"] == "attachment; filename=o.json"


# ------------------------------------------------------------------------- copy


def test_copy_plain_to_encrypted_and_back(s3, bucket: str) -> None:
    data = body_of(3 * PKG + 17, "copy")
    s3.put_object(Bucket=bucket, Key="src", Body=data, Metadata={"a": "1"})
    r = s3.copy_object(
        Bucket=bucket,
        Key="enc copy",
        CopySource={"Bucket": bucket, "Key": "src"},
        ServerSideEncryption="AES256",
    )
    assert r["ServerSideEncryption"] == "AES256"
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    g = s3.get_object(Bucket=bucket, Key="enc copy")
    assert g["ServerSideEncryption"] == "AES256"
    assert g["Metadata"] == {"a": "1"}
    assert g["Body"].read() == data
    # enc -> enc into another bucket with REPLACE metadata: new key bound to the new path
    s3.create_bucket(Bucket=bucket + "-2")
    s3.copy_object(
        Bucket=bucket + "-2",
        Key="x/y",
        CopySource=f"{bucket}/enc copy",  # botocore URL-encodes it
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="text/csv",
    )
    g = s3.get_object(Bucket=bucket + "-2", Key="x/y")
    assert g["Metadata"] == {"b": "2"}
    assert g["ContentType"] == "text/csv"
    assert g["ServerSideEncryption"] == "AES256"  # encrypted source stays encrypted at rest
    assert g["Body"].read() == data


def test_copy_onto_itself_needs_a_change(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="self", Body=b"same", Metadata={"v": "1"})
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})
    assert code_of(e) == "InvalidRequest"
    s3.copy_object(
        Bucket=bucket,
        Key="self",
        CopySource={"Bucket": bucket, "Key": "self"},
        MetadataDirective="REPLACE",
        Metadata={"v": "2"},
    )
    assert s3.head_object(Bucket=bucket, Key="self")["Metadata"] == {"v": "2"}
    r = s3.copy_object(
        Bucket=bucket,
        Key="self",
        CopySource={"Bucket": bucket, "Key": "self"},
        ServerSideEncryption="AES256",
    )
    assert r["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="self")["Body"].read() == b"same"


def test_copy_source_conditions(s3, bucket: str) -> None:
    r = s3.put_object(Bucket=bucket, Key="cs", Body=b"cs")
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=bucket, Key="cs2", CopySource=f"{bucket}/cs", CopySourceIfMatch='"nope"'
        )
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    s3.copy_object(Bucket=bucket, Key="cs2", CopySource=f"{bucket}/cs", CopySourceIfMatch=r["ETag"])
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="cs3", CopySource=f"{bucket}/missing")
    assert code_of(e) == "NoSuchKey"


# ------------------------------------------------------------------------- SSE variants


def test_sse_kms_roundtrip_and_format(mk_server: ServerProcess, s3, bucket: str) -> None:
    """aws:kms with a key id and a client context: MinIO's SSE-KMS metadata, domain SSE-KMS."""
    import json

    from sealstore.crypto.kms_context import encode_context
    from sealstore.kms.master_key import MasterKeyKMS
    from sealstore.storage.fs import FSBackend

    data = body_of(PKG + 5, "kms")
    client_ctx = {"project": "sealstore"}
    r = s3.put_object(
        Bucket=bucket,
        Key="kms/obj",
        Body=data,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId="arn:aws:kms:sealstore-test-key",
        SSEKMSEncryptionContext=base64.b64encode(json.dumps(client_ctx).encode()).decode(),
    )
    assert r["ServerSideEncryption"] == "aws:kms"
    assert r["SSEKMSKeyId"] == "arn:aws:kms:sealstore-test-key"
    g = s3.get_object(Bucket=bucket, Key="kms/obj")
    assert g["ServerSideEncryption"] == "aws:kms"
    assert g["SSEKMSKeyId"] == "arn:aws:kms:sealstore-test-key"
    assert g["Body"].read() == data
    g = s3.get_object(Bucket=bucket, Key="kms/obj", Range=f"bytes={PKG - 2}-{PKG + 2}")
    assert g["Body"].read() == data[PKG - 2 : PKG + 3]
    # default key when no key id is given; an unknown key id is 400 KMS.NotFoundException
    r = s3.put_object(Bucket=bucket, Key="kms/default", Body=b"d", ServerSideEncryption="aws:kms")
    assert r["SSEKMSKeyId"] == "sealstore-test-key"  # the key id as given; none: the default's
    r = s3.put_object(
        Bucket=bucket,
        Key="kms/bare",
        Body=b"d",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId="sealstore-test-key",
    )
    assert r["SSEKMSKeyId"] == "sealstore-test-key"
    g = s3.head_object(Bucket=bucket, Key="kms/bare")
    assert g["SSEKMSKeyId"] == "sealstore-test-key"
    # AWS: a KMS key id without aws:kms, and an unknown method, are 400 InvalidArgument
    for bad in ({"SSEKMSKeyId": "sealstore-test-key"}, {"ServerSideEncryption": "AES512"}):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="kms/bad", Body=b"x", **bad)
        assert code_of(e) == "InvalidArgument"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        s3.put_object(
            Bucket=bucket,
            Key="kms/x",
            Body=b"x",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId="nope",
        )
    assert code_of(e) == "KMS.NotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # copy keeps SSE-KMS (same key id and context) at the new path
    s3.copy_object(Bucket=bucket, Key="kms/copy", CopySource=f"{bucket}/kms/obj")
    g = s3.get_object(Bucket=bucket, Key="kms/copy")
    assert g["SSEKMSKeyId"] == "arn:aws:kms:sealstore-test-key"
    assert g["Body"].read() == data
    with pytest.raises(ClientError) as e:
        s3.put_object(
            Bucket=bucket,
            Key="bad",
            Body=b"x",
            ServerSideEncryption="aws:kms",
            SSEKMSEncryptionContext="not base64 json",
        )
    assert code_of(e) == "InvalidArgument"

    async def inspect() -> tuple[dict[str, str], bytes]:
        store = FSBackend(mk_server.data_dir)
        await store.open()
        try:
            meta = await store.head(bucket, "kms/obj")
            return dict(meta.internal), b"".join([c async for c in store.read(meta)])
        finally:
            await store.close()

    internal, raw = asyncio.run(inspect())
    assert sse.META_KMS_SEALED_KEY in internal and sse.META_S3_SEALED_KEY not in internal
    assert internal[sse.META_S3_KMS_KEY_ID] == "sealstore-test-key"
    assert base64.b64decode(internal[sse.META_CONTEXT]) == encode_context(client_ctx)
    kms = MasterKeyKMS.from_env_value(MASTER_KEY)
    full_ctx = {**client_ctx, bucket: f"{bucket}/kms/obj"}
    dek = asyncio.run(
        kms.decrypt_key(
            "sealstore-test-key", base64.b64decode(internal[sse.META_S3_KMS_SEALED_KEY]), full_ctx
        )
    )
    sealed = keys.SealedKey(
        iv=base64.b64decode(internal[sse.META_IV]),
        algorithm="DAREv2-HMAC-SHA256",
        key=base64.b64decode(internal[sse.META_KMS_SEALED_KEY]),
    )
    oek = keys.unseal_object_key(sealed, dek, "SSE-KMS", bucket, "kms/obj")
    assert dare.decrypt(oek, raw) == data


def test_no_kms_means_501(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d", base_env(), tmp_path / "log").start()
    try:
        c = srv.client()
        c.create_bucket(Bucket="plain")
        c.put_object(Bucket="plain", Key="p", Body=b"ok")
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket="plain", Key="e", Body=b"x", ServerSideEncryption="AES256")
        assert code_of(e) == "NotImplemented"
        assert "KMS is not configured" in e.value.response["Error"]["Message"]
        assert srv.ready()[0] == 200
    finally:
        srv.stop()


def test_auto_encryption(tmp_path: Path) -> None:
    env = base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY, MINIO_SSE_AUTO_ENCRYPTION="on")
    srv = ServerProcess(tmp_path / "d", env, tmp_path / "log").start()
    try:
        c = srv.client()
        c.create_bucket(Bucket="auto")
        r = c.put_object(Bucket="auto", Key="a", Body=b"auto-encrypted body" * 10)
        assert r["ServerSideEncryption"] == "AES256"
        assert c.head_object(Bucket="auto", Key="a")["ServerSideEncryption"] == "AES256"
        assert c.get_object(Bucket="auto", Key="a")["Body"].read() == b"auto-encrypted body" * 10
    finally:
        srv.stop()


def test_bucket_default_encryption(s3, bucket: str) -> None:
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    r = s3.put_object(Bucket=bucket, Key="d", Body=b"by default")
    assert r["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="d")["Body"].read() == b"by default"


# ------------------------------------------------------------------------- auth


def test_wrong_secret_is_signature_does_not_match(mk_server: ServerProcess) -> None:
    bad = make_client(mk_server.endpoint, secret_key="wrong-secret-123456")
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert code_of(e) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_access_key(mk_server: ServerProcess) -> None:
    bad = make_client(mk_server.endpoint, access_key="nobody")
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert code_of(e) == "InvalidAccessKeyId"


def test_unsigned_request_denied(mk_server: ServerProcess, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="secret", Body=b"top secret")
    r = requests.get(f"{mk_server.endpoint}/{bucket}/secret", timeout=5)
    assert r.status_code == 403
    assert b"<Code>AccessDenied</Code>" in r.content
    assert b"top secret" not in r.content
    assert r.headers["Server"] == "sealstore"
    assert r.headers["x-amz-request-id"]


def test_presigned_get_and_expiry(mk_server: ServerProcess, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="p", Body=b"presigned!", ServerSideEncryption="AES256")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60
    )
    r = requests.get(url, timeout=5)
    assert r.status_code == 200 and r.content == b"presigned!"
    short = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=1
    )
    time.sleep(2.1)
    r = requests.get(short, timeout=5)
    assert r.status_code == 403
    assert b"AccessDenied" in r.content
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert requests.get(tampered, timeout=5).status_code == 403


def test_acl_is_owner_full_control(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="acl", Body=b"a")
    for acl in (s3.get_bucket_acl(Bucket=bucket), s3.get_object_acl(Bucket=bucket, Key="acl")):
        assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
        assert acl["Owner"]["ID"]
    with pytest.raises(ClientError) as e:
        s3.get_object_acl(Bucket=bucket, Key="missing")
    assert code_of(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert code_of(e) == "NotImplemented"


def test_unknown_subresource_is_not_implemented(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=bucket)  # ?policy is implemented now (issue 12)
    assert code_of(e) == "NotImplemented"


# ------------------------------------------------------------------------- at rest


def test_no_plaintext_at_rest(mk_server: ServerProcess, s3, bucket: str) -> None:
    from sealstore.client.scan import scan_dir

    data = body_of(5 * PKG + 99, "at-rest")
    s3.put_object(Bucket=bucket, Key="rest", Body=data, ServerSideEncryption="AES256")
    s3.copy_object(Bucket=bucket, Key="rest2", CopySource=f"{bucket}/rest")
    result = scan_dir(str(mk_server.data_dir), lambda off, n: data[off : off + n], len(data))
    assert result.files > 0
    assert result.ok, result.leaks[:3]
    # The scan is not vacuous: a plaintext object *is* found.
    s3.put_object(Bucket=bucket, Key="visible", Body=data)
    leaked = scan_dir(str(mk_server.data_dir), lambda off, n: data[off : off + n], len(data))
    assert leaked.leaks


def test_minio_format_decrypts_manually(mk_server: ServerProcess, s3, bucket: str) -> None:
    """Read metadata + ciphertext straight from storage and decrypt with crypto/ alone."""
    from sealstore.kms.master_key import MasterKeyKMS
    from sealstore.storage.fs import FSBackend

    data = body_of(2 * PKG + 3, "format")
    s3.put_object(Bucket=bucket, Key="fmt/obj", Body=data, ServerSideEncryption="AES256")

    async def inspect() -> tuple[dict[str, str], bytes, int]:
        store = FSBackend(mk_server.data_dir)
        await store.open()
        try:
            meta = await store.head(bucket, "fmt/obj")
            raw = b"".join([c async for c in store.read(meta)])
            return dict(meta.internal), raw, meta.size
        finally:
            await store.close()

    internal, raw, size = asyncio.run(inspect())
    assert size == len(data)
    for name in (
        sse.META_SEAL_ALGORITHM,
        sse.META_IV,
        sse.META_S3_SEALED_KEY,
        sse.META_S3_KMS_KEY_ID,
        sse.META_S3_KMS_SEALED_KEY,
        sse.META_KMS_KIND,
    ):
        assert name in internal, name
    assert internal[sse.META_SEAL_ALGORITHM] == "DAREv2-HMAC-SHA256"
    assert internal[sse.META_S3_KMS_KEY_ID] == "sealstore-test-key"
    assert internal[sse.META_KMS_KIND] == "master-key"
    assert len(raw) == dare.encrypted_size(len(data))
    assert raw[0] == 0x20  # DARE 2.0 header
    kms = MasterKeyKMS.from_env_value(MASTER_KEY)
    ctx = {bucket: f"{bucket}/fmt/obj"}
    dek = asyncio.run(
        kms.decrypt_key(
            "sealstore-test-key", base64.b64decode(internal[sse.META_S3_KMS_SEALED_KEY]), ctx
        )
    )
    sealed = keys.SealedKey(
        iv=base64.b64decode(internal[sse.META_IV]),
        algorithm="DAREv2-HMAC-SHA256",
        key=base64.b64decode(internal[sse.META_S3_SEALED_KEY]),
    )
    oek = keys.unseal_object_key(sealed, dek, "SSE-S3", bucket, "fmt/obj")
    assert dare.decrypt(oek, raw) == data
    etag = keys.unseal_etag(oek, bytes.fromhex(internal[sse.META_SEALED_ETAG]))
    assert etag == hashlib.md5(data).digest()
    # bound to the path: the same sealed key does not open for another object name
    with pytest.raises(keys.KeyMismatchError):
        keys.unseal_object_key(sealed, dek, "SSE-S3", bucket, "fmt/other")


def test_admin_endpoints(mk_server: ServerProcess, s3) -> None:
    status, doc = mk_server.ready()
    assert status == 200 and doc["ready"] is True and doc["kms"]["ok"] is True
    status, body = mk_server.get("/minio/v2/metrics/cluster")
    assert status == 200
    assert b"sealstore_requests_total" in body
    # key status needs SigV4
    status, _ = mk_server.get("/minio/kms/v1/key/status")
    assert status == 403


def test_encrypted_multipart_upload_and_ranges(s3, bucket: str) -> None:
    from boto3.s3.transfer import TransferConfig

    part = 5 * 1024 * 1024
    data = body_of(2 * part + 12345, "multipart")
    import io

    s3.upload_fileobj(
        io.BytesIO(data),
        bucket,
        "mp",
        ExtraArgs={"ServerSideEncryption": "AES256"},
        Config=TransferConfig(multipart_threshold=part, multipart_chunksize=part),
    )
    h = s3.head_object(Bucket=bucket, Key="mp")
    assert h["ServerSideEncryption"] == "AES256"
    assert h["ContentLength"] == len(data)
    assert h["ETag"].endswith('-3"')
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == data
    a, b = part - 100, 2 * part + 100  # spans all three parts
    g = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={a}-{b}")
    assert g["Body"].read() == data[a : b + 1]
    g = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert g["Body"].read() == data[part : 2 * part]
    assert g["PartsCount"] == 3
