"""Run ON a storage host: log in with the AppRole credentials of its own EnvironmentFile.

Why on the host: the secret-id and the tokens it logs in to are bound to the host's address
(``cidr_list``/``token_bound_cidrs``), so only a call from there may succeed. The secret-id is
read from the file here and never passes through a command line. Prints one JSON document of
statuses (no token, no secret): login, data key, a policy read, revoke-self.
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request


def env_file(path: str) -> dict[str, str]:
    env: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value.strip().strip("'\"")
    return env


def call(
    url: str,
    ctx: ssl.SSLContext,
    headers: dict[str, str],
    body: object = None,
    method: str = "POST",
):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=15) as resp:
            text = resp.read()
            return resp.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text) if text else {}
        except ValueError:
            return exc.code, {}


def main(path: str, mount: str, policy: str) -> None:
    env = env_file(path)
    base = env["MINIO_SSE_VAULT_ENDPOINT"].split(",")[0].rstrip("/")
    ctx = ssl.create_default_context(cafile=env.get("MINIO_SSE_VAULT_CAPATH") or None)
    headers = {"Content-Type": "application/json"}
    if env.get("MINIO_SSE_VAULT_NAMESPACE"):
        headers["X-Vault-Namespace"] = env["MINIO_SSE_VAULT_NAMESPACE"]
    creds = {
        "role_id": env["MINIO_SSE_VAULT_APPROLE_ID"],
        "secret_id": env["MINIO_SSE_VAULT_APPROLE_SECRET"],
    }
    out: dict[str, object] = {}
    out["login"], doc = call(f"{base}/v1/auth/{mount}/login", ctx, headers, creds)
    auth = doc.get("auth") or {}
    out["lease_duration"] = auth.get("lease_duration")
    out["policies"] = auth.get("policies")
    if auth.get("client_token"):
        with_token = {**headers, "X-Vault-Token": auth["client_token"]}
        key = env["MINIO_SSE_VAULT_KEY_NAME"]
        out["datakey"], _ = call(f"{base}/v1/transit/datakey/plaintext/{key}", ctx, with_token, {})
        out["policy_read"], _ = call(
            f"{base}/v1/sys/policies/acl/{policy}", ctx, with_token, method="GET"
        )
        out["revoke"], _ = call(f"{base}/v1/auth/token/revoke-self", ctx, with_token, {})
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
