"""Operational endpoints: liveness, readiness, KMS self-test, Prometheus metrics.

Readiness is the honest signal for orchestration (systemd health waits, the Ansible role):
it is 503 with the KMS's own error until the storage is open and, when a KMS is configured,
its last self-test passed. A background monitor re-runs the self-test (every ~10 s while
failing) so the server heals on its own when Vault comes back, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web

from sealstore.kms.vault_endpoints import prometheus_lines
from sealstore.s3.context import AppContext
from sealstore.s3.errors import S3Error

RETRY_NOT_READY_S = 10.0
RECHECK_READY_S = 30.0


def _json(status: int, doc: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(doc, separators=(",", ":")), content_type="application/json"
    )


async def run_self_test(ctx: AppContext) -> bool:
    """Run kms.status() once, store the outcome in ``ctx.kms_health``, return ok."""
    kms = ctx.kms
    if kms is None:
        ctx.kms_health.ok = True
        ctx.kms_health.detail = {}
        ctx.kms_health.checked_at = time.time()
        return True
    try:
        st = await kms.status()
        detail = asdict(st)
        ok = bool(st.ok)
    except Exception as exc:
        detail = {"kind": kms.kind, "key_id": kms.default_key_id, "ok": False, "error": str(exc)}
        ok = False
    was_ok = ctx.kms_health.ok
    ctx.kms_health.ok = ok
    ctx.kms_health.detail = detail
    ctx.kms_health.checked_at = time.time()
    ctx.metrics.record_kms("status", "ok" if ok else "error")
    if ok != was_ok or not ok:
        log = ctx.logger.info if ok else ctx.logger.warning
        log(
            "kms self-test " + ("passed" if ok else "failed"),
            extra={"kms_kind": kms.kind, "kms_error": detail.get("error")},
        )
    return ok


async def monitor_kms(ctx: AppContext) -> None:
    """Background task: self-test now, then every 10 s while failing, 30 s while healthy."""
    while True:
        ok = await run_self_test(ctx)
        if ctx.kms is None:
            return
        await asyncio.sleep(RECHECK_READY_S if ok else RETRY_NOT_READY_S)


def mark_kms_failed(ctx: AppContext, error: str) -> None:
    """Called when a live request saw the KMS unreachable: readiness drops immediately."""
    ctx.kms_health.ok = False
    ctx.kms_health.detail = {**ctx.kms_health.detail, "ok": False, "error": error}


def is_ready(ctx: AppContext) -> tuple[bool, dict[str, Any]]:
    """Readiness verdict and the JSON document explaining it."""
    doc: dict[str, Any] = {"ready": True, "storage": ctx.storage_open}
    if not ctx.storage_open:
        doc["ready"] = False
    if ctx.kms is not None:
        doc["kms"] = ctx.kms_health.detail or {"ok": False, "error": "self-test not run yet"}
        nodes = getattr(ctx.kms, "endpoint_health", None)
        if callable(nodes):  # Vault: live per-node health, fresher than the last self-test
            failovers = getattr(ctx.kms, "failovers", 0)
            doc["kms"] = {**doc["kms"], "endpoints": [asdict(n) for n in nodes()]}
            doc["kms"]["failovers"] = failovers
        if not ctx.kms_health.ok:
            doc["ready"] = False
    return doc["ready"], doc


async def _key_status(request: web.Request, ctx: AppContext) -> web.Response:
    from sealstore.s3.app import authenticate

    authenticate(request, ctx)  # raises S3Error -> 403 through dispatch
    if ctx.kms is None:
        raise S3Error("NotImplemented", "KMS is not configured")
    ok = await run_self_test(ctx)
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
    m = ctx.metrics
    lines = [
        "# HELP sealstore_requests_total S3 requests by operation and HTTP status.",
        "# TYPE sealstore_requests_total counter",
    ]
    with m._lock:
        reqs = sorted(m.requests.items())
        kms = sorted(m.kms_calls.items())
        bytes_in, bytes_out = m.bytes_in, m.bytes_out
    for (op, status), n in reqs:
        lines.append(f'sealstore_requests_total{{op="{op}",status="{status}"}} {n}')
    lines += [
        "# HELP sealstore_rx_bytes_total Request body bytes received.",
        "# TYPE sealstore_rx_bytes_total counter",
        f"sealstore_rx_bytes_total {bytes_in}",
        "# HELP sealstore_tx_bytes_total Response body bytes sent.",
        "# TYPE sealstore_tx_bytes_total counter",
        f"sealstore_tx_bytes_total {bytes_out}",
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


async def handle(request: web.Request, ctx: AppContext, request_id: str) -> web.StreamResponse:
    """Serve one ``/minio/...`` admin request."""
    path = request.path
    method = request.method
    if path == "/minio/health/live" and method in ("GET", "HEAD"):
        return web.Response(status=200)
    if path == "/minio/health/ready" and method in ("GET", "HEAD"):
        ready, doc = is_ready(ctx)
        return _json(200 if ready else 503, doc)
    if path == "/minio/kms/v1/key/status" and method in ("GET", "POST"):
        return await _key_status(request, ctx)
    if path == "/minio/v2/metrics/cluster" and method == "GET":
        from sealstore.s3.app import authenticate

        if request.headers.get("authorization") or "X-Amz-Signature" in request.query:
            authenticate(request, ctx)
        return web.Response(text=render_metrics(ctx), content_type="text/plain", charset="utf-8")
    raise S3Error("NotImplemented", f"admin endpoint {path} is not implemented")


def start_monitor(ctx: AppContext) -> asyncio.Task[None]:
    """Start the background KMS monitor task."""
    return asyncio.create_task(monitor_kms(ctx), name="kms-monitor")


async def stop_monitor(task: asyncio.Task[None] | None) -> None:
    """Cancel the monitor and wait for it."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
