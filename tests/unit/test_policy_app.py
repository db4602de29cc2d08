"""The authorisation hook inside the real application (build_app, real store, in-process
server): an operation without a row in the action table is denied to a user whose policy
allows everything, but still served to root (fail closed); an unknown access key is
InvalidAccessKeyId and a wrong secret SignatureDoesNotMatch, as for root; the admin endpoints
stay root-only even for a user allowed s3:*."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sealstore.client.config import Credentials
from sealstore.client.signing import sign_request
from sealstore.config import Settings
from sealstore.s3.app import build_app
from sealstore.s3.policy import actions

ROOT = Credentials("admin", "s3cr3t-password")
ALICE = Credentials("AKALICE", "alice-secret-0123")
EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"},
}


def serve(tmp_path: Path, test: Callable[[TestClient], Awaitable[None]]) -> None:
    users = tmp_path / "users.json"
    doc = {
        "users": [
            {
                "name": "alice",
                "access_key": ALICE.access_key,
                "secret_key": ALICE.secret_key,
                "policies": [EVERYTHING],
            }
        ]
    }
    users.write_text(json.dumps(doc))
    os.chmod(users, 0o600)
    env = {
        "MINIO_ROOT_USER": ROOT.access_key,
        "MINIO_ROOT_PASSWORD": ROOT.secret_key,
        "SEALSTORE_USERS_FILE": str(users),
    }
    settings = Settings.from_env(
        env, argparse.Namespace(address="127.0.0.1:0", data_dir=str(tmp_path / "data"))
    )

    async def main() -> None:
        async with TestClient(TestServer(build_app(settings))) as client:
            await test(client)

    asyncio.run(main())


async def call(client: TestClient, method: str, path: str, creds: Credentials) -> tuple[int, str]:
    url = str(client.make_url(path))
    headers = sign_request(method, url, {}, creds, "us-east-1", datetime.now(UTC))
    async with client.request(method, path, headers=headers) as r:
        return r.status, await r.text()


def test_operations_without_an_action_fail_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def check(client: TestClient) -> None:
        assert (await call(client, "PUT", "/bkt", ROOT))[0] == 200
        status, body = await call(client, "GET", "/bkt/k", ALICE)
        assert status == 404 and "NoSuchKey" in body  # allowed by "*": reaches the handler
        monkeypatch.delitem(actions.OPERATIONS, "GetObject")
        status, body = await call(client, "GET", "/bkt/k", ALICE)
        assert status == 403 and "<Code>AccessDenied</Code>" in body
        status, body = await call(client, "GET", "/bkt/k", ROOT)
        assert status == 404 and "NoSuchKey" in body

    serve(tmp_path, check)


def test_unknown_keys_wrong_secrets_and_admin_endpoints(tmp_path: Path) -> None:
    async def check(client: TestClient) -> None:
        status, body = await call(client, "GET", "/", Credentials("AKNOBODY", "whatever-secret"))
        assert status == 403 and "<Code>InvalidAccessKeyId</Code>" in body
        status, body = await call(
            client, "GET", "/", Credentials(ALICE.access_key, "wrong-secret-0")
        )
        assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in body
        assert (await call(client, "GET", "/", ALICE))[0] == 200
        # The admin API knows only root (and the bearer token), whatever a user's policy says.
        status, body = await call(client, "GET", "/minio/kms/v1/key/status", ALICE)
        assert status == 403 and "<Code>InvalidAccessKeyId</Code>" in body
        status, _ = await call(client, "GET", "/minio/v2/metrics/cluster", ALICE)
        assert status == 403

    serve(tmp_path, check)


def test_a_stored_policy_that_no_longer_parses_denies_all_but_root(tmp_path: Path) -> None:
    from sealstore.s3.app import APP_CTX_KEY

    async def check(client: TestClient) -> None:
        assert (await call(client, "PUT", "/bkt", ROOT))[0] == 200
        assert (await call(client, "GET", "/bkt", ALICE))[0] == 200  # her "*" identity policy
        store = client.server.app[APP_CTX_KEY].storage
        await store.put_bucket_config("bkt", "policy", '{"Statement": "not a statement"}')
        status, body = await call(client, "GET", "/bkt", ALICE)
        assert status == 403 and "<Code>AccessDenied</Code>" in body
        assert (await call(client, "GET", "/bkt", ROOT))[0] == 200

    serve(tmp_path, check)


def test_authorize_as_for_handlers_that_authenticate_their_own_principal(tmp_path: Path) -> None:
    """PostObject's handler verifies the form's credential itself, then asks authorize_as."""
    from aiohttp.test_utils import make_mocked_request
    from multidict import MultiDict, MultiDictProxy

    from sealstore.s3 import sigv4
    from sealstore.s3.app import APP_CTX_KEY
    from sealstore.s3.context import S3Request
    from sealstore.s3.errors import S3Error
    from sealstore.s3.policy.authorize import authorize_as
    from sealstore.s3.sigv4 import PayloadMode

    async def check(client: TestClient) -> None:
        ctx = client.server.app[APP_CTX_KEY]
        assert (await call(client, "PUT", "/bkt", ROOT))[0] == 200
        http = make_mocked_request("POST", "/bkt")
        auth = sigv4.AuthResult(
            "", PayloadMode.UNSIGNED, None, b"", "", "", "", "us-east-1", False, ()
        )
        req = S3Request(
            http, ctx, "bkt", None, MultiDictProxy(MultiDict()), auth, "RID", "PostObject"
        )
        await authorize_as(req, ROOT.access_key, "s3:PutObject", "bkt", "k")
        await authorize_as(req, ALICE.access_key, "s3:PutObject", "bkt", "k")  # her "*" policy
        for who in (None, "AKNOBODY"):
            with pytest.raises(S3Error) as info:
                await authorize_as(req, who, "s3:PutObject", "bkt", "k")
            assert info.value.code == "AccessDenied"
        sse = "s3:x-amz-server-side-encryption"
        deny = {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::bkt/*",
        }
        policy = {"Statement": [{**deny, "Condition": {"StringNotEquals": {sse: "AES256"}}}]}
        await ctx.storage.put_bucket_config("bkt", "policy", json.dumps(policy))
        with pytest.raises(S3Error):
            await authorize_as(req, ALICE.access_key, "s3:PutObject", "bkt", "k")
        await authorize_as(req, ALICE.access_key, "s3:PutObject", "bkt", "k", {sse: "AES256"})

    serve(tmp_path, check)
