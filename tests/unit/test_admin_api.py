"""The real application (build_app: real store in a temp dir, master-key KMS behind the
observer) served in-process: the /minio/ admin endpoints answer without importing the
dispatcher, readiness follows storage and the KMS health, metrics keep their names, and
requests that fail authentication get S3 errors (HEAD: no body, x-minio-error-code).
Without credentials readiness says only ok/not-ok and metrics answer 401; the detail needs
the admin bearer token or a root SigV4 signature."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from sealstore.config import Settings
from sealstore.kms.health import ObservedKMS
from sealstore.s3.app import APP_CTX_KEY, build_app

MASTER = "admin-key:" + hashlib.sha256(b"admin api test").hexdigest()
TOKEN = "admin-api-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings(tmp_path: Path, **env: str) -> Settings:
    token_file = tmp_path.parent / f"{tmp_path.name}.metrics-token"
    token_file.write_text(TOKEN + "\n")
    return Settings.from_env(
        {
            "MINIO_ROOT_USER": "admin",
            "MINIO_ROOT_PASSWORD": "s3cr3t-password",
            "SEALSTORE_METRICS_TOKEN_FILE": str(token_file),
            **env,
        },
        argparse.Namespace(address="127.0.0.1:0", data_dir=str(tmp_path)),
    )


def serve(tmp_path: Path, test: Callable[[TestClient], Awaitable[None]], **env: str) -> None:
    async def main() -> None:
        app = build_app(settings(tmp_path, **env))
        async with TestClient(TestServer(app)) as client:
            await test(client)

    asyncio.run(main())


def test_admin_and_health_modules_load_without_the_dispatcher() -> None:
    code = (
        "import sys, sealstore.s3.admin_api, sealstore.kms.health, sealstore.kms.factory; "
        "print(sorted(m for m in sys.modules if m in ('sealstore.s3.app', 'sealstore.s3.routing')"
        " or m.startswith('sealstore.s3.handlers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_live_ready_and_metrics_with_a_kms(tmp_path: Path) -> None:
    async def check(client: TestClient) -> None:
        ctx = client.app[APP_CTX_KEY]
        assert isinstance(ctx.kms, ObservedKMS)
        r = await client.get("/minio/health/live")
        assert r.status == 200 and r.headers["Server"] == "sealstore"
        assert len(r.headers["x-amz-request-id"]) == 16
        for _ in range(300):  # the monitor's first self-test runs right after start-up
            if ctx.kms_health.ok:
                break
            await asyncio.sleep(0.01)
        r = await client.get("/minio/health/ready", headers=AUTH)
        doc = await r.json()
        assert r.status == 200 and doc["ready"] is True and doc["storage"] is True
        assert doc["kms"]["ok"] is True and doc["kms"]["kind"] == "master-key"
        assert doc["kms"]["key_id"] == "admin-key"

        # A live outage report drops readiness at once (and the gauge follows).
        ctx.kms_health.mark_failed("KMS unreachable: test")
        r = await client.get("/minio/health/ready", headers=AUTH)
        doc = await r.json()
        assert r.status == 503 and doc["ready"] is False
        assert doc["kms"]["error"] == "KMS unreachable: test"
        head = await client.head("/minio/health/ready", headers=AUTH)
        assert head.status == 503

        r = await client.get("/minio/v2/metrics/cluster", headers=AUTH)
        text = await r.text()
        assert r.status == 200 and r.content_type == "text/plain"
        assert 'sealstore_kms_calls_total{call="status",outcome="ok"} 1' in text
        assert 'sealstore_requests_total{op="Admin",status="200"} 2' in text
        assert 'sealstore_requests_total{op="Admin",status="503"} 2' in text
        for name in (
            "sealstore_rx_bytes_total",
            "sealstore_tx_bytes_total",
            "sealstore_uptime_seconds",
        ):
            assert f"# TYPE {name} " in text
        assert "sealstore_ready 0\n" in text

    serve(tmp_path, check, MINIO_SSE_MASTER_KEY=MASTER)


def test_ready_without_a_kms_has_no_kms_section(tmp_path: Path) -> None:
    async def check(client: TestClient) -> None:
        assert client.app[APP_CTX_KEY].kms is None
        r = await client.get("/minio/health/ready", headers=AUTH)
        assert r.status == 200 and json.loads(await r.text()) == {"ready": True, "storage": True}
        r = await client.get("/minio/kms/v1/key/status")
        assert r.status == 403  # authentication comes before "no KMS configured"

    serve(tmp_path, check)


def test_unsigned_requests_are_refused_with_s3_errors(tmp_path: Path) -> None:
    async def check(client: TestClient) -> None:
        r = await client.get("/minio/kms/v1/key/status")
        body = await r.text()
        assert r.status == 403 and "<Code>AccessDenied</Code>" in body
        assert "<Resource>/minio/kms/v1/key/status</Resource>" in body
        assert r.headers["x-amz-request-id"] in body

        r = await client.get("/minio/v2/metrics/cluster", headers={"Authorization": "AWS4 x"})
        assert r.status == 403 and "<Code>" in await r.text()  # a signature is checked if sent

        r = await client.get("/minio/unknown")
        assert r.status == 501 and "<Code>NotImplemented</Code>" in await r.text()

        r = await client.head("/bucket/key")
        assert r.status == 403 and await r.read() == b""
        assert r.headers["x-minio-error-code"] == "AccessDenied"

        r = await client.get("/bucket/key")
        assert r.status == 403 and "x-minio-error-code" not in r.headers
        assert "<Code>AccessDenied</Code>" in await r.text()

        r = await client.get("/minio/v2/metrics/cluster", headers=AUTH)
        text = await r.text()
        # Anonymous requests are authorised per operation (bucket policies may allow them):
        # refused after routing, so counted under their operation.
        assert 'sealstore_requests_total{op="HeadObject",status="403"} 1' in text
        assert 'sealstore_requests_total{op="GetObject",status="403"} 1' in text
        assert 'sealstore_requests_total{op="Admin",status="403"} 2' in text
        assert 'sealstore_requests_total{op="Admin",status="501"} 1' in text

    serve(tmp_path, check, MINIO_SSE_MASTER_KEY=MASTER)


def test_without_credentials_readiness_is_a_verdict_and_metrics_are_closed(tmp_path: Path) -> None:
    async def check(client: TestClient) -> None:
        ctx = client.app[APP_CTX_KEY]
        for _ in range(300):
            if ctx.kms_health.ok:
                break
            await asyncio.sleep(0.01)
        r = await client.get("/minio/health/ready")
        assert r.status == 200 and await r.text() == "ok"
        ctx.kms_health.mark_failed("KMS unreachable: http://vault.internal:8200 secret detail")
        r = await client.get("/minio/health/ready")
        assert r.status == 503 and await r.text() == "not-ok"
        assert (await client.head("/minio/health/ready")).status == 503

        r = await client.get("/minio/v2/metrics/cluster")
        body = await r.text()
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert "sealstore_" not in body
        for wrong in ("Bearer not-the-token", f"Bearer {TOKEN}x", "bearer ", "Bearer"):
            r = await client.get("/minio/v2/metrics/cluster", headers={"Authorization": wrong})
            assert r.status == 403 and "sealstore_" not in await r.text(), wrong
            r = await client.get("/minio/health/ready", headers={"Authorization": wrong})
            assert r.status == 403 and "vault" not in await r.text(), wrong
        r = await client.get(
            "/minio/v2/metrics/cluster", headers={"Authorization": f"bearer {TOKEN}"}
        )
        assert r.status == 200 and "sealstore_ready 0" in await r.text()

    serve(tmp_path, check, MINIO_SSE_MASTER_KEY=MASTER)


def test_without_a_configured_token_every_bearer_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        s = settings(tmp_path)
        app = build_app(Settings(**{**s.__dict__, "metrics_token": None}))
        async with TestClient(TestServer(app)) as client:
            r = await client.get("/minio/v2/metrics/cluster", headers=AUTH)
            assert r.status == 403
            assert (await client.get("/minio/v2/metrics/cluster")).status == 401

    asyncio.run(main())
