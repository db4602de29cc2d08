"""S3 conformance fixes found by a boto3 conformance suite (s3-tests style), against one real
sealstore process (two workers sharing the data directory, SSE-S3 by master key), each driven
by boto3 and a second real client (awscli, or presigned URLs fetched with requests):

* a retried CompleteMultipartUpload of a completed upload answers the same 200 result;
* an empty CompleteMultipartUpload body is 400 MalformedXML;
* UploadPartCopy with a copy-source-range past the source is 416 InvalidRange;
* presigned URLs with X-Amz-Expires of 0, negative or over a week, and expired ones, are 403;
* an empty ListObjectsV2 continuation-token lists from the start; V1 under encoding-type=url
  keeps the top-level Prefix as sent;
* conditional writes (If-None-Match: *, If-Match) on PutObject and CompleteMultipartUpload:
  412, 404, 501, and 409 ConditionalRequestConflict for the loser of a real race, which can
  never let two creators both succeed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.server import REGION, ROOT_PASSWORD, ROOT_USER, ServerProcess, base_env

MASTER_KEY = "conformance-key:" + hashlib.sha256(b"s3 conformance master").hexdigest()
BIN = Path(sys.executable).parent
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("conformance")
    (root / "data").mkdir()
    env = base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY, MINIO_SSE_AUTO_ENCRYPTION="on")
    server = ServerProcess(root / "data", env, root / "server.log", workers=2).start()
    server.wait_ready()
    yield server
    server.stop()
    assert ROOT_PASSWORD not in server.log_text()


@pytest.fixture(scope="module")
def s3(srv: ServerProcess) -> Any:
    return srv.client()


@pytest.fixture(scope="module")
def aws(srv: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run ``aws s3api ...``; returns (returncode, stdout, stderr). Credentials only in a
    0600 file, never in argv."""
    home = tmp_path_factory.mktemp("aws-home")
    creds = home / "credentials"
    fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            f"[default]\naws_access_key_id = {ROOT_USER}\naws_secret_access_key = {ROOT_PASSWORD}\n"
        )
    (home / "config").write_text(
        f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n"
        "retry_mode = standard\nmax_attempts = 1\n"
    )
    env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        "AWS_CONFIG_FILE": str(home / "config"),
    }

    def run(*args: str) -> tuple[int, str, str]:
        argv = [str(BIN / "aws"), "--endpoint-url", srv.endpoint, "s3api", *args]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert ROOT_PASSWORD not in proc.stdout + proc.stderr
        return proc.returncode, proc.stdout, proc.stderr

    return run


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"conf-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name)
    return name


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    resp = exc.value.response
    return int(resp["ResponseMetadata"]["HTTPStatusCode"]), str(resp["Error"]["Code"])


def one_part_upload(s3: Any, bucket: str, key: str, data: bytes) -> tuple[str, list[dict]]:
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=data)["ETag"]
    return uid, [{"PartNumber": 1, "ETag": etag}]


# =========================================================================== multipart


def test_retried_complete_answers_the_same_result(s3: Any, aws: Any, bucket: str) -> None:
    data = b"retried completion " * 100
    uid, parts = one_part_upload(s3, bucket, "mp", data)
    first = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    again = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    fields = ("Location", "Bucket", "Key", "ETag", "ServerSideEncryption")
    assert [again[f] for f in fields] == [first[f] for f in fields]
    assert first["ServerSideEncryption"] == "AES256"
    # The second client retries too, with the same part list: same result.
    rc, out, err = aws(
        "complete-multipart-upload",
        "--bucket",
        bucket,
        "--key",
        "mp",
        "--upload-id",
        uid,
        "--multipart-upload",
        json.dumps({"Parts": parts}),
    )
    assert rc == 0, err
    assert json.loads(out)["ETag"] == first["ETag"]
    # A different part list, another upload id, or another key is still NoSuchUpload.
    wrong = [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]
    for key, upload_id, listed in (("mp", uid, wrong), ("mp", uid + "0", parts), ("x", uid, parts)):
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
            )
        assert code_of(e) == (404, "NoSuchUpload")
    # The recorded upload id does not disturb reads: the layout still verifies.
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == data and got["ETag"] == first["ETag"]
    assert not any("internal" in h.lower() for h in got["ResponseMetadata"]["HTTPHeaders"])


def test_concurrent_retries_of_one_complete_all_succeed(s3: Any, bucket: str) -> None:
    """Retries that overlap the first attempt (the upload vanishes while they run) get the
    same 200 result too, whichever of them publishes."""
    uid, parts = one_part_upload(s3, bucket, "overlap", b"overlapping completions")
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def complete() -> None:
        barrier.wait()
        try:
            results.append(
                s3.complete_multipart_upload(
                    Bucket=bucket, Key="overlap", UploadId=uid, MultipartUpload={"Parts": parts}
                )["ETag"]
            )
        except ClientError as exc:
            results.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=complete) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    etag = s3.head_object(Bucket=bucket, Key="overlap")["ETag"]
    assert results == [etag] * 4


def test_complete_with_empty_body_is_malformed_xml(s3: Any, aws: Any, bucket: str) -> None:
    uid, _ = one_part_upload(s3, bucket, "empty", b"x" * 10)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="empty", UploadId=uid)
    assert code_of(e) == (400, "MalformedXML")
    rc, _, err = aws(
        "complete-multipart-upload", "--bucket", bucket, "--key", "empty", "--upload-id", uid
    )
    assert rc != 0 and "MalformedXML" in err
    s3.abort_multipart_upload(Bucket=bucket, Key="empty", UploadId=uid)


def test_upload_part_copy_range_outside_source(s3: Any, aws: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    src = {"Bucket": bucket, "Key": "src"}
    for rng in ("bytes=0-10", "bytes=0-21", "bytes=10-12"):
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(
                Bucket=bucket,
                Key="dst",
                UploadId=uid,
                PartNumber=1,
                CopySource=src,
                CopySourceRange=rng,
            )
        assert code_of(e) == (416, "InvalidRange"), rng
    for rng in ("0-2", "bytes=0", "bytes=hello-world", "bytes=0-bar", "bytes=0-2,3-5"):
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(
                Bucket=bucket,
                Key="dst",
                UploadId=uid,
                PartNumber=1,
                CopySource=src,
                CopySourceRange=rng,
            )
        assert code_of(e) == (400, "InvalidArgument"), rng
    rc, _, err = aws(
        "upload-part-copy",
        "--bucket",
        bucket,
        "--key",
        "dst",
        "--upload-id",
        uid,
        "--part-number",
        "1",
        "--copy-source",
        f"{bucket}/src",
        "--copy-source-range",
        "bytes=5-10",
    )
    assert rc != 0 and "InvalidRange" in err
    done = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        PartNumber=1,
        CopySource=src,
        CopySourceRange="bytes=2-9",
    )
    assert done["CopyPartResult"]["ETag"] == f'"{hashlib.md5(b"23456789").hexdigest()}"'
    s3.abort_multipart_upload(Bucket=bucket, Key="dst", UploadId=uid)


# =========================================================================== presigned URLs


def _error(resp: requests.Response) -> tuple[int, str, str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(resp.content)
    return resp.status_code, root.findtext("Code") or "", root.findtext("Message") or ""


@pytest.mark.parametrize(
    ("expires", "code", "message"),
    [
        (0, "AccessDenied", "Request has expired"),
        (-1000, "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative"),
        (604801, "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week"),
    ],
)
def test_presigned_expires_out_of_range(
    s3: Any, bucket: str, expires: int, code: str, message: str
) -> None:
    s3.put_object(Bucket=bucket, Key="there", Body=b"presigned")
    get = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "there"}, ExpiresIn=expires
    )
    put = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "new"}, ExpiresIn=expires
    )
    assert f"X-Amz-Expires={expires}" in get
    status, got_code, got_message = _error(requests.get(get, timeout=10))
    assert (status, got_code) == (403, code) and got_message.startswith(message)
    status, got_code, _ = _error(requests.put(put, data=b"must not land", timeout=10))
    assert (status, got_code) == (403, code)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="new")
    assert code_of(e)[0] == 404
    ok = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "there"}, ExpiresIn=604800
    )
    assert requests.get(ok, timeout=10).content == b"presigned"


# =========================================================================== listing


def test_empty_continuation_token_and_v1_prefix_encoding(s3: Any, aws: Any, bucket: str) -> None:
    for key in ("a b+/1", "a b+/2", "a b+c", "z"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    listed = s3.list_objects_v2(Bucket=bucket, ContinuationToken="")
    assert listed["ContinuationToken"] == ""
    assert [o["Key"] for o in listed["Contents"]] == ["a b+/1", "a b+/2", "a b+c", "z"]
    # Asked for explicitly, encoding-type=url comes back as sent: V1 encodes Delimiter,
    # Marker, NextMarker, Key and CommonPrefixes but not the top-level Prefix; V2 encodes it.
    v1 = s3.list_objects(Bucket=bucket, Prefix="a b+", Delimiter="/", EncodingType="url")
    assert v1["Prefix"] == "a b+" and v1["Delimiter"] == "/"
    assert [p["Prefix"] for p in v1["CommonPrefixes"]] == ["a%20b%2B/"]
    assert [o["Key"] for o in v1["Contents"]] == ["a%20b%2Bc"]
    v2 = s3.list_objects_v2(Bucket=bucket, Prefix="a b+", Delimiter="/", EncodingType="url")
    assert v2["Prefix"] == "a%20b%2B" and [o["Key"] for o in v2["Contents"]] == ["a%20b%2Bc"]
    # Left to the SDK, botocore asks for url encoding itself and decodes exactly S3's set of
    # elements per version, so every name must come back as stored.
    for listing in (
        s3.list_objects(Bucket=bucket, Prefix="a b+", Delimiter="/"),
        s3.list_objects_v2(Bucket=bucket, Prefix="a b+", Delimiter="/"),
    ):
        assert listing["Prefix"] == "a b+"
        assert [p["Prefix"] for p in listing["CommonPrefixes"]] == ["a b+/"]
        assert [o["Key"] for o in listing["Contents"]] == ["a b+c"]
    rc, out, err = aws("list-objects", "--bucket", bucket, "--prefix", "a b+", "--delimiter", "/")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["Prefix"] == "a b+" and [o["Key"] for o in doc["Contents"]] == ["a b+c"]
    assert [p["Prefix"] for p in doc["CommonPrefixes"]] == ["a b+/"]
    rc, out, err = aws("list-objects-v2", "--bucket", bucket, "--continuation-token", "")
    assert rc == 0, err
    assert len(json.loads(out)["Contents"]) == 4


# =========================================================================== conditional writes


def test_conditional_put(s3: Any, aws: Any, bucket: str, tmp_path: Path) -> None:
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch="*")
    assert code_of(e) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch='"' + "0" * 32 + '"')
    assert code_of(e) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"two", IfMatch=first["ETag"])
    assert code_of(e) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch=first["ETag"])
    assert code_of(e) == (501, "NotImplemented")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=first["ETag"])
    assert s3.get_object(Bucket=bucket, Key="k")["ETag"] == second["ETag"]
    # awscli: put-object --if-none-match '*' creates once, then refuses.
    body = tmp_path / "body"
    body.write_bytes(b"from awscli")
    args = ("put-object", "--bucket", bucket, "--key", "cli", "--body", str(body))
    rc, _, err = aws(*args, "--if-none-match", "*")
    assert rc == 0, err
    rc, _, err = aws(*args, "--if-none-match", "*")
    assert rc != 0 and "PreconditionFailed" in err
    rc, _, err = aws(*args, "--if-match", '"' + "f" * 32 + '"')
    assert rc != 0 and "PreconditionFailed" in err
    assert s3.get_object(Bucket=bucket, Key="cli")["Body"].read() == b"from awscli"


def test_conditional_complete(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="mp", Body=b"already here")
    uid, parts = one_part_upload(s3, bucket, "mp", b"multipart body")
    for cond in ({"IfNoneMatch": "*"}, {"IfMatch": '"' + "0" * 32 + '"'}):
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(
                Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts}, **cond
            )
        assert code_of(e) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"already here"
    # The upload survives a refused completion; If-Match with the current ETag completes it.
    current = s3.head_object(Bucket=bucket, Key="mp")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts}, IfMatch=current
    )
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"multipart body"
    # A retry of that successful completion still answers 200, condition or not.
    again = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts}, IfMatch=current
    )
    assert again["ETag"] == done["ETag"]
    uid2, parts2 = one_part_upload(s3, bucket, "fresh", b"created once")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="fresh",
        UploadId=uid2,
        MultipartUpload={"Parts": parts2},
        IfNoneMatch="*",
    )
    uid3, parts3 = one_part_upload(s3, bucket, "absent", b"x")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="absent",
            UploadId=uid3,
            MultipartUpload={"Parts": parts3},
            IfMatch=done["ETag"],
        )
    assert code_of(e) == (404, "NoSuchKey")


def _signed_put_headers(srv: ServerProcess, path: str, body: bytes) -> dict[str, str]:
    req = AWSRequest(
        method="PUT",
        url=srv.endpoint + path,
        data=body,
        headers={
            "Host": f"127.0.0.1:{srv.port}",
            "If-None-Match": "*",
            "Content-Length": str(len(body)),
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        },
    )
    S3SigV4Auth(Credentials(ROOT_USER, ROOT_PASSWORD), "s3", REGION).add_auth(req)
    return dict(req.headers)


def _staged_bytes(data_dir: Path) -> int:
    """The largest upload in flight in the data directory's staging area (tmp files)."""
    sizes = [p.stat().st_size for p in (data_dir / "tmp").iterdir() if p.is_file()]
    return max(sizes, default=0)


def test_racing_if_none_match_puts_one_wins_loser_gets_409(
    srv: ServerProcess, s3: Any, bucket: str
) -> None:
    """A creator that passed the check when it started, but whose key was created while its
    body was still arriving, loses with 409 ConditionalRequestConflict (deterministically:
    the slow upload is held halfway until the fast one has committed)."""
    slow_body = os.urandom(2 * MiB)
    headers = _signed_put_headers(srv, f"/{bucket}/race", slow_body)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.putrequest("PUT", f"/{bucket}/race", skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    assert _staged_bytes(srv.data_dir) == 0  # nothing else in flight
    conn.send(slow_body[: 3 * MiB // 2])
    # The slow PUT is past its precondition check once its first batch is staged on disk.
    deadline = time.monotonic() + 20
    while _staged_bytes(srv.data_dir) == 0:
        assert time.monotonic() < deadline, "the slow upload never started writing"
        time.sleep(0.01)
    fast = s3.put_object(Bucket=bucket, Key="race", Body=b"fast", IfNoneMatch="*")
    conn.send(slow_body[3 * MiB // 2 :])
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    assert resp.status == 409, payload
    assert b"<Code>ConditionalRequestConflict</Code>" in payload
    got = s3.get_object(Bucket=bucket, Key="race")
    assert got["ETag"] == fast["ETag"] and got["Body"].read() == b"fast"


def test_many_concurrent_creators_exactly_one_wins(s3: Any, bucket: str) -> None:
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def create(n: int) -> None:
        body = f"creator {n} ".encode() * 20000
        start.wait()
        try:
            s3.put_object(Bucket=bucket, Key="once", Body=body, IfNoneMatch="*")
            outcome = 200
        except ClientError as exc:
            outcome = int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
        with lock:
            results.append((outcome, body))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [body for status, body in results if status == 200]
    assert len(winners) == 1, sorted(s for s, _ in results)
    assert {s for s, _ in results if s != 200} <= {409, 412}
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == winners[0]
