"""Start a real ``sealstore server`` process for one benchmark configuration.

Encrypting configurations run with ``MINIO_SSE_AUTO_ENCRYPTION=on``: presigned URLs sign only
the host header, so the SSE request header cannot be sent by wrk; auto-encryption takes the
same SSE-S3 code path on the server.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field

import procs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Server:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    proc: object
    log: str
    data_dir: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # per-product details (peer ports)


def start(
    name: str, kind: str, workdir: str, cpus: str | None, bao=None, src: str | None = None
) -> Server:
    """kind: "plain" | "master-key" | "vault" (needs ``bao`` from bao_launcher.start).

    ``src`` is the ``src/`` directory of the sealstore tree to run (default: this checkout);
    ``--baseline-src`` uses it to run an older tree beside this one in the same run.
    """
    port = procs.free_port()
    data = os.path.join(workdir, f"data-{name}")
    os.makedirs(data, mode=0o700, exist_ok=True)
    access, secret = "bench-" + secrets.token_hex(4), secrets.token_hex(20)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": workdir,
        "PYTHONPATH": src or os.path.join(REPO, "src"),
        "MINIO_ROOT_USER": access,
        "MINIO_ROOT_PASSWORD": secret,
        "SEALSTORE_LOG_LEVEL": "warning",
        "SEALSTORE_WORKERS": "1",
    }
    if kind == "master-key":
        env["MINIO_SSE_MASTER_KEY"] = f"bench-key:{secrets.token_hex(32)}"
        env["MINIO_SSE_AUTO_ENCRYPTION"] = "on"
    elif kind == "vault":
        env.update(
            {
                "MINIO_SSE_VAULT_ENDPOINT": bao.endpoint,
                "MINIO_SSE_VAULT_APPROLE_ID": bao.role_id,
                "MINIO_SSE_VAULT_APPROLE_SECRET": bao.secret_id,
                "MINIO_SSE_VAULT_KEY_NAME": "my-minio-key",
                "MINIO_SSE_AUTO_ENCRYPTION": "on",
            }
        )
    elif kind != "plain":
        raise ValueError(kind)
    log = os.path.join(workdir, f"server-{name}.log")
    argv = [sys.executable, "-m", "sealstore", "server", "--address", f"127.0.0.1:{port}", data]
    proc = procs.spawn(argv, env, log, cpus)
    endpoint = f"http://127.0.0.1:{port}"
    procs.wait_http(f"{endpoint}/minio/health/ready", proc, log, timeout=60)
    return Server(name, endpoint, access, secret, proc, log, data_dir=data)
