"""Multipart uploads, listing, DeleteObjects and bucket default encryption against a real
sealstore process (master-key KMS here; OpenBao-backed variants at the end), driven by boto3.

Every encrypted round trip checks sha256 equality, the SSE response header, and that no
16-byte run of the plaintext exists anywhere in the data directory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from sealstore.client.scan import Leak, scan_dir
from sealstore.crypto import dare
from sealstore.objects import metadata as sse
from tests.integration.server import (
    REGION,
    ROOT_PASSWORD,
    ROOT_USER,
    ServerProcess,
    base_env,
)

KEY_ID = "mp-test-key"
MASTER_KEY = KEY_ID + ":" + hashlib.sha256(b"multipart listing master").hexdigest()
MiB = 1024 * 1024
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
MP_CONFIG = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)


def content(size: int, seed: str) -> bytes:
    """Deterministic bytes in which every 16-byte window is distinctive (for at-rest scans)."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


Snapshot = dict[Path, tuple[int, int]]


def snapshot(data_dir: Path) -> Snapshot:
    """(mtime_ns, size) of every file under the data directory."""
    out: Snapshot = {}
    for p in data_dir.rglob("*"):
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if p.is_file():
            out[p] = (st.st_mtime_ns, st.st_size)
    return out


def plaintext_leaks(
    data_dir: Path, plain: bytes, since: Snapshot | None = None, tmp: Path | None = None
) -> list[Leak]:
    """Files holding a 16-byte run of ``plain`` (at most one report per file).

    With ``since``, only files created or changed after that snapshot are scanned (the
    plaintext is unique to the test, so older untouched files cannot hold it); this keeps
    the scan proportional to what the test wrote rather than to the module's data dir.
    """
    target = data_dir
    if since is not None:
        assert tmp is not None
        target = tmp / f"scan-{os.urandom(4).hex()}"
        target.mkdir()
        for n, (path, sig) in enumerate(snapshot(data_dir).items()):
            if since.get(path) != sig:
                with contextlib.suppress(FileNotFoundError):
                    os.link(path, target / f"{n}-{path.name}")
    result = scan_dir(str(target), lambda off, n: plain[off : off + n], len(plain))
    assert result.files > 0 and not result.unreadable
    return result.leaks


def assert_ciphertext_at_rest(
    data_dir: Path, plain: bytes, since: Snapshot | None = None, tmp: Path | None = None
) -> None:
    """No 16-byte run of ``plain`` anywhere in (the changed part of) the data directory."""
    leaks = plaintext_leaks(data_dir, plain, since, tmp)
    assert not leaks, f"plaintext found at rest: {leaks[:3]}"


def start_server(root: Path, **env: str) -> ServerProcess:
    (root / "data").mkdir(parents=True, exist_ok=True)
    srv = ServerProcess(root / "data", base_env(**env), root / "server.log").start()
    srv.wait_ready()
    return srv


def stop_and_check_log(srv: ServerProcess, *secrets: str) -> None:
    srv.stop()
    log = srv.log_text()
    for secret in (ROOT_PASSWORD, *secrets):
        assert secret not in log


@pytest.fixture(scope="module")
def mk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("mpl"), MINIO_SSE_MASTER_KEY=MASTER_KEY)
    yield srv
    stop_and_check_log(srv, MASTER_KEY, MASTER_KEY.split(":")[1])


@pytest.fixture(scope="module")
def s3(mk_server: ServerProcess):
    return mk_server.client()


@pytest.fixture
def bucket(s3) -> str:
    name = f"mp-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name)
    return name


def signed_request(
    srv: ServerProcess, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> requests.Response:
    """A SigV4-signed raw request (for cases SDKs refuse to send, e.g. no Content-MD5)."""
    url = srv.endpoint + path
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(ROOT_USER, ROOT_PASSWORD), "s3", REGION).add_auth(req)
    prepared = req.prepare()
    return requests.request(method, url, data=body, headers=dict(prepared.headers), timeout=30)


def error_code(resp: requests.Response) -> str:
    return ET.fromstring(resp.content).findtext("Code") or ""


# =========================================================================== multipart


def multipart_roundtrip(s3, srv: ServerProcess, bucket: str, tmp_path: Path, **extra) -> bytes:
    """Upload a 12 MiB+ object in 5 MiB parts with boto3 and verify it end to end."""
    size = 12 * MiB + 4321
    data = content(size, f"{bucket}-mp")
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    before = snapshot(srv.data_dir)
    s3.upload_file(str(src), bucket, "dir/big.bin", ExtraArgs=extra, Config=MP_CONFIG)

    head = s3.head_object(Bucket=bucket, Key="dir/big.bin")
    assert head["ContentLength"] == size
    assert head["ServerSideEncryption"] == "AES256"
    part_md5s = [hashlib.md5(data[i : i + 5 * MiB]).digest() for i in range(0, size, 5 * MiB)]
    expected_etag = f'"{hashlib.md5(b"".join(part_md5s)).hexdigest()}-3"'
    assert head["ETag"] == expected_etag
    assert not any(
        k.lower().startswith("x-minio-internal") for k in head["ResponseMetadata"]["HTTPHeaders"]
    )

    got = s3.get_object(Bucket=bucket, Key="dir/big.bin")
    assert got["ServerSideEncryption"] == "AES256"
    assert hashlib.sha256(got["Body"].read()).hexdigest() == hashlib.sha256(data).hexdigest()

    # Ranges inside one part, across package and part boundaries, and suffixes.
    b1 = 5 * MiB
    for start, end in [
        (0, 0),
        (65530, 65545),
        (b1 - 100, b1 + 100),  # crosses part 1 -> 2
        (b1 - 1, 2 * b1),  # last byte of part 1 .. first byte of part 3
        (3, size - 4),  # all three parts
        (2 * b1 + 65536, size - 1),  # inside the short last part
    ]:
        r = s3.get_object(Bucket=bucket, Key="dir/big.bin", Range=f"bytes={start}-{end}")
        assert r["Body"].read() == data[start : end + 1], (start, end)
        assert r["ContentRange"] == f"bytes {start}-{end}/{size}"
    tail = s3.get_object(Bucket=bucket, Key="dir/big.bin", Range="bytes=-70000")["Body"].read()
    assert tail == data[-70000:]

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [
        ("dir/big.bin", size, expected_etag)
    ]
    assert_ciphertext_at_rest(srv.data_dir, data, before, tmp_path)
    return data


def test_multipart_sse_header_roundtrip(s3, mk_server, bucket, tmp_path) -> None:
    multipart_roundtrip(s3, mk_server, bucket, tmp_path, ServerSideEncryption="AES256")


def test_multipart_format_is_minio_layout(s3, mk_server, bucket) -> None:
    """Create echoes SSE; each part is its own DARE stream under HMAC(OEK, n)."""
    up = s3.create_multipart_upload(Bucket=bucket, Key="fmt", ServerSideEncryption="AES256")
    assert up["ServerSideEncryption"] == "AES256"
    uid = up["UploadId"]
    p1 = content(5 * MiB, "p1")
    p2 = content(70000, "p2")
    r1 = s3.upload_part(Bucket=bucket, Key="fmt", UploadId=uid, PartNumber=1, Body=p1)
    r2 = s3.upload_part(Bucket=bucket, Key="fmt", UploadId=uid, PartNumber=2, Body=p2)
    assert r1["ETag"] == f'"{hashlib.md5(p1).hexdigest()}"'
    assert r1["ServerSideEncryption"] == "AES256"
    parts = s3.list_parts(Bucket=bucket, Key="fmt", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts] == [
        (1, len(p1), r1["ETag"]),
        (2, len(p2), r2["ETag"]),
    ]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="fmt",
        UploadId=uid,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]}]
        },
    )
    assert done["ServerSideEncryption"] == "AES256"

    # Inspect what storage holds: MinIO's metadata names plus the multipart marker, and
    # stored part sizes equal to DARE's enc() of the plaintext sizes.
    import asyncio

    from sealstore.storage.fs import FSBackend

    async def look():
        fs = FSBackend(mk_server.data_dir)
        await fs.open()
        try:
            return await fs.head(bucket, "fmt")
        finally:
            await fs.close()

    meta = asyncio.run(look())
    assert sse.META_ENCRYPTED_MULTIPART in meta.internal
    assert sse.is_sse_s3(meta.internal)
    assert [p.number for p in meta.parts] == [1, 2]
    assert [p.stored_size for p in meta.parts] == [
        dare.encrypted_size(len(p1)),
        dare.encrypted_size(len(p2)),
    ]
    body = s3.get_object(Bucket=bucket, Key="fmt")["Body"].read()
    assert body == p1 + p2


def test_get_and_head_by_part_number(s3, bucket) -> None:
    """partNumber=N on GET/HEAD addresses one part of an encrypted multipart object."""
    uid = s3.create_multipart_upload(Bucket=bucket, Key="pn", ServerSideEncryption="AES256")[
        "UploadId"
    ]
    parts = [content(5 * MiB, "pn1"), content(5 * MiB + 1, "pn2"), content(12345, "pn3")]
    etags = [
        s3.upload_part(Bucket=bucket, Key="pn", UploadId=uid, PartNumber=n, Body=p)["ETag"]
        for n, p in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="pn",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    total = sum(len(p) for p in parts)
    offset = 0
    for n, p in enumerate(parts, 1):
        head = s3.head_object(Bucket=bucket, Key="pn", PartNumber=n)
        assert head["ContentLength"] == len(p) and head["PartsCount"] == 3
        got = s3.get_object(Bucket=bucket, Key="pn", PartNumber=n)
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(p) - 1}/{total}"
        assert got["Body"].read() == p
        offset += len(p)


def test_reuploaded_part_gets_fresh_nonce(s3, mk_server, bucket) -> None:
    """Pitfall P3: the same part number uploaded twice must not reuse (key, nonce)."""
    uid = s3.create_multipart_upload(Bucket=bucket, Key="nonce", ServerSideEncryption="AES256")[
        "UploadId"
    ]
    data = content(100_000, "same")

    def new_files(before: set[Path]) -> set[Path]:
        return {p for p in mk_server.data_dir.rglob("*") if p.is_file()} - before

    headers: list[bytes] = []
    for _ in range(2):
        before = {p for p in mk_server.data_dir.rglob("*") if p.is_file()}
        s3.upload_part(Bucket=bucket, Key="nonce", UploadId=uid, PartNumber=1, Body=data)
        fresh = [p for p in new_files(before) if p.stat().st_size == dare.encrypted_size(len(data))]
        assert len(fresh) == 1
        headers.append(fresh[0].read_bytes()[:16])
    assert headers[0][0] == 0x20  # DARE 2.0 package header
    assert headers[0][4:16] != headers[1][4:16], "part stream nonce was reused"
    s3.abort_multipart_upload(Bucket=bucket, Key="nonce", UploadId=uid)


def test_multipart_errors(s3, bucket) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="err")["UploadId"]
    small = s3.upload_part(Bucket=bucket, Key="err", UploadId=uid, PartNumber=1, Body=b"a" * 10)
    last = s3.upload_part(Bucket=bucket, Key="err", UploadId=uid, PartNumber=2, Body=b"b" * 10)

    def complete(parts):
        return s3.complete_multipart_upload(
            Bucket=bucket, Key="err", UploadId=uid, MultipartUpload={"Parts": parts}
        )

    with pytest.raises(ClientError) as e:
        complete(
            [{"PartNumber": 1, "ETag": small["ETag"]}, {"PartNumber": 2, "ETag": last["ETag"]}]
        )
    assert code_of(e) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        complete(
            [{"PartNumber": 2, "ETag": last["ETag"]}, {"PartNumber": 1, "ETag": small["ETag"]}]
        )
    assert code_of(e) == "InvalidPartOrder"
    with pytest.raises(ClientError) as e:
        complete([{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}])
    assert code_of(e) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        complete([{"PartNumber": 3, "ETag": small["ETag"]}])
    assert code_of(e) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="err", UploadId=uid, PartNumber=10001, Body=b"x")
    assert code_of(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="err", UploadId="no-such-upload", PartNumber=1, Body=b"x")
    assert code_of(e) == "NoSuchUpload"

    # A single small part is fine (the last part may be any size); then the upload is gone.
    done = complete([{"PartNumber": 2, "ETag": last["ETag"]}])
    assert done["ETag"] == f'"{hashlib.md5(hashlib.md5(b"b" * 10).digest()).hexdigest()}-1"'
    assert s3.get_object(Bucket=bucket, Key="err")["Body"].read() == b"b" * 10
    assert "ServerSideEncryption" not in s3.head_object(Bucket=bucket, Key="err")
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="err", UploadId=uid)
    assert code_of(e) == "NoSuchUpload"


def test_upload_part_copy(s3, mk_server, bucket, tmp_path) -> None:
    """Parts copied from an encrypted and a plain object (whole and ranged), re-encrypted
    under the destination upload's part keys."""
    before = snapshot(mk_server.data_dir)
    enc_src = content(6 * MiB + 11, "copy-enc")
    plain_src = content(300_000, "copy-plain")
    s3.put_object(Bucket=bucket, Key="src/enc", Body=enc_src, ServerSideEncryption="AES256")
    s3.put_object(Bucket=bucket, Key="src/plain", Body=plain_src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="copied", ServerSideEncryption="AES256")[
        "UploadId"
    ]
    r1 = s3.upload_part_copy(
        Bucket=bucket,
        Key="copied",
        UploadId=uid,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src/enc"},
    )
    assert r1["CopyPartResult"]["ETag"] == f'"{hashlib.md5(enc_src).hexdigest()}"'
    assert r1["ServerSideEncryption"] == "AES256"
    r2 = s3.upload_part_copy(
        Bucket=bucket,
        Key="copied",
        UploadId=uid,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "src/plain"},
        CopySourceRange="bytes=65530-200000",
    )
    piece = plain_src[65530:200001]
    assert r2["CopyPartResult"]["ETag"] == f'"{hashlib.md5(piece).hexdigest()}"'
    for bad in ("bytes=0-300000", "bytes=5-1", "bytes=-10", "items=0-1"):
        want = "InvalidRange" if bad == "bytes=0-300000" else "InvalidArgument"
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(
                Bucket=bucket,
                Key="copied",
                UploadId=uid,
                PartNumber=3,
                CopySource={"Bucket": bucket, "Key": "src/plain"},
                CopySourceRange=bad,
            )
        assert code_of(e) == want, bad
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="copied",
            UploadId=uid,
            PartNumber=3,
            CopySource={"Bucket": bucket, "Key": "src/missing"},
        )
    assert code_of(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="copied",
            UploadId=uid,
            PartNumber=3,
            CopySource={"Bucket": bucket, "Key": "src/plain"},
            CopySourceIfMatch='"' + "0" * 32 + '"',
        )
    assert code_of(e) == "PreconditionFailed"
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="copied",
        UploadId=uid,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]},
            ]
        },
    )
    got = s3.get_object(Bucket=bucket, Key="copied")
    assert got["ServerSideEncryption"] == "AES256"
    assert got["Body"].read() == enc_src + piece
    assert_ciphertext_at_rest(mk_server.data_dir, enc_src, before, tmp_path)
    # The plain source is (rightly) stored as plaintext; its copy must not be: the piece
    # may be found in exactly one file, the source's.
    assert len(plaintext_leaks(mk_server.data_dir, piece, before, tmp_path)) == 1


def test_multipart_metadata_and_part_digest(s3, bucket) -> None:
    """Metadata given at Create reaches the object; a part with a wrong Content-MD5 is
    refused (BadDigest) and leaves no part behind; oversized metadata is refused."""
    up = s3.create_multipart_upload(
        Bucket=bucket,
        Key="meta",
        ContentType="text/plain",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="x.txt"',
        Metadata={"colour": "blue", "Mixed-Case": "v"},
        ServerSideEncryption="AES256",
    )
    uid = up["UploadId"]
    bad_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.upload_part(
            Bucket=bucket,
            Key="meta",
            UploadId=uid,
            PartNumber=1,
            Body=b"x" * 10,
            ContentMD5=bad_md5,
        )
    assert code_of(e) == "BadDigest"
    assert s3.list_parts(Bucket=bucket, Key="meta", UploadId=uid).get("Parts", []) == []
    good_md5 = base64.b64encode(hashlib.md5(b"x" * 10).digest()).decode()
    etag = s3.upload_part(
        Bucket=bucket, Key="meta", UploadId=uid, PartNumber=1, Body=b"x" * 10, ContentMD5=good_md5
    )["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="meta",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    head = s3.head_object(Bucket=bucket, Key="meta")
    assert head["ContentType"] == "text/plain"
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="x.txt"'
    assert head["Metadata"] == {"colour": "blue", "mixed-case": "v"}
    assert head["ServerSideEncryption"] == "AES256"
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket, Key="big-meta", Metadata={"m": "v" * 3000})
    assert code_of(e) == "MetadataTooLarge"


@pytest.mark.parametrize("sse_args", [{"ServerSideEncryption": "AES256"}, {}])
def test_empty_parts(s3, bucket, sse_args) -> None:
    """An empty last part (and an object made of one empty part) round-trip; an empty
    encrypted part is an empty DARE stream."""
    uid = s3.create_multipart_upload(Bucket=bucket, Key="e", **sse_args)["UploadId"]
    p1 = content(5 * MiB, "empty-parts")
    e1 = s3.upload_part(Bucket=bucket, Key="e", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="e", UploadId=uid, PartNumber=2, Body=b"")["ETag"]
    assert e2 == f'"{hashlib.md5(b"").hexdigest()}"'
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="e",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert s3.head_object(Bucket=bucket, Key="e")["ContentLength"] == len(p1)
    assert s3.get_object(Bucket=bucket, Key="e")["Body"].read() == p1
    assert s3.get_object(Bucket=bucket, Key="e", Range="bytes=-5")["Body"].read() == p1[-5:]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="z", **sse_args)["UploadId"]
    ez = s3.upload_part(Bucket=bucket, Key="z", UploadId=uid, PartNumber=1, Body=b"")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="z",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": ez}]},
    )
    assert s3.head_object(Bucket=bucket, Key="z")["ContentLength"] == 0
    assert s3.get_object(Bucket=bucket, Key="z")["Body"].read() == b""


def test_malformed_complete_body(s3, mk_server, bucket) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mal")["UploadId"]
    resp = signed_request(
        mk_server, "POST", f"/{bucket}/mal?uploadId={uid}", b"<CompleteMultipartUpload><Part>"
    )
    assert resp.status_code == 400 and error_code(resp) == "MalformedXML"
    resp = signed_request(
        mk_server, "POST", f"/{bucket}/mal?uploadId={uid}", b"<CompleteMultipartUpload/>"
    )
    assert resp.status_code == 400 and error_code(resp) == "MalformedXML"


def test_abort_list_parts_and_uploads(s3, bucket) -> None:
    uids = {}
    for key in ["a/one", "a/two", "b/three", "top"]:
        uids[key] = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    for n in (1, 2, 3):
        s3.upload_part(Bucket=bucket, Key="top", UploadId=uids["top"], PartNumber=n, Body=b"x" * n)

    page = s3.list_parts(Bucket=bucket, Key="top", UploadId=uids["top"], MaxParts=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2] and page["IsTruncated"]
    page2 = s3.list_parts(
        Bucket=bucket,
        Key="top",
        UploadId=uids["top"],
        PartNumberMarker=page["NextPartNumberMarker"],
    )
    assert [p["PartNumber"] for p in page2["Parts"]] == [3] and not page2["IsTruncated"]

    all_up = s3.list_multipart_uploads(Bucket=bucket)
    assert sorted((u["Key"], u["UploadId"]) for u in all_up["Uploads"]) == sorted(uids.items())
    grouped = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in grouped["Uploads"]] == ["top"]
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "b/"]
    pref = s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")
    assert sorted(u["Key"] for u in pref["Uploads"]) == ["a/one", "a/two"]
    first = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=1)
    assert first["IsTruncated"] and len(first["Uploads"]) == 1
    rest = s3.list_multipart_uploads(
        Bucket=bucket,
        KeyMarker=first["NextKeyMarker"],
        UploadIdMarker=first["NextUploadIdMarker"],
    )
    seen = [u["Key"] for u in first["Uploads"]] + [u["Key"] for u in rest["Uploads"]]
    assert sorted(seen) == sorted(uids)

    for key, uid in uids.items():
        resp = s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as e:
        s3.abort_multipart_upload(Bucket=bucket, Key="top", UploadId=uids["top"])
    assert code_of(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.list_multipart_uploads(Bucket="no-such-bucket-here")
    assert code_of(e) == "NoSuchBucket"


# =========================================================================== listing


LIST_KEYS = sorted(
    {
        "a",
        "a/b",
        "a/b/c",
        "a/b/d",
        "a/c",
        "a b+c",
        "a/ü/ω",
        "b/1",
        "b/2",
        "b/3/x",
        "c",
        "d/",
        "d/e",
        "zz%2F",
        "ctl\x01key",
        "ключ/значение",
    },
    key=lambda k: k.encode(),
)


def model(prefix: str, delimiter: str, after: str = "") -> list[str]:
    out: dict[bytes, str] = {}
    for k in LIST_KEYS:
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix) :]
        if delimiter and delimiter in rest:
            cp = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            out[cp.encode()] = "P:" + cp
        else:
            out[k.encode()] = "K:" + k
    return [v for b, v in sorted(out.items()) if b > after.encode()]


@pytest.fixture(scope="module")
def list_bucket(s3) -> str:
    name = "listing-semantics"
    s3.create_bucket(Bucket=name)
    for k in LIST_KEYS:
        s3.put_object(Bucket=name, Key=k, Body=k.encode(), ServerSideEncryption="AES256")
    return name


@pytest.mark.parametrize("prefix", ["", "a", "a/", "b/", "ключ", "nothing"])
@pytest.mark.parametrize("delimiter", ["", "/", "b"])
@pytest.mark.parametrize("page_size", [1, 2, 1000])
def test_list_v2_pagination_matches_model(s3, list_bucket, prefix, delimiter, page_size) -> None:
    seen: list[str] = []
    kwargs = {"Bucket": list_bucket, "Prefix": prefix, "MaxKeys": page_size}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    pages = 0
    while True:
        page = s3.list_objects_v2(**kwargs)
        pages += 1
        rows = ["K:" + o["Key"] for o in page.get("Contents", [])]
        rows += ["P:" + p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] == len(rows) <= page_size
        seen += sorted(rows, key=lambda r: r[2:].encode())
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
        assert pages < 100
    assert seen == model(prefix, delimiter)


@pytest.mark.parametrize("delimiter", ["", "/"])
def test_list_v1_paginator_matches_model(s3, list_bucket, delimiter) -> None:
    paginator = s3.get_paginator("list_objects")
    seen: list[str] = []
    kwargs = {"Bucket": list_bucket, "PaginationConfig": {"PageSize": 2}}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    for page in paginator.paginate(**kwargs):
        assert ("NextMarker" in page) == bool(page["IsTruncated"] and delimiter)
        rows = ["K:" + o["Key"] for o in page.get("Contents", [])]
        rows += ["P:" + p["Prefix"] for p in page.get("CommonPrefixes", [])]
        seen += sorted(rows, key=lambda r: r[2:].encode())
        for o in page.get("Contents", []):
            assert "Owner" in o  # V1 always reports the owner
    assert seen == model("", delimiter)


def test_list_values_and_options(s3, list_bucket) -> None:
    res = s3.list_objects_v2(Bucket=list_bucket, Prefix="a/b/")
    rows = {o["Key"]: o for o in res["Contents"]}
    for key in ("a/b/c", "a/b/d"):
        # Plaintext size and plaintext MD5, although the data at rest is encrypted.
        assert rows[key]["Size"] == len(key.encode())
        assert rows[key]["ETag"] == f'"{hashlib.md5(key.encode()).hexdigest()}"'
        assert rows[key]["StorageClass"] == "STANDARD"
        assert "Owner" not in rows[key]
    owned = s3.list_objects_v2(Bucket=list_bucket, Prefix="a/b/", FetchOwner=True)
    assert owned["Contents"][0]["Owner"]["DisplayName"] == ROOT_USER

    after = s3.list_objects_v2(Bucket=list_bucket, StartAfter="b/2", Delimiter="/")
    rows = ["K:" + o["Key"] for o in after.get("Contents", [])]
    rows += ["P:" + p["Prefix"] for p in after.get("CommonPrefixes", [])]
    assert sorted(rows, key=lambda r: r[2:].encode()) == model("", "/", "b/2")
    assert after["StartAfter"] == "b/2"

    # botocore asks for encoding-type=url on every listing and decodes what it set itself;
    # when the caller sets it explicitly, the raw S3-encoded names come back.
    enc = s3.list_objects_v2(Bucket=list_bucket, EncodingType="url", Prefix="a")
    assert enc["EncodingType"] == "url"
    keys = [o["Key"] for o in enc["Contents"]]
    assert "a%20b%2Bc" in keys and "a/%C3%BC/%CF%89" in keys
    assert [unquote_plus(k) for k in keys] == [k[2:] for k in model("a", "") if k.startswith("K:")]
    enc1 = s3.list_objects(Bucket=list_bucket, EncodingType="url", Delimiter="/")
    assert {unquote_plus(p["Prefix"]) for p in enc1["CommonPrefixes"]} == {
        k[2:] for k in model("", "/") if k.startswith("P:")
    }
    assert "%D0%BA%D0%BB%D1%8E%D1%87/" in {p["Prefix"] for p in enc1["CommonPrefixes"]}

    zero = s3.list_objects_v2(Bucket=list_bucket, MaxKeys=0)
    assert zero["KeyCount"] == 0 and "Contents" not in zero

    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=list_bucket, ContinuationToken="not-a-token!")
    assert code_of(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="no-such-bucket-xyz")
    assert code_of(e) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.list_objects(Bucket="no-such-bucket-xyz")
    assert code_of(e) == "NoSuchBucket"


def test_list_raw_xml_shape(mk_server, list_bucket) -> None:
    resp = signed_request(mk_server, "GET", f"/{list_bucket}?list-type=2&max-keys=abc")
    assert resp.status_code == 400 and error_code(resp) == "InvalidArgument"
    resp = signed_request(mk_server, "GET", f"/{list_bucket}?list-type=2&max-keys=2&prefix=a")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(resp.content)
    assert root.tag == NS + "ListBucketResult"
    assert root.findtext(NS + "Name") == list_bucket
    assert root.findtext(NS + "MaxKeys") == "2"
    assert root.findtext(NS + "KeyCount") == "2"
    assert root.findtext(NS + "IsTruncated") == "true"
    assert root.find(NS + "NextContinuationToken") is not None


# =========================================================================== DeleteObjects


def test_delete_objects(s3, mk_server, bucket) -> None:
    keys = [f"k/{i:02d}" for i in range(30)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"v")
    res = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": k} for k in keys[:10]] + [{"Key": "k/missing"}]},
    )
    assert sorted(d["Key"] for d in res["Deleted"]) == sorted([*keys[:10], "k/missing"])
    assert "Errors" not in res
    quiet = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[10:20]], "Quiet": True}
    )
    assert "Deleted" not in quiet and "Errors" not in quiet
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == keys[20:]

    # A key storage can never hold is reported per key; the others are still deleted.
    mixed = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": keys[20]}, {"Key": "../escape"}]}
    )
    assert [d["Key"] for d in mixed["Deleted"]] == [keys[20]]
    assert [(x["Key"], x["Code"]) for x in mixed["Errors"]] == [("../escape", "InvalidArgument")]

    body = b"<Delete><Object><Key>" + keys[21].encode() + b"</Key></Object></Delete>"
    # Missing Content-MD5 / checksum -> rejected, nothing deleted.
    resp = signed_request(mk_server, "POST", f"/{bucket}?delete", body)
    assert resp.status_code == 400 and error_code(resp) == "InvalidRequest"
    # Wrong Content-MD5 -> BadDigest, nothing deleted.
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    resp = signed_request(mk_server, "POST", f"/{bucket}?delete", body, {"Content-MD5": bad})
    assert resp.status_code == 400 and error_code(resp) == "BadDigest"
    s3.head_object(Bucket=bucket, Key=keys[21])
    # Correct Content-MD5 -> deleted.
    good = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = signed_request(mk_server, "POST", f"/{bucket}?delete", body, {"Content-MD5": good})
    assert resp.status_code == 200
    assert ET.fromstring(resp.content).find(NS + "Deleted").findtext(NS + "Key") == keys[21]

    many = b"<Delete>" + b"<Object><Key>x</Key></Object>" * 1001 + b"</Delete>"
    md5 = base64.b64encode(hashlib.md5(many).digest()).decode()
    resp = signed_request(mk_server, "POST", f"/{bucket}?delete", many, {"Content-MD5": md5})
    assert resp.status_code == 400 and error_code(resp) == "MalformedXML"
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket="no-such-bucket-xyz", Delete={"Objects": [{"Key": "a"}]})
    assert code_of(e) == "NoSuchBucket"


# =========================================================================== bucket encryption

AES_RULE = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}


def test_bucket_default_encryption(s3, mk_server, bucket, tmp_path) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_bucket_encryption(Bucket=bucket)
    assert code_of(e) == "ServerSideEncryptionConfigurationNotFoundError"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=AES_RULE)
    got = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert got["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    # A plain PUT (no SSE header) is now encrypted at rest and reports SSE-S3.
    plain = content(300_000, "bucket-default")
    before = snapshot(mk_server.data_dir)
    put = s3.put_object(Bucket=bucket, Key="plain-put", Body=plain)
    assert put["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket=bucket, Key="plain-put")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="plain-put")["Body"].read() == plain
    assert_ciphertext_at_rest(mk_server.data_dir, plain, before, tmp_path)

    # The rule applies to multipart uploads without an SSE header as well.
    multipart_roundtrip(s3, mk_server, bucket, tmp_path)

    s3.delete_bucket_encryption(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_encryption(Bucket=bucket)
    assert code_of(e) == "ServerSideEncryptionConfigurationNotFoundError"
    s3.put_object(Bucket=bucket, Key="after-delete", Body=b"clear")
    assert "ServerSideEncryption" not in s3.head_object(Bucket=bucket, Key="after-delete")


def test_bucket_encryption_validation(s3, bucket) -> None:
    two = {"Rules": AES_RULE["Rules"] * 2}
    with pytest.raises(ClientError) as e:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=two)
    assert code_of(e) == "MalformedXML"
    aes_with_key = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "AES256",
                    "KMSMasterKeyID": "my-key",
                }
            }
        ]
    }
    with pytest.raises(ClientError) as e:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=aes_with_key)
    assert code_of(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_encryption(Bucket=bucket)
    assert code_of(e) == "ServerSideEncryptionConfigurationNotFoundError"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_encryption(
            Bucket="no-such-bucket-xyz", ServerSideEncryptionConfiguration=AES_RULE
        )
    assert code_of(e) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_encryption(Bucket="no-such-bucket-xyz")
    assert code_of(e) == "NoSuchBucket"
    kms_rule = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": "my-key",
                }
            }
        ]
    }
    # An unknown KMS key is refused when the rule is written, not at the first PUT.
    with pytest.raises(ClientError) as e:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms_rule)
    assert code_of(e) == "KMS.NotFoundException"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_encryption(Bucket=bucket)
    assert code_of(e) == "ServerSideEncryptionConfigurationNotFoundError"

    # An aws:kms default with a valid key id: stored and applied (SSE-KMS) to plain PUTs
    # and to multipart uploads that carry no SSE header.
    rule_doc = kms_rule["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    rule_doc["KMSMasterKeyID"] = "arn:aws:kms:" + KEY_ID
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms_rule)
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": KEY_ID,
    }
    put = s3.put_object(Bucket=bucket, Key="kms-default", Body=b"k" * 100)
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["SSEKMSKeyId"] == KEY_ID  # the stored rule names the bare id
    up = s3.create_multipart_upload(Bucket=bucket, Key="kms-mp")
    assert up["ServerSideEncryption"] == "aws:kms"
    assert up["SSEKMSKeyId"] == KEY_ID
    s3.abort_multipart_upload(Bucket=bucket, Key="kms-mp", UploadId=up["UploadId"])
    s3.delete_bucket_encryption(Bucket=bucket)


def test_multipart_sse_kms(s3, mk_server, bucket, tmp_path) -> None:
    """SSE-KMS multipart: MinIO's SSE-KMS sealing with the client's key id and context."""
    before = snapshot(mk_server.data_dir)
    ctx = base64.b64encode(b'{"tenant":"t1"}').decode()
    up = s3.create_multipart_upload(
        Bucket=bucket,
        Key="kms",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=KEY_ID,
        SSEKMSEncryptionContext=ctx,
    )
    assert up["ServerSideEncryption"] == "aws:kms"
    assert up["SSEKMSKeyId"] == KEY_ID
    uid = up["UploadId"]
    p1, p2 = content(5 * MiB, "kms1"), content(99_999, "kms2")
    r1 = s3.upload_part(Bucket=bucket, Key="kms", UploadId=uid, PartNumber=1, Body=p1)
    assert r1["ServerSideEncryption"] == "aws:kms"
    r2 = s3.upload_part(Bucket=bucket, Key="kms", UploadId=uid, PartNumber=2, Body=p2)
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="kms",
        UploadId=uid,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]}]
        },
    )
    assert done["ServerSideEncryption"] == "aws:kms"
    got = s3.get_object(Bucket=bucket, Key="kms", Range=f"bytes={5 * MiB - 5}-{5 * MiB + 5}")
    assert got["Body"].read() == (p1 + p2)[5 * MiB - 5 : 5 * MiB + 6]
    head = s3.head_object(Bucket=bucket, Key="kms")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == KEY_ID
    assert s3.get_object(Bucket=bucket, Key="kms")["Body"].read() == p1 + p2
    assert_ciphertext_at_rest(mk_server.data_dir, p1 + p2, before, tmp_path)


def test_bucket_encryption_needs_kms(tmp_path) -> None:
    srv = start_server(tmp_path)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="no-kms")
        with pytest.raises(ClientError) as e:
            s3.put_bucket_encryption(Bucket="no-kms", ServerSideEncryptionConfiguration=AES_RULE)
        assert code_of(e) == "NotImplemented"
        assert "KMS is not configured" in e.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as e:
            s3.create_multipart_upload(Bucket="no-kms", Key="k", ServerSideEncryption="AES256")
        assert code_of(e) == "NotImplemented"
    finally:
        stop_and_check_log(srv)


# =========================================================================== real OpenBao


@pytest.mark.parametrize("creds_fixture", ["vault_creds", "vault_creds_ns1"])
def test_multipart_and_bucket_default_with_openbao(request, tmp_path, creds_fixture) -> None:
    """Same flows with data keys from OpenBao transit over AppRole (root and namespace)."""
    creds = request.getfixturevalue(creds_fixture)
    srv = start_server(tmp_path / "srv", **creds.env())
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="vault-mp")
        multipart_roundtrip(s3, srv, "vault-mp", tmp_path, ServerSideEncryption="AES256")

        s3.put_bucket_encryption(Bucket="vault-mp", ServerSideEncryptionConfiguration=AES_RULE)
        data = content(200_000, "vault-default")
        assert s3.put_object(Bucket="vault-mp", Key="p", Body=data)["ServerSideEncryption"] == (
            "AES256"
        )
        assert s3.get_object(Bucket="vault-mp", Key="p")["Body"].read() == data
        assert_ciphertext_at_rest(srv.data_dir, data)

        # The sealed DEK in the upload's metadata is an OpenBao transit ciphertext.
        import asyncio

        from sealstore.storage.fs import FSBackend

        async def look():
            fs = FSBackend(srv.data_dir)
            await fs.open()
            try:
                return await fs.head("vault-mp", "dir/big.bin")
            finally:
                await fs.close()

        meta = asyncio.run(look())
        sealed_dek = base64.b64decode(meta.internal[sse.META_S3_KMS_SEALED_KEY])
        assert sealed_dek.startswith(b"vault:v1:")
        assert meta.internal[sse.META_S3_KMS_KEY_ID] == creds.key_name

        # Listing sizes/ETags need no KMS call and match the plaintext.
        rows = {o["Key"]: o for o in s3.list_objects_v2(Bucket="vault-mp")["Contents"]}
        assert rows["p"]["Size"] == len(data)
        assert rows["p"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        res = s3.delete_objects(
            Bucket="vault-mp", Delete={"Objects": [{"Key": "p"}, {"Key": "dir/big.bin"}]}
        )
        assert len(res["Deleted"]) == 2
        assert "Contents" not in s3.list_objects_v2(Bucket="vault-mp")
    finally:
        stop_and_check_log(srv, creds.secret_id)


# =========================================================================== keep-alive completion


@pytest.fixture
def inprocess_server(tmp_path) -> Iterator[str]:
    """The real app (real storage, master-key KMS) served from a thread in this process, so
    the test can shorten the completion keep-alive thresholds of the multipart module."""
    import argparse
    import asyncio
    import threading

    from aiohttp import web

    from sealstore.config import Settings
    from sealstore.s3.app import build_app
    from tests.integration.server import free_port

    port = free_port()
    (tmp_path / "data").mkdir()
    settings = Settings.from_env(
        {
            "MINIO_ROOT_USER": ROOT_USER,
            "MINIO_ROOT_PASSWORD": ROOT_PASSWORD,
            "MINIO_SSE_MASTER_KEY": MASTER_KEY,
        },
        argparse.Namespace(address=f"127.0.0.1:{port}", data_dir=str(tmp_path / "data")),
    )
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(settings))
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(20)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_complete_with_keepalive_whitespace(inprocess_server, monkeypatch) -> None:
    """When completion is slow the 200 is sent early with whitespace, then the result or an
    ``<Error>`` document in the body; botocore understands both (as with AWS)."""
    from sealstore.s3.handlers import multipart
    from tests.integration.server import make_client

    monkeypatch.setattr(multipart, "KEEPALIVE_AFTER", 0.0)
    monkeypatch.setattr(multipart, "KEEPALIVE_EVERY", 0.0)
    s3 = make_client(inprocess_server)
    s3.create_bucket(Bucket="keepalive")
    uid = s3.create_multipart_upload(Bucket="keepalive", Key="k", ServerSideEncryption="AES256")[
        "UploadId"
    ]
    p1, p2 = content(5 * MiB, "ka1"), content(1000, "ka2")
    e1 = s3.upload_part(Bucket="keepalive", Key="k", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket="keepalive", Key="k", UploadId=uid, PartNumber=2, Body=p2)["ETag"]

    # An error discovered after the 200 went out arrives as an <Error> body.
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="keepalive",
            Key="k",
            UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e2}]},
        )
    assert code_of(e) == "InvalidPart"

    done = s3.complete_multipart_upload(
        Bucket="keepalive",
        Key="k",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    md5s = hashlib.md5(p1).digest() + hashlib.md5(p2).digest()
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-2"'
    assert done["ServerSideEncryption"] == "AES256"
    # It really was the streamed (keep-alive) answer, not the buffered one.
    assert done["ResponseMetadata"]["HTTPHeaders"].get("transfer-encoding") == "chunked"
    assert s3.get_object(Bucket="keepalive", Key="k")["Body"].read() == p1 + p2


def test_multipart_kms_outage_then_heal(private_openbao, approle, tmp_path) -> None:
    """OpenBao down: SSE multipart operations answer 503 and store nothing; after OpenBao
    is back (restarted and unsealed) the same upload continues and completes."""
    import time

    creds = approle(server=private_openbao)
    srv = start_server(tmp_path / "srv", **creds.env())
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="outage")
        uid = s3.create_multipart_upload(Bucket="outage", Key="k", ServerSideEncryption="AES256")[
            "UploadId"
        ]
        p1, p2 = content(5 * MiB, "out1"), content(4321, "out2")
        e1 = s3.upload_part(Bucket="outage", Key="k", UploadId=uid, PartNumber=1, Body=p1)["ETag"]

        private_openbao.stop()
        with pytest.raises(ClientError) as e:
            s3.create_multipart_upload(Bucket="outage", Key="k2", ServerSideEncryption="AES256")
        assert code_of(e) == "ServiceUnavailable"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert "KMS" in e.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket="outage", Key="k", UploadId=uid, PartNumber=2, Body=p2)
        assert code_of(e) == "ServiceUnavailable"
        listed = s3.list_parts(Bucket="outage", Key="k", UploadId=uid)["Parts"]
        assert [p["PartNumber"] for p in listed] == [1]
        assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="outage")["Uploads"]] == ["k"]

        private_openbao.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                e2 = s3.upload_part(Bucket="outage", Key="k", UploadId=uid, PartNumber=2, Body=p2)[
                    "ETag"
                ]
                break
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ServiceUnavailable"
                assert time.monotonic() < deadline, "KMS did not heal"
                time.sleep(1)
        s3.complete_multipart_upload(
            Bucket="outage",
            Key="k",
            UploadId=uid,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]
            },
        )
        assert s3.get_object(Bucket="outage", Key="k")["Body"].read() == p1 + p2
    finally:
        stop_and_check_log(srv, creds.secret_id)


def test_multipart_auto_encryption(tmp_path) -> None:
    """MINIO_SSE_AUTO_ENCRYPTION=on: a multipart upload without any SSE header is SSE-S3."""
    srv = start_server(
        tmp_path / "srv", MINIO_SSE_MASTER_KEY=MASTER_KEY, MINIO_SSE_AUTO_ENCRYPTION="on"
    )
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="auto-enc")
        up = s3.create_multipart_upload(Bucket="auto-enc", Key="k")
        assert up["ServerSideEncryption"] == "AES256"
        multipart_roundtrip(s3, srv, "auto-enc", tmp_path)
    finally:
        stop_and_check_log(srv, MASTER_KEY)
