"""Start a real sealstore server process for integration tests.

Secrets are passed only through the environment or files (never argv), output goes to a log
file that tests scan for leaked secrets, and the process is stopped by its own PID.

Every server gets an admin bearer token (``SEALSTORE_METRICS_TOKEN_FILE``, a 0600 file beside
the log) and ``get()``/``ready()`` send it, so tests see the detailed readiness and metrics;
``get(path, auth=False)`` is what an anonymous prober sees. With ``tls=ServerTLS.create(dir)``
the server speaks HTTPS and every helper here verifies it against the throw-away CA.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.openbao_certs import write_private
from tests.integration.server_tls import ServerTLS

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
ROOT_USER = "sealadmin"
ROOT_PASSWORD = "sealstore-test-password-0123"
REGION = "us-east-1"


def free_port() -> int:
    """A currently free loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    """Minimal environment for a server: PATH, PYTHONPATH and the S3 credentials."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(SRC),
        "MINIO_ROOT_USER": ROOT_USER,
        "MINIO_ROOT_PASSWORD": ROOT_PASSWORD,
        "SEALSTORE_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


class ServerProcess:
    """One ``python -m sealstore server`` subprocess on a free loopback port."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str],
        log_path: Path,
        *,
        workers: int = 1,
        port: int | None = None,
        tls: ServerTLS | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.workers = workers
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls = tls
        if tls is not None:
            self.env.setdefault("SEALSTORE_TLS_CERT_FILE", str(tls.cert_file))
            self.env.setdefault("SEALSTORE_TLS_KEY_FILE", str(tls.key_file))
        self.metrics_token = ""
        if "SEALSTORE_METRICS_TOKEN_FILE" not in self.env:
            self.metrics_token = "metrics-" + secrets.token_urlsafe(24)
            token_file = self.log_path.parent / f".{self.log_path.name}.{self.port}.metrics-token"
            write_private(token_file, self.metrics_token + "\n")
            self.env["SEALSTORE_METRICS_TOKEN_FILE"] = str(token_file)
        else:
            token_path = Path(self.env["SEALSTORE_METRICS_TOKEN_FILE"])
            self.metrics_token = token_path.read_text().strip()

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "sealstore",
            "server",
            "--address",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            str(self.data_dir),
        ]

    def start(self, timeout: float = 20.0, wait: bool = True) -> ServerProcess:
        """Start the process (appending to the log) and wait until /minio/health/live is 200."""
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        if wait:
            self.wait_live(timeout)
        return self

    def wait_live(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"sealstore exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}"
                )
            try:
                status, _ = self.get("/minio/health/live")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"sealstore not live after {timeout}s:\n{self.log_text()[-3000:]}")

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        doc: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, doc = self.ready()
            if status == 200:
                return doc
            time.sleep(0.25)
        raise TimeoutError(f"sealstore not ready after {timeout}s: {doc}")

    def get(self, path: str, *, auth: bool = True) -> tuple[int, bytes]:
        """GET on the server's admin endpoints, with the admin bearer token unless ``auth`` is
        False (then it is what an anonymous prober sees)."""
        headers = {"Authorization": f"Bearer {self.metrics_token}"} if auth else {}
        req = urllib.request.Request(self.endpoint + path, headers=headers)
        context = self.tls.client_context() if self.tls is not None else None
        try:
            with urllib.request.urlopen(req, timeout=5, context=context) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def ready(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/minio/health/ready")
        return status, json.loads(body or b"{}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL the server's process group (workers included), like a crash."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(10)

    def reload(self) -> None:
        """SIGHUP the server (the supervisor forwards it to every worker)."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGHUP)

    def restart(self, **kwargs: Any) -> ServerProcess:
        self.stop()
        return self.start(**kwargs)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (path-style, SigV4; verifies the test CA)."""
        if self.tls is not None:
            config.setdefault("verify", str(self.tls.ca_file))
        return make_client(self.endpoint, **config)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_client(
    endpoint: str,
    access_key: str = ROOT_USER,
    secret_key: str = ROOT_PASSWORD,
    verify: str | bool | None = None,
    **config: Any,
) -> Any:
    import boto3
    from botocore.config import Config

    cfg = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        **config,
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=cfg,
        verify=verify,
    )
