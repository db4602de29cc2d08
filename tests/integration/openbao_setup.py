"""The Vault-API side of the test OpenBao, spoken through ``hvac`` (nothing here runs a process).

hvac is the Vault client this project's harness uses: every call below is one of its typed
methods, so the setup reads like the MinIO KMS quickstart it reproduces instead of a list of
hand-written URLs. (The sealstore server keeps its own asynchronous aiohttp client: hvac is
synchronous and would block the event loop.)

``initialise`` / ``unseal`` / ``seal`` / ``is_active`` drive the server's lifecycle;
``ensure_namespace`` and ``quickstart`` perform the quickstart's setup idempotently: transit
engine and key, the least-privilege policy, AppRole and a role with ``token_num_uses=0
secret_id_num_uses=0 period=60s``, then a fresh secret-id. Namespaces are not a parameter of
these functions: the caller passes an ``hvac.Client`` made for that namespace (hvac sends its
``X-Vault-Namespace`` header on every request). hvac and transport failures leave here as
``OpenBaoError``, the one error type of the harness.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hvac
import hvac.exceptions
import requests

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

TRANSIT_MOUNT = "transit"
APPROLE_MOUNT = "approle"


class OpenBaoError(RuntimeError):
    """An OpenBao API call made by the test helper failed."""


@contextlib.contextmanager
def calling(what: str) -> Iterator[None]:
    """Turn hvac's and requests' errors into ``OpenBaoError`` naming the step that failed."""
    try:
        yield
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise OpenBaoError(f"{what}: {type(exc).__name__}: {exc}") from exc


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


# ------------------------------------------------------------------------------ lifecycle


def initialise(anonymous: hvac.Client) -> tuple[str, str] | None:
    """Initialise with one key share unless already done; (unseal key, root token) or None."""
    with calling("sys/init"):
        if anonymous.sys.is_initialized():
            return None
        init = anonymous.sys.initialize(secret_shares=1, secret_threshold=1)
    return str(init["keys"][0]), str(init["root_token"])


def unseal(anonymous: hvac.Client, key: str) -> None:
    """Submit the unseal key (no-op when already unsealed)."""
    with calling("sys/unseal"):
        anonymous.sys.submit_unseal_key(key=key)


def seal(root: hvac.Client) -> None:
    """Seal the server: the Vault API answers 503 until it is unsealed again."""
    with calling("sys/seal"):
        root.sys.seal()


def is_active(anonymous: hvac.Client) -> bool:
    """``sys/health`` says 200: initialised, unsealed and the active node (raft leader)."""
    try:
        health = anonymous.sys.read_health_status(method="GET")
    except requests.RequestException:
        return False
    # hvac's JSON adapter returns the document on 200 and the raw response otherwise
    return isinstance(health, dict)


# ------------------------------------------------------------------------------ quickstart


def ensure_namespace(root: hvac.Client, name: str) -> None:
    """Create namespace ``name`` (OpenBao OSS has ``sys/namespaces``) unless it exists."""
    with calling(f"namespace {name}"):
        # hvac has no typed read for one namespace; its generic read returns None on 404
        existing = root.read(f"sys/namespaces/{name}")
        if not (existing or {}).get("data"):
            root.sys.create_namespace(path=name)


def _data(listing: dict[str, Any]) -> dict[str, Any]:
    """Mount listings carry their entries under ``data`` (and, for old clients, at the top)."""
    return dict(listing.get("data", listing))


def quickstart(
    client: hvac.Client,
    *,
    key: str,
    period: str,
    role: str,
    policy: str,
    derived: bool = False,
) -> tuple[str, str]:
    """The quickstart's setup in ``client``'s namespace; (role-id, fresh secret-id) of ``role``."""
    with calling("transit engine"):
        if f"{TRANSIT_MOUNT}/" not in _data(client.sys.list_mounted_secrets_engines()):
            client.sys.enable_secrets_engine("transit", path=TRANSIT_MOUNT)
    with calling(f"transit key {key}"):
        try:
            client.secrets.transit.read_key(name=key, mount_point=TRANSIT_MOUNT)
        except hvac.exceptions.InvalidPath:
            client.secrets.transit.create_key(name=key, derived=derived, mount_point=TRANSIT_MOUNT)
    with calling(f"policy {policy}"):
        client.sys.create_or_update_acl_policy(name=policy, policy=POLICY_TEMPLATE.format(key=key))
    with calling("approle auth method"):
        if f"{APPROLE_MOUNT}/" not in _data(client.sys.list_auth_methods()):
            client.sys.enable_auth_method("approle", path=APPROLE_MOUNT)
    with calling(f"approle role {role}"):
        client.auth.approle.create_or_update_approle(
            role,
            token_num_uses=0,
            secret_id_num_uses=0,
            token_period=period,  # the role's "period" (the quickstart's older name for it)
            token_policies=[policy],
            mount_point=APPROLE_MOUNT,
        )
        role_id = client.auth.approle.read_role_id(role, mount_point=APPROLE_MOUNT)
        secret = client.auth.approle.generate_secret_id(role, mount_point=APPROLE_MOUNT)
    return str(role_id["data"]["role_id"]), str(secret["data"]["secret_id"])


def approle_login(anonymous: hvac.Client, role_id: str, secret_id: str) -> dict[str, Any]:
    """AppRole login as a client would (the client's token is left unset); the ``auth`` block."""
    with calling("approle login"):
        doc = anonymous.auth.approle.login(
            role_id, secret_id, use_token=False, mount_point=APPROLE_MOUNT
        )
    return dict(doc["auth"])
