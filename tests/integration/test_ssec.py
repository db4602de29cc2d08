"""SSE-C (customer-provided keys) against a real sealstore process over TLS, driven by boto3
(SSECustomerKey), awscli (--sse-c AES256 --sse-c-key fileb://...) and minio-py
(SseCustomerKey): round trips, ranges, partNumber, copies and key rotation, multipart with
per-part keys, AWS's status codes for every wrong key, missing key and bad header, no
plaintext and no customer key anywhere in the data directory or the log; and the refusal of
SSE-C over plain HTTP, unless the test-only SEALSTORE_ALLOW_INSECURE_SSEC is on (which the
server warns about at start)."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from minio.error import S3Error

from sealstore.client.scan import scan_dir
from tests.integration.server import ServerProcess, base_env
from tests.integration.server_tls import ServerTLS
from tests.integration.test_clients import (
    BIN,
    REGION,
    ROOT_PASSWORD,
    ROOT_USER,
    awscli_env,
    content,
    run,
)

MASTER_KEY = "ssec-key:" + hashlib.sha256(b"sse-c module master").hexdigest()
MiB = 1024 * 1024
KEY_A = hashlib.sha256(b"customer key A").digest()
KEY_B = hashlib.sha256(b"customer key B").digest()
BUCKET = "ssec"


def ssec(key: bytes, *, copy_source: bool = False) -> dict[str, str]:
    """boto3 arguments for SSE-C (botocore base64-encodes the key and adds its MD5)."""
    prefix = "CopySource" if copy_source else ""
    return {f"{prefix}SSECustomerAlgorithm": "AES256", f"{prefix}SSECustomerKey": key}  # type: ignore[dict-item]


def md5_b64(key: bytes) -> str:
    return base64.b64encode(hashlib.md5(key).digest()).decode()


def status_code(e: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    err = e.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err.get("Error", {}).get("Code", "")


def assert_no_key_at_rest(data_dir: Path) -> None:
    """Neither customer key (raw, base64 or hex) is in any stored file, index included."""
    needles = [form for k in (KEY_A, KEY_B) for form in (k, base64.b64encode(k), k.hex().encode())]
    for path in data_dir.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for needle in needles:
                assert needle not in blob, f"customer key material in {path}"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ssec")
    tls = ServerTLS.create(root / "tls")
    server = ServerProcess(
        root / "data", base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY), root / "server.log", tls=tls
    ).start()
    server.wait_ready()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()
    log = server.log_text()
    for secret in (base64.b64encode(KEY_A).decode(), base64.b64encode(KEY_B).decode()):
        assert secret not in log
    assert KEY_A.hex() not in log and ROOT_PASSWORD not in log
    assert_no_key_at_rest(server.data_dir)


@pytest.fixture(scope="module")
def s3(srv: ServerProcess):
    return srv.client()


def test_put_get_head_ranges_and_aws_errors(srv: ServerProcess, s3) -> None:
    data = content(300_000, "ssec-put")
    put = s3.put_object(Bucket=BUCKET, Key="obj", Body=data, **ssec(KEY_A))
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["SSECustomerKeyMD5"] == md5_b64(KEY_A)
    assert "ServerSideEncryption" not in put
    assert put["ETag"].strip('"') != hashlib.md5(data).hexdigest()  # no plaintext MD5
    got = s3.get_object(Bucket=BUCKET, Key="obj", **ssec(KEY_A))
    assert got["Body"].read() == data and got["SSECustomerKeyMD5"] == md5_b64(KEY_A)
    part = s3.get_object(Bucket=BUCKET, Key="obj", Range="bytes=65530-131080", **ssec(KEY_A))
    assert part["Body"].read() == data[65530:131081]
    head = s3.head_object(Bucket=BUCKET, Key="obj", **ssec(KEY_A))
    assert head["ContentLength"] == len(data) and head["SSECustomerAlgorithm"] == "AES256"
    res = scan_dir(str(srv.data_dir), lambda off, n: data[off : off + n], len(data))
    assert res.ok, f"plaintext at rest: {res.leaks[:2]}"

    # wrong key: 403 (HEAD: 403 without a body); no key: 400 InvalidRequest
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=BUCKET, Key="obj", **ssec(KEY_B))
    assert status_code(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=BUCKET, Key="obj", **ssec(KEY_B))
    assert status_code(e)[0] == 403
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=BUCKET, Key="obj")
    assert status_code(e) == (400, "InvalidRequest")
    assert "correct parameters must be provided" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=BUCKET, Key="obj")
    assert status_code(e)[0] == 400
    # SSE-C headers for an object that is not SSE-C
    s3.put_object(Bucket=BUCKET, Key="plain", Body=b"plain", ServerSideEncryption="AES256")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=BUCKET, Key="plain", **ssec(KEY_A))
    assert status_code(e) == (400, "InvalidRequest")
    assert "not applicable" in e.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (
            {"x-amz-server-side-encryption-customer-key-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="},
            "InvalidArgument",
        ),
        (
            {"x-amz-server-side-encryption-customer-algorithm": "AES512"},
            "InvalidEncryptionAlgorithmError",
        ),
        ({"x-amz-server-side-encryption": "AES256"}, "InvalidArgument"),  # SSE-C + SSE-S3
    ],
)
def test_bad_headers_are_400(s3, headers: dict[str, str], code: str) -> None:
    def patch(params, **_kw) -> None:
        params["headers"].update(headers)

    s3.meta.events.register("before-call.s3.PutObject", patch)
    try:
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=BUCKET, Key="bad", Body=b"x", **ssec(KEY_A))
    finally:
        s3.meta.events.unregister("before-call.s3.PutObject", patch)
    assert status_code(e) == (400, code)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=BUCKET, Key="bad")
    assert status_code(e)[0] == 404  # nothing was stored


def test_copies_and_key_rotation(s3) -> None:
    data = content(150_000, "ssec-copy")
    s3.put_object(Bucket=BUCKET, Key="rot", Body=data, **ssec(KEY_A))
    # rotation: copy onto itself with the old key as source and a new key (COPY directive)
    rotated = s3.copy_object(
        Bucket=BUCKET,
        Key="rot",
        CopySource={"Bucket": BUCKET, "Key": "rot"},
        **ssec(KEY_A, copy_source=True),
        **ssec(KEY_B),
    )
    assert rotated["SSECustomerKeyMD5"] == md5_b64(KEY_B)
    assert s3.get_object(Bucket=BUCKET, Key="rot", **ssec(KEY_B))["Body"].read() == data
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=BUCKET, Key="rot", **ssec(KEY_A))
    assert status_code(e)[0] == 403
    # a copy without the source key is refused; SSE-C -> SSE-S3 and back
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=BUCKET, Key="x", CopySource={"Bucket": BUCKET, "Key": "rot"})
    assert status_code(e) == (400, "InvalidRequest")
    s3.copy_object(
        Bucket=BUCKET,
        Key="rot-s3",
        CopySource={"Bucket": BUCKET, "Key": "rot"},
        ServerSideEncryption="AES256",
        **ssec(KEY_B, copy_source=True),
    )
    got = s3.get_object(Bucket=BUCKET, Key="rot-s3")
    assert got["ServerSideEncryption"] == "AES256" and got["Body"].read() == data
    s3.copy_object(
        Bucket=BUCKET, Key="rot-c", CopySource={"Bucket": BUCKET, "Key": "rot-s3"}, **ssec(KEY_A)
    )
    assert s3.get_object(Bucket=BUCKET, Key="rot-c", **ssec(KEY_A))["Body"].read() == data


def test_multipart_part_keys_partnumber_and_part_copy(s3) -> None:
    p1, p2 = content(5 * MiB, "ssec-mp1"), content(70_001, "ssec-mp2")
    up = s3.create_multipart_upload(Bucket=BUCKET, Key="mp", **ssec(KEY_A))
    assert up["SSECustomerKeyMD5"] == md5_b64(KEY_A)
    uid = up["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=BUCKET, Key="mp", UploadId=uid, PartNumber=1, Body=b"x")
    assert status_code(e) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        s3.upload_part(
            Bucket=BUCKET, Key="mp", UploadId=uid, PartNumber=1, Body=b"x", **ssec(KEY_B)
        )
    assert status_code(e) == (400, "InvalidRequest")
    r1 = s3.upload_part(Bucket=BUCKET, Key="mp", UploadId=uid, PartNumber=1, Body=p1, **ssec(KEY_A))
    assert r1["SSECustomerKeyMD5"] == md5_b64(KEY_A)
    r2 = s3.upload_part(Bucket=BUCKET, Key="mp", UploadId=uid, PartNumber=2, Body=p2, **ssec(KEY_A))
    listed = s3.list_parts(Bucket=BUCKET, Key="mp", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]
    parts = [{"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]}]
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts}, **ssec(KEY_A)
    )
    whole = p1 + p2
    got = s3.get_object(Bucket=BUCKET, Key="mp", PartNumber=2, **ssec(KEY_A))
    assert got["Body"].read() == p2 and got["PartsCount"] == 2
    rng = s3.get_object(
        Bucket=BUCKET, Key="mp", Range=f"bytes={5 * MiB - 3}-{5 * MiB + 3}", **ssec(KEY_A)
    )
    assert rng["Body"].read() == whole[5 * MiB - 3 : 5 * MiB + 4]
    # UploadPartCopy: source under key A, destination upload under key B
    up2 = s3.create_multipart_upload(Bucket=BUCKET, Key="mp2", **ssec(KEY_B))
    cp = s3.upload_part_copy(
        Bucket=BUCKET,
        Key="mp2",
        UploadId=up2["UploadId"],
        PartNumber=1,
        CopySource={"Bucket": BUCKET, "Key": "mp"},
        CopySourceRange=f"bytes=10-{5 * MiB + 9}",
        **ssec(KEY_A, copy_source=True),
        **ssec(KEY_B),
    )
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="mp2",
        UploadId=up2["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": cp["CopyPartResult"]["ETag"]}]},
    )  # without the key (AWS allows it): published, its layout left unbound
    got = s3.get_object(Bucket=BUCKET, Key="mp2", **ssec(KEY_B))
    assert got["Body"].read() == whole[10 : 5 * MiB + 10]


def test_awscli_sse_c(srv: ServerProcess, s3, tmp_path: Path) -> None:
    env = awscli_env(tmp_path, "    multipart_threshold = 5MB\n    multipart_chunksize = 5MB\n")
    key_file = tmp_path / "customer.key"
    key_file.write_bytes(KEY_A)
    key_file.chmod(0o600)
    aws = [str(BIN / "aws"), "--endpoint-url", srv.endpoint, "--ca-bundle", str(srv.tls.ca_file)]
    sse_c = ["--sse-c", "AES256", "--sse-c-key", f"fileb://{key_file}"]
    big = tmp_path / "big.bin"
    big.write_bytes(content(11 * MiB, "aws-ssec-big"))  # 3 parts: s3transfer's multipart
    run([*aws, "s3", "cp", str(big), f"s3://{BUCKET}/cli/big.bin", *sse_c], env)
    back = tmp_path / "big.back"
    run([*aws, "s3", "cp", f"s3://{BUCKET}/cli/big.bin", str(back), *sse_c], env)
    assert back.read_bytes() == big.read_bytes()
    head = s3.head_object(Bucket=BUCKET, Key="cli/big.bin", **ssec(KEY_A))
    assert head["PartsCount"] == 3 and head["SSECustomerKeyMD5"] == md5_b64(KEY_A)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=BUCKET, Key="cli/big.bin", **ssec(KEY_B))
    assert status_code(e)[0] == 403


def test_plain_http_refused_unless_allowed(tmp_path: Path) -> None:
    env = base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY)
    with ServerProcess(tmp_path / "data", env, tmp_path / "plain.log").start() as plain:
        s3 = plain.client()
        s3.create_bucket(Bucket=BUCKET)
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=BUCKET, Key="k", Body=b"secret", **ssec(KEY_A))
        assert status_code(e) == (400, "InvalidRequest")
        assert "secure connection" in e.value.response["Error"]["Message"]
        with pytest.raises(ClientError):
            s3.head_object(Bucket=BUCKET, Key="k")
    env["SEALSTORE_ALLOW_INSECURE_SSEC"] = "on"
    with ServerProcess(tmp_path / "data", env, tmp_path / "allowed.log").start() as allowed:
        s3 = allowed.client()
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"secret", **ssec(KEY_A))
        assert s3.get_object(Bucket=BUCKET, Key="k", **ssec(KEY_A))["Body"].read() == b"secret"
        warned = [r for r in allowed.log_records() if "ALLOW_INSECURE_SSEC" in r.get("msg", str(r))]
        assert warned, allowed.log_text()[-2000:]


def test_minio_sdk_sse_c(srv: ServerProcess, s3) -> None:
    import urllib3
    from minio import Minio
    from minio.commonconfig import CopySource
    from minio.sse import SseCustomerKey

    assert srv.tls is not None
    mc = Minio(
        f"127.0.0.1:{srv.port}",
        access_key=ROOT_USER,
        secret_key=ROOT_PASSWORD,
        secure=True,
        region=REGION,
        http_client=urllib3.PoolManager(ca_certs=str(srv.tls.ca_file)),
    )
    key_a, key_b = SseCustomerKey(KEY_A), SseCustomerKey(KEY_B)
    data = content(200_000, "minio-ssec")
    mc.put_object(BUCKET, "minio/obj", io.BytesIO(data), len(data), sse=key_a)
    assert mc.stat_object(BUCKET, "minio/obj", ssec=key_a).size == len(data)
    resp = mc.get_object(BUCKET, "minio/obj", ssec=key_a, offset=100, length=70_000)
    try:
        assert resp.read() == data[100:70_100]
    finally:
        resp.close()
        resp.release_conn()
    # minio-py's rotation: copy onto itself with the old key as source, the new as target
    mc.copy_object(BUCKET, "minio/obj", CopySource(BUCKET, "minio/obj", ssec=key_a), sse=key_b)
    assert s3.get_object(Bucket=BUCKET, Key="minio/obj", **ssec(KEY_B))["Body"].read() == data
    with pytest.raises(S3Error) as e:
        mc.stat_object(BUCKET, "minio/obj", ssec=key_a)
    assert e.value.response.status == 403
