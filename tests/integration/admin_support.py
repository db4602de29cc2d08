"""Shared helpers of the `sealstore admin` integration tests: a transit key of their own on
the shared OpenBao (so rotating it touches no other test), the temporary rewrap grant the
playbook gives, running `sealstore admin` as a subprocess, and reading what is stored."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealstore.objects import metadata as md
from sealstore.storage.base import ObjectMeta, UploadMeta
from sealstore.storage.factory import open_store
from tests.integration.openbao import AppRoleCreds, OpenBao
from tests.integration.server import base_env

REWRAP_POLICY = """\
path "transit/rewrap/{key}" {{
  capabilities = ["update"]
}}
path "transit/keys/{key}" {{
  capabilities = ["read"]
}}
"""


@dataclass
class TransitKey:
    """A transit key, AppRole role and policy used by one test only."""

    bao: OpenBao
    creds: AppRoleCreds
    role: str
    policy: str

    @property
    def name(self) -> str:
        return self.creds.key_name

    def rotate(self) -> int:
        self.bao.api("POST", f"transit/keys/{self.name}/rotate")
        return self.versions()["latest_version"]

    def versions(self) -> dict[str, Any]:
        return self.bao.api("GET", f"transit/keys/{self.name}")["data"]

    def set_min_decryption(self, version: int) -> None:
        self.bao.api(
            "POST", f"transit/keys/{self.name}/config", {"min_decryption_version": version}
        )

    def grant_rewrap(self, granted: bool = True) -> None:
        """What the playbook does around `admin rewrap`: an extra policy on the role."""
        extra = f"{self.policy}-rewrap"
        if granted:
            self.bao.api(
                "POST", f"sys/policies/acl/{extra}", {"policy": REWRAP_POLICY.format(key=self.name)}
            )
        policies = [self.policy, extra] if granted else [self.policy]
        self.bao.api("POST", f"auth/approle/role/{self.role}", {"token_policies": policies})
        if not granted:
            self.bao.api("DELETE", f"sys/policies/acl/{extra}")


def new_transit_key(bao: OpenBao, *, derived: bool = False) -> TransitKey:
    tag = uuid.uuid4().hex[:8]
    role, policy = f"admin-role-{tag}", f"admin-policy-{tag}"
    creds = bao.configure_sse(key=f"admin-key-{tag}", role=role, policy=policy, derived=derived)
    return TransitKey(bao, creds, role, policy)


def server_env(creds: AppRoleCreds | None = None, **extra: str) -> dict[str, str]:
    env = base_env(MINIO_SSE_AUTO_ENCRYPTION="on", **extra)
    if creds is not None:
        env.update(creds.env())
    return env


def admin(
    env: dict[str, str], *args: str, timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    """`sealstore admin ARGS` (JSON lines: stdout is a pipe)."""
    return subprocess.run(
        [sys.executable, "-m", "sealstore", "admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def summary_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    docs = [e for e in events(proc.stdout) if e["event"] == "summary"]
    assert len(docs) == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return docs[0]


async def _stored(data_dir: Path) -> tuple[list[ObjectMeta], list[UploadMeta]]:
    store = open_store(data_dir)
    await store.open()
    try:
        objects: list[ObjectMeta] = []
        uploads: list[UploadMeta] = []
        for bucket in await store.list_buckets():
            objects += (await store.list_objects(bucket.name, max_keys=100000)).objects
            uploads += (await store.list_uploads(bucket.name, max_uploads=100000))[0]
        return objects, uploads
    finally:
        await store.close()


def stored(data_dir: Path) -> tuple[list[ObjectMeta], list[UploadMeta]]:
    """Every object and pending upload as the index holds them (a second process is fine)."""
    return asyncio.run(_stored(data_dir))


def kms_version(internal: dict[str, str]) -> int:
    """N of the stored ``vault:vN:`` data-key ciphertext."""
    text = base64.b64decode(internal[md.META_S3_KMS_SEALED_KEY]).decode()
    assert text.startswith("vault:v"), text[:12]
    return int(text.split(":")[1][1:])


def blob_digests(data_dir: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime_ns of every data file: proves rewrap never rewrites data."""
    out = {}
    for path in sorted((data_dir / "blobs").glob("*/*")):
        out[path.name] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return out
