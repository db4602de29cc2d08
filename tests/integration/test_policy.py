"""Users and bucket policies against a real sealstore process (master-key KMS), driven by
boto3 and awscli: users with limited identity policies get exactly what they are allowed
(listing, reads, writes under a prefix, multipart, copy needing both sides, DeleteObjects with
per-key AccessDenied, a ${aws:username} home prefix); a public-read bucket policy lets
anonymous GETs through and nothing else; the classic deny-unencrypted-PUT policy (Null and
StringNotEquals on s3:x-amz-server-side-encryption) refuses PUTs without SSE-S3; bucket
policies are validated (MalformedPolicy with AWS's message), only root or a user allowed
s3:PutBucketPolicy may set them; SIGHUP reloads the users file and a broken file keeps the
old users. No secret reaches the log."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.integration.server import ROOT_PASSWORD, ServerProcess, base_env, make_client
from tests.integration.test_clients import clean_env, private_file, run

MASTER_KEY = "policy-key:" + hashlib.sha256(b"policy integration").hexdigest()
DATA = "pol-data"
ACCOUNT = "arn:aws:iam::000000000000"


def allow(actions: list[str], resources: list[str], **extra: object) -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


USERS = {
    "reader": (
        "AKREADER0001",
        "reader-secret-0001",
        [
            allow(["s3:ListAllMyBuckets"], ["arn:aws:s3:::*"]),
            allow(["s3:ListBucket"], [f"arn:aws:s3:::{DATA}"]),
            allow(["s3:GetObject"], [f"arn:aws:s3:::{DATA}/*"]),
        ],
    ),
    "writer": (
        "AKWRITER0001",
        "writer-secret-0001",
        [
            allow(
                ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                [f"arn:aws:s3:::{DATA}/uploads/*"],
            ),
            allow(["s3:GetObject"], [f"arn:aws:s3:::{DATA}/uploads/*"]),
            {
                "Effect": "Deny",
                "Action": "s3:DeleteObject",
                "Resource": f"arn:aws:s3:::{DATA}/uploads/keep/*",
            },
        ],
    ),
    "homer": (
        "AKHOMER00001",
        "homer-secret-0001",
        [
            allow(
                ["s3:ListBucket"],
                [f"arn:aws:s3:::{DATA}"],
                Condition={"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}},
            ),
            allow(
                ["s3:GetObject", "s3:PutObject"], [f"arn:aws:s3:::{DATA}/home/${{aws:username}}/*"]
            ),
        ],
    ),
    "policyadmin": (
        "AKPOLADMIN01",
        "poladmin-secret-01",
        [
            allow(
                ["s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"],
                ["arn:aws:s3:::*"],
            ),
        ],
    ),
}


def users_doc(extra: dict | None = None) -> dict:
    users = [
        {
            "name": name,
            "access_key": ak,
            "secret_key": sk,
            "policies": [{"Version": "2012-10-17", "Statement": stmts}],
        }
        for name, (ak, sk, stmts) in {**USERS, **(extra or {})}.items()
    ]
    return {"users": users}


def write_users(path: Path, doc: dict | str) -> None:
    tmp = path.with_suffix(".tmp")
    private_file(tmp, doc if isinstance(doc, str) else json.dumps(doc))
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("policy")
    users_file = root / "users.json"
    write_users(users_file, users_doc())
    env = base_env(MINIO_SSE_MASTER_KEY=MASTER_KEY, SEALSTORE_USERS_FILE=str(users_file))
    server = ServerProcess(root / "data", env, root / "server.log").start()
    server.users_file = users_file  # type: ignore[attr-defined]
    yield server
    server.stop()
    log = server.log_text()
    for secret in (ROOT_PASSWORD, MASTER_KEY.split(":")[1], *(sk for _, sk, _ in USERS.values())):
        assert secret not in log


@pytest.fixture(scope="module")
def s3(srv: ServerProcess):
    client = srv.client()
    client.create_bucket(Bucket=DATA)
    client.put_object(Bucket=DATA, Key="docs/a.txt", Body=b"alpha")
    client.put_object(Bucket=DATA, Key="uploads/keep/k.txt", Body=b"keep")
    return client


def as_user(srv: ServerProcess, name: str, **config: object):
    access_key, secret_key, _ = USERS[name]
    return make_client(srv.endpoint, access_key, secret_key, **config)


def code_of(call, *args: object, **kwargs: object) -> str:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    return str(info.value.response["Error"]["Code"])


def test_reader_lists_and_reads_only(srv, s3) -> None:
    reader = as_user(srv, "reader")
    assert DATA in [b["Name"] for b in reader.list_buckets()["Buckets"]]
    keys = [o["Key"] for o in reader.list_objects_v2(Bucket=DATA)["Contents"]]
    assert "docs/a.txt" in keys
    assert reader.get_object(Bucket=DATA, Key="docs/a.txt")["Body"].read() == b"alpha"
    assert reader.head_object(Bucket=DATA, Key="docs/a.txt")["ContentLength"] == 5
    assert code_of(reader.put_object, Bucket=DATA, Key="docs/b.txt", Body=b"x") == "AccessDenied"
    assert code_of(reader.delete_object, Bucket=DATA, Key="docs/a.txt") == "AccessDenied"
    assert code_of(reader.create_bucket, Bucket="pol-reader-new") == "AccessDenied"
    assert code_of(reader.get_bucket_encryption, Bucket=DATA) == "AccessDenied"
    assert code_of(reader.list_multipart_uploads, Bucket=DATA) == "AccessDenied"
    assert code_of(reader.put_bucket_policy, Bucket=DATA, Policy="{}") == "AccessDenied"
    assert s3.get_object(Bucket=DATA, Key="docs/a.txt")["Body"].read() == b"alpha"
    # Presigned URLs carry the signer's permissions, no more.
    get_url = reader.generate_presigned_url(
        "get_object", Params={"Bucket": DATA, "Key": "docs/a.txt"}
    )
    assert _anonymous_get(get_url) == (200, b"alpha")
    put_url = reader.generate_presigned_url(
        "put_object", Params={"Bucket": DATA, "Key": "docs/p.txt"}
    )
    request = urllib.request.Request(put_url, data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request, timeout=5)
    assert denied.value.code == 403 and b"<Code>AccessDenied</Code>" in denied.value.read()


def test_writer_prefix_copy_multipart_and_delete_objects(srv, s3) -> None:
    writer = as_user(srv, "writer")
    writer.put_object(Bucket=DATA, Key="uploads/w1.txt", Body=b"w1")
    assert code_of(writer.put_object, Bucket=DATA, Key="docs/w.txt", Body=b"w") == "AccessDenied"
    assert code_of(writer.list_objects_v2, Bucket=DATA) == "AccessDenied"
    assert code_of(writer.list_buckets) == "AccessDenied"
    # CopyObject needs s3:GetObject on the source as well as s3:PutObject on the target.
    writer.copy_object(
        Bucket=DATA, Key="uploads/w2.txt", CopySource={"Bucket": DATA, "Key": "uploads/w1.txt"}
    )
    src = {"Bucket": DATA, "Key": "docs/a.txt"}
    assert (
        code_of(writer.copy_object, Bucket=DATA, Key="uploads/w3.txt", CopySource=src)
        == "AccessDenied"
    )
    # Multipart: create/part/complete are s3:PutObject, abort s3:AbortMultipartUpload.
    up = writer.create_multipart_upload(Bucket=DATA, Key="uploads/mp.bin")["UploadId"]
    etag = writer.upload_part(
        Bucket=DATA, Key="uploads/mp.bin", UploadId=up, PartNumber=1, Body=b"p" * 1024
    )["ETag"]
    assert (
        code_of(writer.list_parts, Bucket=DATA, Key="uploads/mp.bin", UploadId=up) == "AccessDenied"
    )
    writer.complete_multipart_upload(
        Bucket=DATA,
        Key="uploads/mp.bin",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert code_of(writer.create_multipart_upload, Bucket=DATA, Key="docs/mp.bin") == "AccessDenied"
    up2 = writer.create_multipart_upload(Bucket=DATA, Key="uploads/aborted.bin")["UploadId"]
    writer.abort_multipart_upload(Bucket=DATA, Key="uploads/aborted.bin", UploadId=up2)
    # DeleteObjects: s3:DeleteObject per key; denied keys are AccessDenied entries in a 200.
    result = writer.delete_objects(
        Bucket=DATA,
        Delete={
            "Objects": [
                {"Key": "uploads/w1.txt"},
                {"Key": "docs/a.txt"},
                {"Key": "uploads/keep/k.txt"},
            ]
        },
    )
    assert [d["Key"] for d in result.get("Deleted", [])] == ["uploads/w1.txt"]
    assert {e["Key"]: e["Code"] for e in result["Errors"]} == {
        "docs/a.txt": "AccessDenied",
        "uploads/keep/k.txt": "AccessDenied",  # explicit Deny beats the Allow on uploads/*
    }
    assert s3.head_object(Bucket=DATA, Key="docs/a.txt")["ContentLength"] == 5
    assert s3.head_object(Bucket=DATA, Key="uploads/keep/k.txt")["ContentLength"] == 4


def test_home_prefix_with_policy_variables(srv, s3) -> None:
    homer = as_user(srv, "homer")
    homer.put_object(Bucket=DATA, Key="home/homer/notes.txt", Body=b"doh")
    assert (
        code_of(homer.put_object, Bucket=DATA, Key="home/marge/notes.txt", Body=b"x")
        == "AccessDenied"
    )
    listed = homer.list_objects_v2(Bucket=DATA, Prefix="home/homer/")
    assert [o["Key"] for o in listed["Contents"]] == ["home/homer/notes.txt"]
    assert code_of(homer.list_objects_v2, Bucket=DATA, Prefix="home/") == "AccessDenied"
    assert code_of(homer.list_objects_v2, Bucket=DATA) == "AccessDenied"  # no s3:prefix at all


def test_public_read_policy_and_policy_documents(srv, s3) -> None:
    s3.create_bucket(Bucket="pol-public")
    s3.put_object(Bucket="pol-public", Key="index.html", Body=b"<h1>hi</h1>")
    anon = _anonymous_client(srv.endpoint)
    url = f"{srv.endpoint}/pol-public/index.html"
    assert _anonymous_get(url)[0] == 403
    assert code_of(s3.get_bucket_policy, Bucket="pol-public") == "NoSuchBucketPolicy"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::pol-public/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket="pol-public", Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket="pol-public")["Policy"]) == policy
    assert s3.get_bucket_policy_status(Bucket="pol-public")["PolicyStatus"]["IsPublic"] is True
    assert _anonymous_get(url) == (200, b"<h1>hi</h1>")
    assert anon.get_object(Bucket="pol-public", Key="index.html")["Body"].read() == b"<h1>hi</h1>"
    assert code_of(anon.put_object, Bucket="pol-public", Key="x", Body=b"x") == "AccessDenied"
    assert code_of(anon.list_objects_v2, Bucket="pol-public") == "AccessDenied"
    assert code_of(anon.get_object, Bucket=DATA, Key="docs/a.txt") == "AccessDenied"
    assert code_of(anon.list_buckets) == "AccessDenied"
    # A user without any grant on the bucket reads it through the public policy too.
    assert as_user(srv, "writer").get_object(Bucket="pol-public", Key="index.html")["Body"].read()

    bad = [
        ("not json", "first byte must be '{'"),
        (
            json.dumps({"Statement": [{**policy["Statement"][0], "Action": "s3:GetObjekt"}]}),
            "Policy has invalid action",
        ),
        (
            json.dumps(
                {
                    "Statement": [
                        {**policy["Statement"][0], "Principal": {"AWS": f"{ACCOUNT}:user/nobody"}}
                    ]
                }
            ),
            "Invalid principal in policy",
        ),
        (
            json.dumps(
                {
                    "Statement": [
                        {**policy["Statement"][0], "Condition": {"StringEquals": {"s3:bogus": "x"}}}
                    ]
                }
            ),
            "Policy has an invalid condition key",
        ),
        (
            json.dumps(
                {"Statement": [{**policy["Statement"][0], "Resource": "arn:aws:s3:::pol-public"}]}
            ),
            "Action does not apply to any resource(s) in statement",
        ),
        (
            json.dumps(
                {"Statement": [{**policy["Statement"][0], "Resource": "arn:aws:s3:::elsewhere/*"}]}
            ),
            "Policy has invalid resource",
        ),
    ]
    for text, message in bad:
        with pytest.raises(ClientError) as info:
            s3.put_bucket_policy(Bucket="pol-public", Policy=text)
        err = info.value.response["Error"]
        assert (err["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
            "MalformedPolicy",
            400,
        )
        assert message in err["Message"], (text, err["Message"])
    assert _anonymous_get(url)[0] == 200  # the refused documents changed nothing

    s3.delete_bucket_policy(Bucket="pol-public")
    assert _anonymous_get(url)[0] == 403
    assert code_of(s3.get_bucket_policy, Bucket="pol-public") == "NoSuchBucketPolicy"


def _anonymous_client(endpoint: str):
    """boto3 sending unsigned requests (botocore.UNSIGNED), i.e. an anonymous S3 client."""
    import boto3
    from botocore.config import Config

    cfg = Config(
        signature_version=UNSIGNED, s3={"addressing_style": "path"}, retries={"max_attempts": 1}
    )
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg)


def _anonymous_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_deny_unencrypted_puts(srv, s3) -> None:
    s3.create_bucket(Bucket="pol-sse")
    sse = "s3:x-amz-server-side-encryption"
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::pol-sse/*",
    }
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowWriter",
                "Effect": "Allow",
                "Principal": {"AWS": f"{ACCOUNT}:user/writer"},
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::pol-sse/*",
            },
            {
                **deny,
                "Sid": "DenyWrongEncryption",
                "Condition": {"StringNotEquals": {sse: "AES256"}},
            },
            {**deny, "Sid": "DenyUnencrypted", "Condition": {"Null": {sse: "true"}}},
        ],
    }
    # Only root or a user allowed s3:PutBucketPolicy may set it.
    assert (
        code_of(
            as_user(srv, "writer").put_bucket_policy, Bucket="pol-sse", Policy=json.dumps(policy)
        )
        == "AccessDenied"
    )
    admin = as_user(srv, "policyadmin")
    admin.put_bucket_policy(Bucket="pol-sse", Policy=json.dumps(policy))
    assert (
        json.loads(admin.get_bucket_policy(Bucket="pol-sse")["Policy"])["Statement"][0]["Sid"]
        == "AllowWriter"
    )
    writer = as_user(srv, "writer")
    assert (
        code_of(writer.put_object, Bucket="pol-sse", Key="plain.txt", Body=b"x") == "AccessDenied"
    )
    writer.put_object(Bucket="pol-sse", Key="sealed.txt", Body=b"x", ServerSideEncryption="AES256")
    assert s3.head_object(Bucket="pol-sse", Key="sealed.txt")["ServerSideEncryption"] == "AES256"
    assert code_of(writer.create_multipart_upload, Bucket="pol-sse", Key="mp.bin") == "AccessDenied"
    writer.create_multipart_upload(Bucket="pol-sse", Key="mp.bin", ServerSideEncryption="AES256")
    s3.put_object(Bucket="pol-sse", Key="root.txt", Body=b"r")  # root keeps full access


def test_awscli_bucket_policy_and_limited_profile(srv, s3, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    reader_ak, reader_sk, _ = USERS["reader"]
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(
        private_file(
            tmp_path / "credentials",
            f"[default]\naws_access_key_id = sealadmin\naws_secret_access_key = {ROOT_PASSWORD}\n"
            f"[reader]\naws_access_key_id = {reader_ak}\naws_secret_access_key = {reader_sk}\n",
        )
    )
    env["AWS_CONFIG_FILE"] = str(
        private_file(
            tmp_path / "config",
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
            "[profile reader]\nregion = us-east-1\ns3 =\n    addressing_style = path\n",
        )
    )
    aws = [str(Path(sys.executable).parent / "aws"), "--endpoint-url", srv.endpoint]
    s3.create_bucket(Bucket="pol-cli")
    s3.put_object(Bucket="pol-cli", Key="shared/r.txt", Body=b"cli")
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": [f"{ACCOUNT}:user/reader"]},
                        "Action": ["s3:GetObject"],
                        "Resource": ["arn:aws:s3:::pol-cli/shared/*"],
                    }
                ],
            }
        )
    )
    run(
        [*aws, "s3api", "put-bucket-policy", "--bucket", "pol-cli", "--policy", f"file://{policy}"],
        env,
    )
    got = json.loads(
        json.loads(run([*aws, "s3api", "get-bucket-policy", "--bucket", "pol-cli"], env))["Policy"]
    )
    assert got["Statement"][0]["Resource"] == ["arn:aws:s3:::pol-cli/shared/*"]
    out = tmp_path / "r.txt"
    run(
        [
            *aws,
            "--profile",
            "reader",
            "s3api",
            "get-object",
            "--bucket",
            "pol-cli",
            "--key",
            "shared/r.txt",
            str(out),
        ],
        env,
    )
    assert out.read_bytes() == b"cli"
    proc = _run_failing(
        [*aws, "--profile", "reader", "s3", "cp", str(out), "s3://pol-cli/shared/w.txt"], env
    )
    assert "AccessDenied" in proc
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"Statement": [{"Effect": "Allow", "Principal": "*", '
        '"Action": "s3:Fly", "Resource": "*"}]}'
    )
    proc = _run_failing(
        [*aws, "s3api", "put-bucket-policy", "--bucket", "pol-cli", "--policy", f"file://{bad}"],
        env,
    )
    assert "MalformedPolicy" in proc and "Policy has invalid action" in proc


def _run_failing(argv: list[str], env: dict[str, str]) -> str:
    import subprocess

    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stdout + proc.stderr


def test_sighup_reloads_users_and_keeps_them_on_a_broken_file(srv, s3) -> None:
    newbie = (
        "AKNEWBIE0001",
        "newbie-secret-0001",
        [allow(["s3:ListAllMyBuckets"], ["arn:aws:s3:::*"])],
    )
    client = make_client(srv.endpoint, newbie[0], newbie[1])
    assert code_of(client.list_buckets) == "InvalidAccessKeyId"
    write_users(srv.users_file, users_doc({"newbie": newbie}))
    srv.reload()
    _eventually(lambda: client.list_buckets())
    write_users(srv.users_file, "{ this is not json")
    srv.reload()
    _eventually(lambda: _assert_in_log(srv, "users file reload failed; keeping the previous users"))
    assert client.list_buckets()["Buckets"]
    assert (
        as_user(srv, "reader").get_object(Bucket=DATA, Key="docs/a.txt")["Body"].read() == b"alpha"
    )
    write_users(srv.users_file, users_doc())


def _assert_in_log(srv: ServerProcess, text: str) -> None:
    assert text in srv.log_text()


def _eventually(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except (AssertionError, ClientError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
