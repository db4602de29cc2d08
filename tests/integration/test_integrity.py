"""Tampering at rest with a real server's index (someone with write access to the data
directory), driven by boto3: dropping or reordering the part entries of a multipart object,
cutting a single-part object's size to a package boundary, truncating its data file, or
swapping a part's data back to an earlier upload of the same part number is
answered with a clear 500 ``XMinioObjectTampered`` before the first byte (GET and HEAD),
never a 200 with a short or reordered body; a sealed key copied between keys that Go's path
cleaning makes alike (``a/b`` and ``a//b``, ``dir`` and ``dir/``) does not open (403); objects
without a layout entry (written before it existed) stay readable and are logged as legacy.
The server runs in master-key mode (a real KMS mode of the server; no OpenBao needed)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sealstore.crypto import dare
from tests.integration.server import ServerProcess, base_env

MASTER_KEY = "integrity-key:" + hashlib.sha256(b"integrity master").hexdigest()
BUCKET = "tamper"
MIB = 1024 * 1024
LAYOUT = "X-Sealstore-Internal-Layout"
ACTUAL_SIZE = "X-Minio-Internal-Actual-Size"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("integrity")
    env = base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY, MINIO_SSE_AUTO_ENCRYPTION="on")
    srv = ServerProcess(root / "data", env, root / "server.log").start()
    srv.wait_ready()
    srv.client().create_bucket(Bucket=BUCKET)
    yield srv
    srv.stop()
    assert MASTER_KEY.split(":")[1] not in srv.log_text()


def _db(srv: ServerProcess) -> sqlite3.Connection:
    return sqlite3.connect(srv.data_dir / "sealstore.sqlite3", timeout=30)


def _row(srv: ServerProcess, key: str) -> dict[str, Any]:
    with _db(srv) as db:
        got = db.execute(
            "SELECT size, stored_size, etag, internal, parts, files FROM objects "
            "WHERE bucket=? AND key=?",
            (BUCKET, key.encode()),
        ).fetchone()
    assert got is not None, key
    size, stored, etag, internal, parts, files = got
    return {
        "size": size,
        "stored_size": stored,
        "etag": etag,
        "internal": json.loads(internal),
        "parts": json.loads(parts),
        "files": json.loads(files),
    }


def _write(srv: ServerProcess, key: str, row: dict[str, Any]) -> None:
    """Replace the index row of ``key`` as an attacker with the data directory would."""
    with _db(srv) as db:
        db.execute(
            "UPDATE objects SET size=?, stored_size=?, etag=?, internal=?, parts=?, files=? "
            "WHERE bucket=? AND key=?",
            (
                row["size"],
                row["stored_size"],
                row["etag"],
                json.dumps(row["internal"]),
                json.dumps(row["parts"]),
                json.dumps(row["files"]),
                BUCKET,
                key.encode(),
            ),
        )


def _refused(s3: Any, key: str, status: int, code: str) -> ClientError:
    """GET and HEAD of ``key`` both fail with ``status``; GET carries ``code``."""
    with pytest.raises(ClientError) as got:
        s3.get_object(Bucket=BUCKET, Key=key)
    err = got.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == status, err
    assert err["Error"]["Code"] == code, err
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=BUCKET, Key=key)
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    return got.value


def _multipart(s3: Any, key: str, parts: list[bytes]) -> None:
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    listed = []
    for n, data in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=n, Body=data)
        listed.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": listed}
    )


@pytest.fixture(scope="module")
def parts(server: ServerProcess) -> list[bytes]:
    datas = [os.urandom(5 * MIB), os.urandom(5 * MIB + 3), os.urandom(1234)]
    return datas


def test_dropped_part_entry_is_refused_before_the_first_byte(
    server: ServerProcess, parts: list[bytes]
) -> None:
    s3 = server.client()
    _multipart(s3, "mp-drop", parts)
    assert s3.get_object(Bucket=BUCKET, Key="mp-drop")["Body"].read() == b"".join(parts)
    row = _row(server, "mp-drop")
    row["parts"], row["files"] = row["parts"][:2], row["files"][:2]
    row["size"] = sum(p["s"] for p in row["parts"])
    row["stored_size"] = sum(p["ss"] for p in row["parts"])
    _write(server, "mp-drop", row)
    err = _refused(s3, "mp-drop", 500, "XMinioObjectTampered")
    assert "layout" in err.response["Error"]["Message"]
    assert "integrity check failed" in server.log_text()


def test_reordered_part_entries_are_refused(server: ServerProcess, parts: list[bytes]) -> None:
    s3 = server.client()
    _multipart(s3, "mp-order", parts)
    row = _row(server, "mp-order")
    order = [1, 0, 2]
    row["parts"] = [row["parts"][i] for i in order]
    row["files"] = [row["files"][i] for i in order]
    _write(server, "mp-order", row)
    _refused(s3, "mp-order", 500, "XMinioObjectTampered")
    with pytest.raises(ClientError):  # a range inside the first part: still refused
        s3.get_object(Bucket=BUCKET, Key="mp-order", Range="bytes=0-99")


def test_size_cut_to_a_package_boundary_is_refused(server: ServerProcess) -> None:
    s3 = server.client()
    data = os.urandom(3 * dare.PAYLOAD_SIZE + 100)
    s3.put_object(Bucket=BUCKET, Key="cut", Body=data)
    row = _row(server, "cut")
    cut = 3 * dare.PAYLOAD_SIZE
    row["size"], row["stored_size"] = cut, dare.encrypted_size(cut)
    row["internal"][ACTUAL_SIZE] = str(cut)
    _write(server, "cut", row)
    _refused(s3, "cut", 500, "XMinioObjectTampered")


def test_truncated_data_file_is_refused_before_the_first_byte(server: ServerProcess) -> None:
    s3 = server.client()
    data = os.urandom(3 * dare.PAYLOAD_SIZE + 100)
    s3.put_object(Bucket=BUCKET, Key="short-file", Body=data)
    (file_id,) = _row(server, "short-file")["files"]
    blob = server.data_dir / "blobs" / file_id[:2] / file_id
    blob.chmod(0o600)
    with blob.open("r+b") as fh:
        fh.truncate(3 * dare.PACKAGE_SIZE)
    with pytest.raises(ClientError) as got:
        s3.get_object(Bucket=BUCKET, Key="short-file")
    assert got.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert got.value.response["Error"]["Code"] == "XMinioObjectTampered"


@pytest.mark.parametrize(("source", "alias"), [("a/b", "a//b"), ("dir", "dir/")])
def test_sealed_key_copied_to_an_alike_key_does_not_open(
    server: ServerProcess, source: str, alias: str
) -> None:
    s3 = server.client()
    secret, other = os.urandom(2000), os.urandom(1000)
    s3.put_object(Bucket=BUCKET, Key=source, Body=secret)
    s3.put_object(Bucket=BUCKET, Key=alias, Body=other)
    assert s3.get_object(Bucket=BUCKET, Key=alias)["Body"].read() == other
    stolen = _row(server, source)
    stolen["internal"].pop(LAYOUT, None)  # and let it pose as an object older than the binding
    _write(server, alias, stolen)
    _refused(s3, alias, 403, "AccessDenied")
    assert s3.get_object(Bucket=BUCKET, Key=source)["Body"].read() == secret


def test_legacy_object_stays_readable_and_is_logged(server: ServerProcess) -> None:
    s3 = server.client()
    data = os.urandom(70000)
    s3.put_object(Bucket=BUCKET, Key="legacy", Body=data)
    row = _row(server, "legacy")
    row["internal"].pop(LAYOUT, None)
    _write(server, "legacy", row)
    assert s3.head_object(Bucket=BUCKET, Key="legacy")["ContentLength"] == len(data)
    assert s3.get_object(Bucket=BUCKET, Key="legacy")["Body"].read() == data
    assert "legacy encrypted object without a layout binding" in server.log_text()


def test_untampered_objects_read_whole_and_by_range(
    server: ServerProcess, parts: list[bytes]
) -> None:
    s3 = server.client()
    _multipart(s3, "mp-ok", parts)
    whole = b"".join(parts)
    assert s3.get_object(Bucket=BUCKET, Key="mp-ok")["Body"].read() == whole
    lo = len(parts[0]) - 5
    got = s3.get_object(Bucket=BUCKET, Key="mp-ok", Range=f"bytes={lo}-{lo + 9}")
    assert got["Body"].read() == whole[lo : lo + 10]
    assert s3.get_object(Bucket=BUCKET, Key="mp-ok", PartNumber=3)["Body"].read() == parts[2]
    s3.copy_object(Bucket=BUCKET, Key="mp-copy", CopySource={"Bucket": BUCKET, "Key": "mp-ok"})
    assert s3.get_object(Bucket=BUCKET, Key="mp-copy")["Body"].read() == whole


def test_part_rolled_back_to_an_earlier_upload_is_refused(server: ServerProcess) -> None:
    """Part 1 uploaded twice: the earlier data file (same part key, same size) swapped back
    in by editing the index is refused, not served as the object's first 5 MiB."""
    s3 = server.client()
    key = "mp-rollback"
    first, second, tail = os.urandom(5 * MIB), os.urandom(5 * MIB), b"tail"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=first)
    with _db(server) as db:
        (old_file,) = db.execute("SELECT file FROM parts WHERE upload_id=?", (upload,)).fetchone()
    listed = []
    for n, data in ((1, second), (2, tail)):
        r = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=n, Body=data)
        listed.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": listed}
    )
    row = _row(server, key)
    assert row["files"][0] != old_file
    row["files"][0] = old_file
    _write(server, key, row)
    with pytest.raises(ClientError) as got:
        s3.get_object(Bucket=BUCKET, Key=key)
    assert got.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert got.value.response["Error"]["Code"] == "XMinioObjectTampered"


def test_admin_verify_lists_the_tampered_objects(server: ServerProcess) -> None:
    """`sealstore admin verify` (metadata only, no --deep) runs the same layout check as a GET:
    every object an earlier test tampered with is listed, the untouched ones are not, and the
    exit status is 1. Runs last in this module, over what the tests above left behind."""
    s3 = server.client()
    s3.put_object(Bucket=BUCKET, Key="verify-clean", Body=b"clean")
    env = base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY)
    proc = subprocess.run(
        [sys.executable, "-m", "sealstore", "admin", "verify", str(server.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, (proc.stdout[-2000:], proc.stderr[-2000:])
    (summary,) = [
        doc
        for doc in (json.loads(line) for line in proc.stdout.splitlines() if line.strip())
        if doc.get("event") == "summary"
    ]
    failed = {f["key"]: f["error"] for f in summary["failures"]}
    for key in ("mp-drop", "mp-order", "cut"):
        assert key in failed and "layout" in failed[key], (key, failed)
    assert "verify-clean" not in failed and "mp-ok" not in failed
    assert summary["layout"].get("verified", 0) >= 2
