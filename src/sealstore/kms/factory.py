"""Choose and build the KMS from configuration values (Vault/OpenBao, master key, or none).

Configuration parsing lives in ``sealstore.config``; this module only turns already-read values
into a KMS object, so it can be called with plain keyword values (tests, tools) or with the
server's ``Settings`` object (attributes ``vault`` and ``master_key``).

:func:`build_server_kms` is what the server uses: the chosen back-end, optionally behind the
data-key cache, always behind :class:`~sealstore.kms.health.ObservedKMS` so that every KMS
call a request makes is counted and an outage drops readiness at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sealstore.kms.base import KMS
from sealstore.kms.cache import CachingKMS
from sealstore.kms.health import KMSHealth, ObservedKMS
from sealstore.kms.master_key import MasterKeyKMS
from sealstore.kms.vault import VaultKMS
from sealstore.log import get_logger

if TYPE_CHECKING:
    from sealstore.config import Settings


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
    failover_timeout: float = 10.0,
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
            failover_timeout = getattr(vault, "failover_timeout", failover_timeout)
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
    return VaultKMS(
        endpoint,
        role_id,
        secret_id,
        key_name,
        namespace=namespace,
        capath=capath,
        failover_timeout=failover_timeout,
    )


def build_server_kms(settings: Settings, health: KMSHealth) -> KMS | None:
    """The server's KMS: :func:`build_kms`, then the optional cache, then the observer.

    Order (outermost first): ``ObservedKMS(CachingKMS(back-end))``. The observer sits outside
    the cache, so a decrypt answered from the cache counts as ``decrypt``/``ok`` (as the
    request path always counted it: the metric is "key unseals the server asked for", with or
    without a round trip); a cache miss with the KMS down still raises ``KMSUnavailableError``
    through the cache and drops readiness. ``status()`` always reaches the real back-end.
    """
    kms = build_kms(settings)
    if kms is None:
        return None
    if settings.kms_cache_ttl > 0:
        kms = CachingKMS(kms, ttl=settings.kms_cache_ttl)
        get_logger().info(
            "KMS data-key cache on (GETs of recently read objects survive KMS outages)",
            extra={"ttl_s": settings.kms_cache_ttl},
        )
    return ObservedKMS(kms, health)
