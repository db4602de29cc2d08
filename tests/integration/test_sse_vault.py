"""SSE-S3 against a real OpenBao (server mode, TLS, AppRole with period=60s, namespace)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sealstore.crypto import dare, keys
from sealstore.crypto.kms_context import encode_context
from sealstore.objects import metadata as sse
from tests.integration.openbao import AppRoleCreds, OpenBao
from tests.integration.server import (
    REGION,
    ROOT_PASSWORD,
    ROOT_USER,
    ServerProcess,
    base_env,
)

PKG = 65536
TOKEN_RE = re.compile(r"\b(?:s|hvs|b)\.[A-Za-z0-9]{20,}")


def body_of(size: int, seed: str) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{i}".encode()).hexdigest().encode()
        i += 1
    return bytes(out[:size])


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBao]:
    server = OpenBao(tls=True).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def creds(bao: OpenBao) -> AppRoleCreds:
    return bao.configure_sse()


def assert_no_secrets(srv: ServerProcess, creds: AppRoleCreds) -> None:
    log = srv.log_text()
    assert ROOT_PASSWORD not in log
    assert creds.secret_id not in log
    assert not TOKEN_RE.search(log), TOKEN_RE.search(log)


@pytest.fixture(scope="module")
def vault_server(
    tmp_path_factory: pytest.TempPathFactory, creds: AppRoleCreds
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("vault")
    srv = ServerProcess(root / "data", base_env(**creds.env()), root / "server.log").start()
    srv.wait_ready()
    yield srv
    srv.stop()
    assert_no_secrets(srv, creds)


def signed_get(endpoint: str, path: str) -> requests.Response:
    """A SigV4-signed GET made with botocore's signer (independent of our sigv4.py)."""
    req = AWSRequest(method="GET", url=endpoint + path, headers={})
    req.headers["x-amz-content-sha256"] = hashlib.sha256(b"").hexdigest()
    S3SigV4Auth(Credentials(ROOT_USER, ROOT_PASSWORD), "s3", REGION).add_auth(req)
    return requests.get(endpoint + path, headers=dict(req.headers), timeout=30)


def test_put_get_with_openbao(vault_server: ServerProcess) -> None:
    s3 = vault_server.client()
    s3.create_bucket(Bucket="vault-bucket")
    for size in (0, 10, PKG, 2 * PKG + 1):
        data = body_of(size, f"v{size}")
        r = s3.put_object(
            Bucket="vault-bucket", Key=f"o{size}", Body=data, ServerSideEncryption="AES256"
        )
        assert r["ServerSideEncryption"] == "AES256"
        g = s3.get_object(Bucket="vault-bucket", Key=f"o{size}")
        assert g["ServerSideEncryption"] == "AES256"
        assert g["Body"].read() == data
    g = s3.get_object(
        Bucket="vault-bucket", Key=f"o{2 * PKG + 1}", Range=f"bytes={PKG - 3}-{PKG + 3}"
    )
    assert g["Body"].read() == body_of(2 * PKG + 1, f"v{2 * PKG + 1}")[PKG - 3 : PKG + 4]


def test_object_format_decrypts_via_transit(
    vault_server: ServerProcess, bao: OpenBao, creds: AppRoleCreds
) -> None:
    """Metadata holds the Vault ciphertext; transit/decrypt + crypto/ recover the plaintext."""
    from sealstore.storage.fs import FSBackend

    s3 = vault_server.client()
    s3.create_bucket(Bucket="fmt-bucket")
    data = body_of(PKG + 100, "fmt")
    s3.put_object(Bucket="fmt-bucket", Key="a/b", Body=data, ServerSideEncryption="AES256")

    async def inspect() -> tuple[dict[str, str], bytes]:
        store = FSBackend(vault_server.data_dir)
        await store.open()
        try:
            meta = await store.head("fmt-bucket", "a/b")
            return dict(meta.internal), b"".join([c async for c in store.read(meta)])
        finally:
            await store.close()

    internal, raw = asyncio.run(inspect())
    assert internal[sse.META_KMS_KIND] == "vault"
    assert internal[sse.META_S3_KMS_KEY_ID] == creds.key_name
    vault_ct = base64.b64decode(internal[sse.META_S3_KMS_SEALED_KEY]).decode()
    assert vault_ct.startswith("vault:v1:")
    ctx = base64.b64encode(encode_context({"fmt-bucket": "fmt-bucket/a/b"})).decode()
    out = bao.api(
        "POST", f"transit/decrypt/{creds.key_name}", {"ciphertext": vault_ct, "context": ctx}
    )
    dek = base64.b64decode(out["data"]["plaintext"])
    sealed = keys.SealedKey(
        iv=base64.b64decode(internal[sse.META_IV]),
        algorithm=internal[sse.META_SEAL_ALGORITHM],
        key=base64.b64decode(internal[sse.META_S3_SEALED_KEY]),
    )
    oek = keys.unseal_object_key(sealed, dek, "SSE-S3", "fmt-bucket", "a/b")
    assert dare.decrypt(oek, raw) == data


def test_kms_key_status_endpoint(vault_server: ServerProcess, creds: AppRoleCreds) -> None:
    r = signed_get(vault_server.endpoint, "/minio/kms/v1/key/status")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["ok"] is True
    assert doc["key-id"] == creds.key_name
    assert doc["latency_ms"] >= 0
    assert (
        requests.get(vault_server.endpoint + "/minio/kms/v1/key/status", timeout=5).status_code
        == 403
    )


def test_readiness_and_metrics(vault_server: ServerProcess) -> None:
    status, doc = vault_server.ready()
    assert status == 200
    assert doc["kms"]["kind"] == "vault"
    status, body = vault_server.get("/minio/v2/metrics/cluster")
    assert status == 200
    assert b'sealstore_kms_calls_total{call="generate",outcome="ok"}' in body


def test_namespace(tmp_path: Path, bao: OpenBao) -> None:
    ns_creds = bao.configure_sse(namespace="ns1")
    srv = ServerProcess(tmp_path / "d", base_env(**ns_creds.env()), tmp_path / "log").start()
    try:
        srv.wait_ready()
        s3 = srv.client()
        s3.create_bucket(Bucket="ns-bucket")
        s3.put_object(
            Bucket="ns-bucket", Key="k", Body=b"in a namespace", ServerSideEncryption="AES256"
        )
        assert s3.get_object(Bucket="ns-bucket", Key="k")["Body"].read() == b"in a namespace"
    finally:
        srv.stop()
    assert_no_secrets(srv, ns_creds)
    records = [json.dumps(r) for r in srv.log_records()]
    assert any('"op": "PutObject"' in r and '"status": 200' in r for r in records)


def test_sse_kms_with_openbao(vault_server: ServerProcess, creds: AppRoleCreds) -> None:
    from botocore.exceptions import ClientError

    s3 = vault_server.client()
    s3.create_bucket(Bucket="kms-bucket")
    r = s3.put_object(
        Bucket="kms-bucket",
        Key="k",
        Body=b"sse-kms via transit",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=creds.key_name,
    )
    assert r["ServerSideEncryption"] == "aws:kms"
    assert r["SSEKMSKeyId"] == creds.key_name  # echoed as sent (a bare id)
    g = s3.get_object(Bucket="kms-bucket", Key="k")
    assert g["Body"].read() == b"sse-kms via transit"
    assert g["SSEKMSKeyId"] == creds.key_name
    # a key outside the least-privilege policy is refused and nothing is stored
    with pytest.raises(ClientError) as e:
        s3.put_object(
            Bucket="kms-bucket",
            Key="denied",
            Body=b"x",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId="some-other-key",
        )
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert "some-other-key" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="kms-bucket", Key="denied")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# ------------------------------------------------------------------ KMS credentials and policy


def test_policy_without_the_key_answers_403_naming_it(
    tmp_path: Path, approle: Callable[..., AppRoleCreds]
) -> None:
    """The role's policy covers another key only: SSE PUT -> 403 AccessDenied naming the
    configured key (not 500), nothing stored, plain PUTs unaffected."""
    from botocore.exceptions import ClientError

    approle()  # the quickstart setup, so transit key my-minio-key exists
    other = approle(key="only-this-key")  # a role whose policy names only "only-this-key"
    env = base_env(**{**other.env(), "MINIO_SSE_VAULT_KEY_NAME": "my-minio-key"})
    srv = ServerProcess(tmp_path / "d", env, tmp_path / "log").start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="denied")
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="denied", Key="k", Body=b"x", ServerSideEncryption="AES256")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert e.value.response["Error"]["Code"] == "AccessDenied"
        message = e.value.response["Error"]["Message"]
        assert "'my-minio-key'" in message and "policy" in message
        with pytest.raises(ClientError) as missing:
            s3.head_object(Bucket="denied", Key="k")
        assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        s3.put_object(Bucket="denied", Key="plain", Body=b"no sse")
        assert s3.get_object(Bucket="denied", Key="plain")["Body"].read() == b"no sse"
    finally:
        srv.stop()
    assert_no_secrets(srv, other)


def test_wrong_secret_id_is_503_with_clear_message_and_heals(
    tmp_path: Path, private_openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    """A secret-id Vault does not know: readiness and SSE PUT answer 503 saying "KMS login
    failed: invalid role or secret ID" (never the ids); once that secret-id is issued (a
    re-deployment), the running server heals by itself.

    A private OpenBao with user lockout disabled on the AppRole mount: with Vault's default
    lockout the server's own retries lock the role-id out for 15 minutes (covered by
    test_vault_kms.py::test_locked_out_role_says_so), which would hide the healing here.
    """
    from botocore.exceptions import ClientError

    openbao = private_openbao
    good = approle(server=openbao)
    openbao.api("POST", "sys/auth/approle/tune", {"user_lockout_config": {"lockout_disable": True}})
    wrong = str(uuid.uuid4())
    bad = dataclasses.replace(good, secret_id=wrong)
    srv = ServerProcess(tmp_path / "d", base_env(**bad.env()), tmp_path / "log").start()
    try:
        deadline = time.monotonic() + 30
        status, doc = srv.ready()
        while "KMS login failed" not in json.dumps(doc) and time.monotonic() < deadline:
            time.sleep(0.2)
            status, doc = srv.ready()
        assert status == 503
        assert "KMS login failed: invalid role or secret ID" in doc["kms"]["error"]
        s3 = srv.client()
        s3.create_bucket(Bucket="creds")
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="creds", Key="k", Body=b"x", ServerSideEncryption="AES256")
        response = e.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert response["Error"]["Code"] == "ServiceUnavailable"
        assert "KMS login failed: invalid role or secret ID" in response["Error"]["Message"]
        assert response["ResponseMetadata"]["HTTPHeaders"].get("retry-after")
        assert wrong not in json.dumps(response) + json.dumps(doc)
        assert good.role_id not in json.dumps(response) + json.dumps(doc)
        # re-deploying the secret-id (here: issuing exactly that value) heals without restart
        openbao.api("POST", "auth/approle/role/my-role/custom-secret-id", {"secret_id": wrong})
        # requests do not retry refused credentials themselves (user lockout); the background
        # task does, with backoff capped at 30 s
        srv.wait_ready(timeout=60)
        s3.put_object(Bucket="creds", Key="k", Body=b"healed", ServerSideEncryption="AES256")
        assert s3.get_object(Bucket="creds", Key="k")["Body"].read() == b"healed"
        srv.wait_ready(timeout=30)
    finally:
        srv.stop()
    log = srv.log_text()
    assert wrong not in log and good.role_id not in log
    assert not TOKEN_RE.search(log), TOKEN_RE.search(log)


def test_kms_cache_serves_recent_reads_during_an_outage(
    tmp_path: Path, private_openbao: OpenBao, approle: Callable[..., AppRoleCreds]
) -> None:
    """SEALSTORE_KMS_CACHE_TTL on: a GET of an object read within the TTL needs no KMS (so
    it works while OpenBao is paused); one never read, and any PUT, still answer 503."""
    from botocore.exceptions import ClientError

    creds = approle(server=private_openbao)
    env = base_env(**creds.env(), SEALSTORE_KMS_CACHE_TTL="120")
    srv = ServerProcess(tmp_path / "d", env, tmp_path / "log").start()
    try:
        srv.wait_ready()
        s3 = srv.client()
        s3.create_bucket(Bucket="cached")
        for key in ("read-before", "never-read"):
            s3.put_object(
                Bucket="cached", Key=key, Body=key.encode(), ServerSideEncryption="AES256"
            )
        assert s3.get_object(Bucket="cached", Key="read-before")["Body"].read() == b"read-before"
        private_openbao.pause()
        try:
            got = s3.get_object(Bucket="cached", Key="read-before")["Body"].read()
            assert got == b"read-before"
            for call in (
                lambda: s3.get_object(Bucket="cached", Key="never-read"),
                lambda: s3.put_object(
                    Bucket="cached", Key="new", Body=b"x", ServerSideEncryption="AES256"
                ),
            ):
                with pytest.raises(ClientError) as e:
                    call()
                assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        finally:
            private_openbao.resume()
    finally:
        srv.stop()
    assert_no_secrets(srv, creds)
