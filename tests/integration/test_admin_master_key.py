"""`sealstore admin` with a static master key (MINIO_SSE_MASTER_KEY) and a live server.

Proves: verify (and verify --deep) passes for SSE-S3 objects, single-part and multipart,
and fails listing every object when the configured master key is another one; rewrap refuses
with one clear line (a master key has no versions) and exit status 2, changing nothing; the
not-yet-implemented jobs say so; a bad configuration is one line, exit status 2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.admin_support import admin, server_env, stored, summary_of
from tests.integration.server import ServerProcess

MASTER_KEY = "admin-mk:" + hashlib.sha256(b"admin master key").hexdigest()
OTHER_KEY = "admin-mk:" + hashlib.sha256(b"another master key").hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("admin-mk")
    env = server_env(MINIO_SSE_MASTER_KEY=MASTER_KEY)
    with ServerProcess(tmp / "data", env, tmp / "server.log").start() as srv:
        s3 = srv.client()
        s3.create_bucket(Bucket="mk-bucket")
        for i in range(4):
            s3.put_object(Bucket="mk-bucket", Key=f"o{i}", Body=b"x" * (100 + i))
        up = s3.create_multipart_upload(Bucket="mk-bucket", Key="multi")
        part = s3.upload_part(
            Bucket="mk-bucket", Key="multi", UploadId=up["UploadId"], PartNumber=1, Body=b"y" * 999
        )
        s3.complete_multipart_upload(
            Bucket="mk-bucket",
            Key="multi",
            UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        yield srv


def test_verify_deep_passes(server: ServerProcess) -> None:
    proc = admin(
        server_env(MINIO_SSE_MASTER_KEY=MASTER_KEY), "verify", "--deep", str(server.data_dir)
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    summary = summary_of(proc)
    assert summary["results"] == {"ok": 5} and summary["failures"] == []


def test_verify_with_another_master_key_lists_every_object(server: ServerProcess) -> None:
    proc = admin(server_env(MINIO_SSE_MASTER_KEY=OTHER_KEY), "verify", str(server.data_dir))
    assert proc.returncode == 1
    failures = summary_of(proc)["failures"]
    assert sorted(f["key"] for f in failures) == ["multi", "o0", "o1", "o2", "o3"]
    assert OTHER_KEY.split(":")[1] not in proc.stdout + proc.stderr


def test_rewrap_does_not_apply(server: ServerProcess, tmp_path: Path) -> None:
    before = [o.internal for o in stored(server.data_dir)[0]]
    proc = admin(server_env(MINIO_SSE_MASTER_KEY=MASTER_KEY), "rewrap", str(server.data_dir))
    assert proc.returncode == 2
    assert "rewrap does not apply to a static master key" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert [o.internal for o in stored(server.data_dir)[0]] == before


def test_later_jobs_and_bad_configuration(server: ServerProcess) -> None:
    env = server_env(MINIO_SSE_MASTER_KEY=MASTER_KEY)
    proc = admin(env, "migrate-kms", str(server.data_dir))
    assert proc.returncode == 2 and "not implemented yet" in proc.stderr
    bad = server_env(MINIO_SSE_MASTER_KEY="admin-mk:nothex")
    proc = admin(bad, "verify", str(server.data_dir))
    assert proc.returncode == 2 and proc.stderr.startswith("sealstore admin: configuration error")
    assert "nothex" not in proc.stderr
    proc = admin(env, "verify", str(server.data_dir / "missing"))
    assert proc.returncode == 2 and "is not a directory" in proc.stderr
    assert not (server.data_dir / "missing").exists()  # no empty store created
