"""The closing summary of `make lab`: endpoint, credentials, a verified round trip, ciphertext.

Why a separate, fresh round trip: the summary must state facts about one concrete object
(bucket/key, size, sha256, the SSE header the server echoed, the KMS key id) and prove, on the
storage host, that no 16-byte run of its plaintext is in the data directory.  It drives the
project's own SSE client inside the lab containers with `docker exec`; paths and ports come
from the roles' defaults and the lab inventory, not from copies here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
STORAGE, CLIENT = "storage1", "client1"
IP_FORMAT = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"


def role_default(role: str, var: str) -> Any:
    """A role default that is a plain value (the ones used here carry no templates)."""
    data = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    value = data[var]
    if isinstance(value, str) and "{{" in value:
        raise SystemExit(f"lab summary: {role} default {var} is templated; update lab_summary.py")
    return value


def tls_enabled(inventory: Path) -> bool:
    """storage_server_tls_enabled as the lab inventory sets it (the role default is true)."""
    path = inventory / "group_vars" / "all.yml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    return bool((data or {}).get("storage_server_tls_enabled", True))


def docker_exec(host: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", host, *argv], capture_output=True, text=True, check=False, timeout=600
    )


def container_ip(host: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "--format", IP_FORMAT, host],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] if out else "?"


# Run inside a KMS container: its own seal status and HA role, over TLS verified with its CA.
_NODE_STATUS = """
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.check_hostname = False  # 127.0.0.1 on the node itself; the chain is still checked
out = {}
for path in ("seal-status", "leader"):
    url = "https://127.0.0.1:%s/v1/sys/%s" % (sys.argv[2], path)
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            out[path] = json.load(r)
    except OSError as exc:  # a sealed node answers sys/leader with 503
        out[path] = {"error": str(exc)}
print(json.dumps(out))
"""


def inventory_hosts(inventory: str) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Groups -> hosts and hostvars from ansible-inventory (the lab inventories name each node)."""
    out = subprocess.run(
        ["ansible-inventory", "-i", inventory, "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc = json.loads(out)
    groups = {g: sorted(v.get("hosts", [])) for g, v in doc.items() if isinstance(v, dict)}
    return groups, doc.get("_meta", {}).get("hostvars", {})


def node_state(host: str, port: int) -> str:
    """'active/standby, sealed/unsealed, seal <type>' of one KMS node, or why it is unknown."""
    # vault_server_config_dir is templated on the implementation: /etc/<implementation>
    ca = f"/etc/{role_default('vault_server', 'vault_server_implementation')}/tls/ca.pem"
    run = docker_exec(host, "python3", "-c", _NODE_STATUS, ca, str(port))
    try:
        doc = json.loads(run.stdout)
    except json.JSONDecodeError:
        return f"status unknown ({run.stderr.strip()[-120:] or 'no answer'})"
    seal, leader = doc["seal-status"], doc["leader"]
    if "error" in seal:
        return f"status unknown ({seal['error']})"
    role = "active" if leader.get("is_self") else "standby"
    state = "sealed" if seal.get("sealed") else "unsealed"
    return f"{role}, {state}, seal {seal.get('type')}"


def kms_rows(inventory: str, secrets_dir: Path, key_id: str) -> list[tuple[str, str]]:
    """One row per KMS node (and unsealer): every endpoint the storage host fails over between."""
    groups, hostvars = inventory_hosts(inventory)
    nodes = groups.get("vault_servers", [])
    if not nodes:
        return [("KMS", "no vault_servers in the inventory")]
    port = int(role_default("vault_server", "vault_server_port"))
    seal = hostvars.get(nodes[0], {}).get("vault_server_seal_type", "shamir")
    custody = f"{rel(secrets_dir)}/{nodes[0]}-init.json (0600)"
    keys = "recovery keys" if seal != "shamir" else "unseal keys"
    rows = [
        (
            "KMS",
            f"OpenBao raft cluster of {len(nodes)} (transit key {key_id}, AppRole, seal {seal}); "
            f"{keys} + root token: {custody}",
        )
    ]
    rows += [(f"  {n}", f"https://{n}:{port}: {node_state(n, port)}") for n in nodes]
    for u in groups.get("vault_unsealers", []):
        rows.append((f"  {u}", f"https://{u}:{port}: transit unsealer, {node_state(u, port)}"))
    return rows


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["vault", "master_key"], default="vault")
    parser.add_argument("--inventory", default=str(REPO / "inventories" / "lab"))
    args = parser.parse_args()
    secrets_dir = Path(args.inventory) / ".secrets"

    port = role_default("storage_server", "storage_server_port")
    data_dir = role_default("storage_server", "storage_server_data_dir")
    scanner = f"{role_default('storage_server', 'storage_server_prefix')}/venv/bin/sealstore-client"
    client = f"{role_default('sse_client', 'sse_client_prefix')}/venv/bin/sealstore-client"
    client_env = role_default("sse_client", "sse_client_env_file")
    scheme = "https" if tls_enabled(Path(args.inventory)) else "http"
    endpoint = f"{scheme}://{STORAGE}:{port}"

    rt = docker_exec(
        CLIENT, client, "roundtrip", "--endpoint", endpoint, "--env-file", client_env,
        "--modes", "sse-s3", "--sizes", "1MiB", "--multipart-size", "0", "--keep", "--json",
    )  # fmt: skip
    try:
        doc = json.loads(rt.stdout)
    except json.JSONDecodeError:
        print(f"lab summary: the SSE client gave no JSON (rc={rt.returncode}): {rt.stderr.strip()}")
        return 1
    if rt.returncode != 0 or not doc.get("ok"):
        print(f"lab summary: round trip FAILED: {doc.get('summary') or doc.get('fatal')}")
        return 1
    obj = max(doc["objects"], key=lambda o: o["size"])
    scan = docker_exec(
        STORAGE, scanner, "scan", "--data-dir", data_dir, "--seed", obj["seed"],
        "--size", str(obj["size"]), "--json",
    )  # fmt: skip
    try:
        scan_doc = json.loads(scan.stdout)
    except json.JSONDecodeError:
        scan_doc = {"ok": False, "summary": scan.stderr.strip() or "no output"}

    if args.mode == "vault":
        kms = kms_rows(args.inventory, secrets_dir, str(doc.get("kms_key_id")))
    else:
        kms = [
            (
                "KMS",
                f"static master key (id {doc.get('kms_key_id')}): "
                f"{rel(secrets_dir)}/sse-master-key (0600)",
            )
        ]
    rows = [
        (
            "S3 endpoint",
            f"{scheme}://{container_ip(STORAGE)}:{port} (here), {endpoint} (in the lab)",
        ),
        (
            "TLS",
            f"CA {rel(secrets_dir)}/pki/ca.pem (on {CLIENT}: AWS_CA_BUNDLE in {client_env}); "
            "metrics token: " + f"{rel(secrets_dir)}/metrics-token.txt (0600)"
            if scheme == "https"
            else "off (plain HTTP, storage_server_tls_enabled: false)",
        ),
        ("credentials", f"{rel(secrets_dir)}/s3-credentials.json (0600); {client_env} on {CLIENT}"),
        *kms,
        (
            "round trip",
            f"{CLIENT} -> {STORAGE}: s3://{obj['bucket']}/{obj['key']} size={obj['size']} "
            f"sha256={obj['sha256']} x-amz-server-side-encryption={obj['sse']} "
            f"kms-key={doc.get('kms_key_id')}",
        ),
        ("verified", doc.get("summary", "")),
        ("at rest", f"{data_dir} on {STORAGE}: {scan_doc.get('summary', '')}"),
        ("next", "make test | make lab-down (removes containers, network, lab secrets)"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return 0 if scan.returncode == 0 and scan_doc.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
