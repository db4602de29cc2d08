"""The steady SSE-S3 load of the KMS fault suites, started and collected from the controller.

Why shared: the kms-cluster fault run and the seal migration of scenario default both prove "no
client-visible error, every object readable" with the same client-side load
(files/kms_load.py: fixed rate PUT + GET, sha256 checked, boto3 retries off), run on the client
host as a transient systemd unit bounded by a stop file and a maximum duration.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from infra_lib import Deployment

LOAD_SCRIPT = Path(__file__).resolve().parent / "files" / "kms_load.py"
REMOTE_SCRIPT = "/usr/local/lib/kms_load.py"
STOP_FILE = "/run/kms-load.stop"
REPORT = "/run/kms-load.json"
UNIT = "kms-load"
# Numbers the suites measured, printed in pytest's terminal summary (conftest) for closing notes.
MEASURED: dict[str, dict[str, Any]] = {}


def start_load(dep: Deployment, client: str, *, rate: float, max_seconds: float) -> float:
    """Start the load on ``client`` against the first storage host; returns the start epoch."""
    h = dep.host(client)
    h.ansible("copy", f"src={LOAD_SCRIPT} dest={REMOTE_SCRIPT} mode=0644", check=False, become=True)
    h.run("rm -f %s %s; systemctl reset-failed %s", STOP_FILE, REPORT, UNIT)
    storage = dep.storage_hosts[0]
    prefix = dep.setting("sse_client_prefix", client)
    started = time.time()
    out = h.run(
        "systemd-run --unit=%s --property=RuntimeMaxSec=%s %s/venv/bin/python %s --endpoint %s "
        "--env-file %s --rate %s --max-seconds %s --stop-file %s --out %s",
        UNIT,
        str(int(max_seconds) + 300),
        prefix,
        REMOTE_SCRIPT,
        dep.storage_url(storage),  # https with the client's CA bundle unless TLS is off
        str(dep.setting("sse_client_env_file", client)),
        str(rate),
        str(max_seconds),
        STOP_FILE,
        REPORT,
    )
    assert out.rc == 0, out.stderr
    return started


def load_running(dep: Deployment, client: str) -> tuple[bool, str]:
    """Whether the load unit still runs, with its journal tail for the failure message."""
    h = dep.host(client)
    return h.service(UNIT).is_running, h.run("journalctl -u %s -n 30", UNIT).stdout


def stop_load(dep: Deployment, client: str, *, wait_s: float = 300) -> dict[str, Any]:
    """Stop the load, wait for its read-back of every object, and return its JSON report."""
    h = dep.host(client)
    h.run("touch %s", STOP_FILE)
    deadline = time.monotonic() + wait_s
    while h.run("test -s %s", REPORT).rc != 0:
        assert time.monotonic() < deadline, h.run("journalctl -u %s -n 40", UNIT).stdout
        time.sleep(2)
    return dict(json.loads(h.check_output("cat %s", REPORT)))


def errors_in(
    report: dict[str, Any], window: list[float], slack: float = 5.0
) -> list[dict[str, Any]]:
    """The client errors whose request started inside ``window`` (epoch seconds, plus slack)."""
    start = report["start_epoch"]
    return [e for e in report["errors"] if window[0] <= start + e["t"] <= window[-1] + slack]
