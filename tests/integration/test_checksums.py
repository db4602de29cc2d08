"""S3 flexible checksums end to end against a real sealstore process (SSE-S3 via master key).

Driven by boto3 (whose defaults since 1.36 send CRC32 on every PUT and validate every GET that
returns a checksum) and by awscli (``s3api put-object --checksum-algorithm``,
``get-object-attributes``, ``head-object --checksum-mode``). Expected values are computed
independently of the server: zlib and hashlib over the data, anycrc for CRC32C/CRC64NVME,
and the composite rule ``hash(concat(part digests))-N`` over those.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import anycrc
import pytest
import requests
from botocore.exceptions import ClientError

from sealstore.client.chunked_encoder import encode_aws_chunked
from sealstore.client.signing import Credentials, sign_request
from sealstore.objects.checksum import META_CHECKSUM as CHECKSUM
from sealstore.objects.layout import META_LAYOUT as LAYOUT
from sealstore.s3.sigv4 import PayloadMode, derive_signing_key
from tests.integration.server import REGION, ROOT_PASSWORD, ROOT_USER, ServerProcess, base_env

MASTER_KEY = "ck-key:" + hashlib.sha256(b"checksum tests master").hexdigest()
MiB = 1024 * 1024
BIN = Path(sys.executable).parent
NEED_CRT = ("CRC32C", "CRC64NVME")
ONES32, ONES64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
CRC32C = anycrc.CRC(width=32, poly=0x1EDC6F41, init=ONES32, refin=True, refout=True, xorout=ONES32)
CRC64 = anycrc.CRC(
    width=64, poly=0xAD93D23594C93659, init=ONES64, refin=True, refout=True, xorout=ONES64
)


def digest(alg: str, data: bytes) -> bytes:
    """The checksum of ``data``, computed without any server code."""
    if alg == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if alg == "CRC32C":
        return CRC32C.calc(data).to_bytes(4, "big")
    if alg == "CRC64NVME":
        return CRC64.calc(data).to_bytes(8, "big")
    return hashlib.new(alg.lower(), data).digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ck")
    (root / "data").mkdir()
    proc = ServerProcess(
        root / "data", base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY), root / "server.log"
    ).start()
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def s3(srv: ServerProcess):
    return srv.client()


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    s3.create_bucket(Bucket="checksums")
    return "checksums"


def test_default_boto3_put_stores_crc32_and_get_validates(s3, bucket) -> None:
    data = os.urandom(300_000)
    put = s3.put_object(Bucket=bucket, Key="default", Body=data)  # boto3 sends CRC32 itself
    assert put["ChecksumCRC32"] == b64(digest("CRC32", data))
    assert "ChecksumCRC32" not in s3.head_object(Bucket=bucket, Key="default")
    head = s3.head_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == put["ChecksumCRC32"]
    assert head["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == put["ChecksumCRC32"]
    assert got["Body"].read() == data  # botocore validated the CRC32 while reading
    ranged = s3.get_object(
        Bucket=bucket, Key="default", Range="bytes=10-99", ChecksumMode="ENABLED"
    )
    assert "ChecksumCRC32" not in ranged and ranged["Body"].read() == data[10:100]


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
@pytest.mark.parametrize("sse", [True, False])
def test_put_with_each_algorithm(s3, bucket, alg: str, sse: bool) -> None:
    data = os.urandom(70_001)
    key = f"alg/{alg}/{sse}"
    want = b64(digest(alg, data))
    extra = {"ServerSideEncryption": "AES256"} if sse else {}
    # botocore computes CRC32C/CRC64NVME only with awscrt: send those values precomputed.
    extra.update({f"Checksum{alg}": want} if alg in NEED_CRT else {"ChecksumAlgorithm": alg})
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)
    assert put[f"Checksum{alg}"] == want
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == want and head["ChecksumType"] == "FULL_OBJECT"
    assert s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")["Body"].read() == data
    attrs = s3.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["Checksum", "ObjectSize", "ETag", "ObjectParts"]
    )
    assert attrs["Checksum"] == {f"Checksum{alg}": want, "ChecksumType": "FULL_OBJECT"}
    assert attrs["ObjectSize"] == len(data)
    assert attrs["ETag"] == hashlib.md5(data).hexdigest()  # unquoted, as S3
    assert "ObjectParts" not in attrs


def test_wrong_checksum_is_bad_digest_and_stores_nothing(s3, bucket) -> None:
    data = b"the real content"
    wrong = b64(digest("SHA256", b"something else"))
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=data, ChecksumSHA256=wrong)
    assert code_of(exc) == "BadDigest"
    assert "SHA256 you specified did not match" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="bad")
    assert missing.value.response["Error"]["Code"] == "404"
    with pytest.raises(ClientError) as malformed:
        s3.put_object(Bucket=bucket, Key="bad", Body=data, ChecksumSHA256="notbase64!")
    assert code_of(malformed) == "InvalidRequest"


def _parts(size1: int = 5 * MiB, size2: int = 1000) -> tuple[bytes, bytes]:
    return os.urandom(size1), os.urandom(size2)


def test_multipart_composite_sha256(s3, bucket) -> None:
    p1, p2 = _parts()
    key = "mp/composite"
    up = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", ServerSideEncryption="AES256"
    )
    assert up["ChecksumAlgorithm"] == "SHA256" and up["ChecksumType"] == "COMPOSITE"
    uid = up["UploadId"]
    done = []
    for n, data in ((1, p1), (2, p2)):
        r = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=uid,
            PartNumber=n,
            Body=data,
            ChecksumAlgorithm="SHA256",
        )
        assert r["ChecksumSHA256"] == b64(digest("SHA256", data))
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert listed["ChecksumAlgorithm"] == "SHA256"
    assert [p["ChecksumSHA256"] for p in listed["Parts"]] == [d["ChecksumSHA256"] for d in done]

    with pytest.raises(ClientError) as missing:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=uid,
            MultipartUpload={"Parts": [{k: d[k] for k in ("PartNumber", "ETag")} for d in done]},
        )
    assert code_of(missing) == "InvalidRequest"
    bad = [dict(done[0]), {**done[1], "ChecksumSHA256": done[0]["ChecksumSHA256"]}]
    with pytest.raises(ClientError) as wrong:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": bad}
        )
    assert code_of(wrong) == "InvalidPart"

    out = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": done}
    )
    whole = b64(hashlib.sha256(digest("SHA256", p1) + digest("SHA256", p2)).digest())
    assert out["ChecksumSHA256"] == whole + "-2" and out["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == whole + "-2" and head["ChecksumType"] == "COMPOSITE"
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == p1 + p2
    part2 = s3.get_object(Bucket=bucket, Key=key, PartNumber=2, ChecksumMode="ENABLED")
    assert part2["ChecksumSHA256"] == b64(digest("SHA256", p2)) and part2["Body"].read() == p2

    attrs = s3.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["Checksum", "ObjectParts"], MaxParts=1
    )
    assert attrs["Checksum"] == {"ChecksumSHA256": whole, "ChecksumType": "COMPOSITE"}
    parts = attrs["ObjectParts"]
    assert parts["TotalPartsCount"] == 2 and parts["IsTruncated"] is True
    assert parts["NextPartNumberMarker"] == 1 and parts["MaxParts"] == 1
    assert parts["Parts"] == [
        {"PartNumber": 1, "Size": len(p1), "ChecksumSHA256": done[0]["ChecksumSHA256"]}
    ]
    rest = s3.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["ObjectParts"], PartNumberMarker=1
    )["ObjectParts"]
    assert [p["PartNumber"] for p in rest["Parts"]] == [2] and rest["IsTruncated"] is False


def test_multipart_full_object_crc32_is_combined(s3, bucket) -> None:
    p1, p2 = _parts(size2=777)
    key = "mp/full"
    up = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )
    assert up["ChecksumType"] == "FULL_OBJECT"
    uid = up["UploadId"]
    done = []
    for n, data in ((1, p1), (2, p2)):
        r = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data, ChecksumAlgorithm="CRC32"
        )
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    whole = b64(digest("CRC32", p1 + p2))
    with pytest.raises(ClientError) as wrong:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=uid,
            MultipartUpload={"Parts": done},
            ChecksumCRC32=b64(digest("CRC32", p1)),
            ChecksumType="FULL_OBJECT",
        )
    assert code_of(wrong) == "BadDigest"
    out = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": done},
        ChecksumCRC32=whole,
        ChecksumType="FULL_OBJECT",
    )
    assert out["ChecksumCRC32"] == whole and out["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == whole and got["Body"].read() == p1 + p2
    part = s3.get_object(Bucket=bucket, Key=key, PartNumber=1, ChecksumMode="ENABLED")
    assert "ChecksumCRC32" not in part and part["Body"].read() == p1
    attrs = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["ObjectParts"])
    assert attrs["ObjectParts"] == {"TotalPartsCount": 2}


def test_multipart_rules(s3, bucket) -> None:
    with pytest.raises(ClientError) as sha_full:
        s3.create_multipart_upload(
            Bucket=bucket, Key="r", ChecksumAlgorithm="SHA256", ChecksumType="FULL_OBJECT"
        )
    assert code_of(sha_full) == "InvalidRequest"
    uid = s3.create_multipart_upload(Bucket=bucket, Key="r", ChecksumAlgorithm="CRC32C")["UploadId"]
    with pytest.raises(ClientError) as other:
        s3.upload_part(
            Bucket=bucket, Key="r", UploadId=uid, PartNumber=1, Body=b"x", ChecksumAlgorithm="SHA1"
        )
    assert code_of(other) == "InvalidRequest"
    assert "expected checksum Type: crc32c" in other.value.response["Error"]["Message"]
    s3.abort_multipart_upload(Bucket=bucket, Key="r", UploadId=uid)
    # An upload without an algorithm: boto3's default CRC32 parts are verified, not stored.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="plain")["UploadId"]
    r = s3.upload_part(Bucket=bucket, Key="plain", UploadId=uid, PartNumber=1, Body=b"tiny")
    assert r["ChecksumCRC32"] == b64(digest("CRC32", b"tiny"))
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="plain",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]},
    )
    assert "ChecksumCRC32" not in s3.head_object(Bucket=bucket, Key="plain", ChecksumMode="ENABLED")


def test_copy_object_checksums(s3, bucket) -> None:
    data = os.urandom(50_000)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ChecksumCRC32C=b64(digest("CRC32C", data)))
    kept = s3.copy_object(Bucket=bucket, Key="kept", CopySource=f"{bucket}/src")
    assert kept["CopyObjectResult"]["ChecksumCRC32C"] == b64(digest("CRC32C", data))
    new = s3.copy_object(
        Bucket=bucket, Key="new", CopySource=f"{bucket}/src", ChecksumAlgorithm="SHA256"
    )
    assert new["CopyObjectResult"]["ChecksumSHA256"] == b64(digest("SHA256", data))
    head = s3.head_object(Bucket=bucket, Key="new", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == b64(digest("SHA256", data)) and "ChecksumCRC32C" not in head
    again = s3.copy_object(  # a self-copy that only changes the checksum is allowed
        Bucket=bucket, Key="src", CopySource=f"{bucket}/src", ChecksumAlgorithm="SHA1"
    )
    assert again["CopyObjectResult"]["ChecksumSHA1"] == b64(digest("SHA1", data))


def test_get_object_attributes_errors(s3, bucket) -> None:
    s3.put_object(Bucket=bucket, Key="attr", Body=b"abc")
    with pytest.raises(ClientError) as bad:
        s3.get_object_attributes(Bucket=bucket, Key="attr", ObjectAttributes=["Bogus"])
    assert code_of(bad) == "InvalidArgument"
    with pytest.raises(ClientError) as nokey:
        s3.get_object_attributes(Bucket=bucket, Key="nope", ObjectAttributes=["ETag"])
    assert code_of(nokey) == "NoSuchKey"
    out = s3.get_object_attributes(
        Bucket=bucket, Key="attr", ObjectAttributes=["StorageClass", "ObjectSize"]
    )
    assert out["StorageClass"] == "STANDARD" and out["ObjectSize"] == 3 and "ETag" not in out
    assert out["LastModified"] is not None


def test_awscli_checksum_round_trip(srv: ServerProcess, s3, bucket, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    fd = os.open(creds, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"[default]\naws_access_key_id = {ROOT_USER}\n")
        fh.write(f"aws_secret_access_key = {ROOT_PASSWORD}\n")
    env = {
        **os.environ,
        "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_DEFAULT_REGION": REGION,
    }
    aws = [str(BIN / "aws"), "--endpoint-url", srv.endpoint, "--output", "json", "s3api"]
    body = tmp_path / "body.bin"
    data = os.urandom(123_456)
    body.write_bytes(data)

    def cli(*args: str) -> dict:
        out = subprocess.run([*aws, *args], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout or "{}")

    where = ("--bucket", bucket, "--key", "cli/obj")
    put = cli("put-object", *where, "--body", str(body), "--checksum-algorithm", "SHA256")
    assert put["ChecksumSHA256"] == b64(digest("SHA256", data))
    head = cli("head-object", *where, "--checksum-mode", "ENABLED")
    assert head["ChecksumSHA256"] == put["ChecksumSHA256"]
    attrs = cli("get-object-attributes", *where, "--object-attributes", "Checksum", "ObjectSize")
    assert attrs["Checksum"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    assert attrs["ObjectSize"] == len(data)
    bad = subprocess.run(
        [*aws, "put-object", *where, "--body", str(body), "--checksum-crc32", b64(b"\0\0\0\0")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "BadDigest" in bad.stderr
    assert s3.get_object(Bucket=bucket, Key="cli/obj")["Body"].read() == data


def _internal(srv: ServerProcess, key: str, new: dict | None = None) -> dict:
    """Read (or, as an attacker with the data directory, replace) an object's entries."""
    with sqlite3.connect(srv.data_dir / "sealstore.sqlite3", timeout=30) as db:
        where = ("checksums", key.encode())
        if new is not None:
            db.execute(
                "UPDATE objects SET internal=? WHERE bucket=? AND key=?", (json.dumps(new), *where)
            )
        row = db.execute("SELECT internal FROM objects WHERE bucket=? AND key=?", where).fetchone()
    return json.loads(row[0])


def test_encrypted_checksum_is_bound_to_the_layout(srv: ServerProcess, s3, bucket) -> None:
    data = os.urandom(10_000)
    s3.put_object(
        Bucket=bucket,
        Key="bound",
        Body=data,
        ChecksumAlgorithm="SHA256",
        ServerSideEncryption="AES256",
    )
    entries = _internal(srv, "bound")
    assert entries[LAYOUT].startswith("2:")
    original = entries[CHECKSUM]
    forged = original.replace(b64(digest("SHA256", data)), b64(digest("SHA256", b"forged")))
    for edited in (
        {**entries, CHECKSUM: forged},
        {k: v for k, v in entries.items() if k != CHECKSUM},
    ):
        _internal(srv, "bound", edited)
        for call in (
            lambda: s3.get_object(Bucket=bucket, Key="bound", ChecksumMode="ENABLED"),
            lambda: s3.get_object_attributes(
                Bucket=bucket, Key="bound", ObjectAttributes=["Checksum"]
            ),
        ):
            with pytest.raises(ClientError) as exc:
                call()
            assert code_of(exc) == "XMinioObjectTampered"
    _internal(srv, "bound", entries)
    assert s3.get_object(Bucket=bucket, Key="bound", ChecksumMode="ENABLED")["Body"].read() == data


def _trailer_put(srv: ServerProcess, path: str, payload: bytes, trailer: str) -> int:
    """PUT ``payload`` as signed aws-chunked with an ``x-amz-checksum-crc32c`` trailer (what
    the Go and Java SDKs send over HTTPS), returning the status."""
    mode = PayloadMode.STREAMING_SIGNED_TRAILER
    extra = {
        "x-amz-decoded-content-length": str(len(payload)),
        "Content-Encoding": "aws-chunked",
        "x-amz-trailer": "x-amz-checksum-crc32c",
    }
    url = srv.endpoint + path
    headers = sign_request(
        "PUT", url, extra, Credentials(ROOT_USER, ROOT_PASSWORD), REGION,
        dt.datetime.now(dt.UTC), mode.value,
    )  # fmt: skip
    date = headers["x-amz-date"]
    body = b"".join(
        encode_aws_chunked(
            [payload[i : i + 65536] for i in range(0, len(payload), 65536)],
            mode,
            signing_key=derive_signing_key(ROOT_PASSWORD, date[:8], REGION),
            seed_signature=headers["Authorization"].rsplit("Signature=", 1)[1],
            amz_date=date,
            scope=f"{date[:8]}/{REGION}/s3/aws4_request",
            trailers={"x-amz-checksum-crc32c": trailer},
        )
    )
    return requests.put(url, data=body, headers=headers, timeout=30).status_code


def test_signed_trailer_checksum_is_verified_and_stored(srv: ServerProcess, s3, bucket) -> None:
    payload = os.urandom(150_000)
    good = b64(digest("CRC32C", payload))
    assert _trailer_put(srv, f"/{bucket}/trailer", payload, b64(b"\0\0\0\0")) == 400
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="trailer")  # nothing stored
    assert _trailer_put(srv, f"/{bucket}/trailer", payload, good) == 200
    head = s3.head_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == good and head["ContentLength"] == len(payload)
