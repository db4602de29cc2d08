"""Operational endpoints under ``/minio/``: liveness, readiness, KMS key status, metrics.

These only *read* state other layers keep: storage's open flag, the KMS health
(``sealstore.kms.health``: readiness verdict, call counters, the self-test) and the request
counters. Readiness is 503 with the KMS's own error until the storage is open and, when a
KMS is configured, its last self-test passed; the KMS detail is whatever the back-end's
``KMSStatus`` carries, rendered as-is.

Who may see what (issue 8 item 9): liveness and the readiness *verdict* are public (load
balancers and orchestrators probe them without secrets), so an unauthenticated readiness
answer is 200 ``ok`` or 503 ``not-ok`` and nothing else. The detail (KMS kind, key id, Vault
endpoints, errors) and the metrics (traffic counters) are for operators only: they need the
bearer token from ``SEALSTORE_METRICS_TOKEN_FILE`` (compared in constant time) or a request
SigV4-signed with the root credentials. Metrics without credentials answer 401 with a
``WWW-Authenticate: Bearer`` challenge; a wrong token or signature answers 403.

The dispatcher (``s3/app.py``) calls :func:`handle`; this module imports nothing from it.
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import asdict

from aiohttp import web

from sealstore.kms.health import HealthDetail, run_self_test
from sealstore.kms.vault_endpoints import prometheus_lines
from sealstore.s3.auth import authenticate
from sealstore.s3.context import AppContext
from sealstore.s3.errors import S3Error

JSONDoc = dict[str, object]


def _json(status: int, doc: JSONDoc) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(doc, separators=(",", ":")), content_type="application/json"
    )


def is_ready(ctx: AppContext) -> tuple[bool, JSONDoc]:
    """Readiness verdict and the JSON document explaining it."""
    doc: JSONDoc = {"ready": True, "storage": ctx.storage_open}
    if not ctx.storage_open:
        doc["ready"] = False
    if ctx.kms is not None:
        not_run: HealthDetail = {"ok": False, "error": "self-test not run yet"}
        detail: JSONDoc = dict(ctx.kms_health.detail or not_run)
        nodes = getattr(ctx.kms, "endpoint_health", None)
        if callable(nodes):  # Vault: live per-node health, fresher than the last self-test
            detail["endpoints"] = [asdict(n) for n in nodes()]
            detail["failovers"] = getattr(ctx.kms, "failovers", 0)
        doc["kms"] = detail
        if not ctx.kms_health.ok:
            doc["ready"] = False
    return doc["ready"] is True, doc


def _authorized(request: web.Request, ctx: AppContext) -> bool:
    """True for the admin bearer token or a valid root signature; False when the request
    carries no credentials at all; raises S3Error (403) for wrong ones."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        expected = ctx.settings.metrics_token
        given = header[7:].strip().encode("utf-8", "surrogateescape")
        if expected is None or not hmac.compare_digest(given, expected.encode("utf-8")):
            raise S3Error("AccessDenied", "The bearer token is not valid for this endpoint")
        return True
    if header or "X-Amz-Signature" in request.query:
        authenticate(request, ctx.settings)  # raises S3Error -> 403 through dispatch
        return True
    return False


def _readiness(request: web.Request, ctx: AppContext) -> web.Response:
    ready, doc = is_ready(ctx)
    status = 200 if ready else 503
    if _authorized(request, ctx):
        return _json(status, doc)
    return web.Response(status=status, text="ok" if ready else "not-ok", content_type="text/plain")


def _metrics(request: web.Request, ctx: AppContext) -> web.Response:
    if not _authorized(request, ctx):
        return web.Response(
            status=401,
            text="metrics need the bearer token (SEALSTORE_METRICS_TOKEN_FILE)\n",
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="sealstore"'},
        )
    return web.Response(text=render_metrics(ctx), content_type="text/plain", charset="utf-8")


async def _key_status(request: web.Request, ctx: AppContext) -> web.Response:
    authenticate(request, ctx.settings)  # raises S3Error -> 403 through dispatch
    if ctx.kms is None:
        raise S3Error("NotImplemented", "KMS is not configured")
    ok = await run_self_test(ctx.kms, ctx.kms_health, ctx.logger)
    d = ctx.kms_health.detail
    return _json(
        200,
        {
            "key-id": d.get("key_id"),
            "kind": d.get("kind"),
            "ok": ok,
            "latency_ms": d.get("latency_ms"),
            "error": d.get("error"),
        },
    )


def render_metrics(ctx: AppContext) -> str:
    """Prometheus text exposition of the process-local counters."""
    m = ctx.metrics.snapshot()
    kms = ctx.kms_health.call_counts()
    lines = [
        "# HELP sealstore_requests_total S3 requests by operation and HTTP status.",
        "# TYPE sealstore_requests_total counter",
    ]
    for (op, status), n in m.requests:
        lines.append(f'sealstore_requests_total{{op="{op}",status="{status}"}} {n}')
    lines += [
        "# HELP sealstore_rx_bytes_total Request body bytes received.",
        "# TYPE sealstore_rx_bytes_total counter",
        f"sealstore_rx_bytes_total {m.bytes_in}",
        "# HELP sealstore_tx_bytes_total Response body bytes sent.",
        "# TYPE sealstore_tx_bytes_total counter",
        f"sealstore_tx_bytes_total {m.bytes_out}",
        "# HELP sealstore_kms_calls_total KMS calls by call and outcome.",
        "# TYPE sealstore_kms_calls_total counter",
    ]
    for (call, outcome), n in kms:
        lines.append(f'sealstore_kms_calls_total{{call="{call}",outcome="{outcome}"}} {n}')
    nodes = getattr(ctx.kms, "endpoint_health", None)
    if callable(nodes):
        lines += prometheus_lines(nodes(), int(getattr(ctx.kms, "failovers", 0)))
    ready, _ = is_ready(ctx)
    lines += [
        "# HELP sealstore_ready 1 when the server is ready (storage open, KMS self-test ok).",
        "# TYPE sealstore_ready gauge",
        f"sealstore_ready {1 if ready else 0}",
        "# HELP sealstore_uptime_seconds Seconds since this worker started.",
        "# TYPE sealstore_uptime_seconds gauge",
        f"sealstore_uptime_seconds {time.time() - m.started:.3f}",
    ]
    return "\n".join(lines) + "\n"


async def handle(request: web.Request, ctx: AppContext) -> web.StreamResponse:
    """Serve one ``/minio/...`` admin request (errors raise S3Error for the dispatcher)."""
    path = request.path
    method = request.method
    if path == "/minio/health/live" and method in ("GET", "HEAD"):
        return web.Response(status=200)
    if path == "/minio/health/ready" and method in ("GET", "HEAD"):
        return _readiness(request, ctx)
    if path == "/minio/kms/v1/key/status" and method in ("GET", "POST"):
        return await _key_status(request, ctx)
    if path == "/minio/v2/metrics/cluster" and method == "GET":
        return _metrics(request, ctx)
    raise S3Error("NotImplemented", f"admin endpoint {path} is not implemented")
