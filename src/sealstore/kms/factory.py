"""Choose and build the KMS from configuration values (Vault/OpenBao, master key, or none).

Configuration parsing lives in ``sealstore.config``; this module only turns already-read values
into a KMS object, so it can be called with plain keyword values (tests, tools) or with the
server's ``Settings`` object (attributes ``vault`` and ``master_key``).
"""

from __future__ import annotations

from typing import Any

from sealstore.kms.base import KMS
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.kms.vault import VaultKMS


def build_kms(
    settings: Any = None,
    *,
    endpoint: str | None = None,
    role_id: str | None = None,
    secret_id: str | None = None,
    key_name: str | None = None,
    namespace: str | None = None,
    capath: str | None = None,
    master_key: str | None = None,
) -> KMS | None:
    """Return the configured KMS, or ``None`` when neither Vault nor a master key is set.

    Raises ``ValueError`` with one clear line for an incomplete Vault configuration, a malformed
    master key, or both KMSes configured at once ("Ambiguous KMS configuration").
    """
    if settings is not None:
        vault = getattr(settings, "vault", None)
        if vault is not None:
            endpoint = vault.endpoint
            role_id = vault.role_id
            secret_id = vault.secret_id
            key_name = vault.key_name
            namespace = vault.namespace
            capath = vault.capath
        master_key = getattr(settings, "master_key", None)
    vault_values = {
        "MINIO_SSE_VAULT_ENDPOINT": endpoint,
        "MINIO_SSE_VAULT_APPROLE_ID": role_id,
        "MINIO_SSE_VAULT_APPROLE_SECRET": secret_id,
        "MINIO_SSE_VAULT_KEY_NAME": key_name,
    }
    vault_set = any(vault_values.values()) or bool(namespace) or bool(capath)
    if vault_set and master_key:
        raise ValueError(
            "Ambiguous KMS configuration: both MINIO_SSE_VAULT_* and MINIO_SSE_MASTER_KEY are "
            "set; configure exactly one"
        )
    if master_key:
        return MasterKeyKMS.from_env_value(master_key)
    if not vault_set:
        return None
    missing = [name for name, value in vault_values.items() if not value]
    if missing:
        raise ValueError(f"incomplete Vault KMS configuration: {', '.join(missing)} not set")
    assert endpoint and role_id and secret_id and key_name
    return VaultKMS(endpoint, role_id, secret_id, key_name, namespace=namespace, capath=capath)
