"""Environment + command line -> typed, validated Settings.

The server reads exactly the MinIO quickstart's variables so existing MinIO environment
files work unchanged. Every bad value yields one ConfigError line naming the variable and
what is wrong, because that line is what an operator sees in ``systemctl status``.
Secrets are kept out of ``repr`` so a stray log of the settings cannot leak them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealstore import config_values

DEFAULT_ADDRESS = ":9000"
DEFAULT_REGION = "us-east-1"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")
MAX_WORKERS = 64
DOCKER_SECRETS_DIR = Path("/run/secrets")
DEFAULT_FAILOVER_TIMEOUT = 10.0
MAX_FAILOVER_TIMEOUT = 120.0
DEFAULT_BODY_IDLE_TIMEOUT = 60.0
MAX_BODY_IDLE_TIMEOUT = 3600.0

# name -> one-line description; cli.py prints these in --help so the list cannot drift.
ENV_DOC: dict[str, str] = {
    "MINIO_ROOT_USER": "S3 access key (required, at least 3 characters)",
    "MINIO_ROOT_PASSWORD": "S3 secret key (required, at least 8 characters)",
    "MINIO_ACCESS_KEY": "legacy name of MINIO_ROOT_USER (used only when that is unset)",
    "MINIO_SECRET_KEY": "legacy name of MINIO_ROOT_PASSWORD (used only when that is unset)",
    "MINIO_REGION": f"region reported to clients and used for SigV4 (default {DEFAULT_REGION})",
    "MINIO_SSE_VAULT_ENDPOINT": (
        "Vault/OpenBao URL, e.g. https://vault:8200 (enables Vault KMS); for a Raft cluster "
        "list every node, comma-separated: https://kms1:8200,https://kms2:8200 (failover)"
    ),
    "MINIO_SSE_VAULT_AUTH_TYPE": "optional; must be 'approle'",
    "MINIO_SSE_VAULT_APPROLE_ID": "AppRole role-id (required with Vault)",
    "MINIO_SSE_VAULT_APPROLE_SECRET": "AppRole secret-id (required with Vault)",
    "MINIO_SSE_VAULT_KEY_NAME": "transit key name, e.g. my-minio-key (required with Vault)",
    "MINIO_SSE_VAULT_NAMESPACE": "optional Vault Enterprise/OpenBao namespace (sent on every call)",
    "MINIO_SSE_VAULT_CAPATH": "optional CA file or directory of PEM CAs for Vault TLS",
    "MINIO_SSE_MASTER_KEY": "static master key '<key-id>:<64 hex chars>' (instead of Vault)",
    "MINIO_SSE_MASTER_KEY_FILE": "file (or /run/secrets name) holding the master key",
    "MINIO_SSE_AUTO_ENCRYPTION": "on|off: encrypt every new object with SSE-S3 (needs a KMS)",
    "SEALSTORE_ADDRESS": f"listen address HOST:PORT (default {DEFAULT_ADDRESS}, all interfaces)",
    "SEALSTORE_WORKERS": "number of worker processes sharing the socket (default 1)",
    "SEALSTORE_LOG_LEVEL": "DEBUG|INFO|WARNING|ERROR (default INFO)",
    "SEALSTORE_LOG_FORMAT": "json|text (default json)",
    "SEALSTORE_KMS_FAILOVER_TIMEOUT": (
        f"seconds a KMS call may spend retrying other Vault endpoints (default "
        f"{DEFAULT_FAILOVER_TIMEOUT:g}; only with several endpoints)"
    ),
    "SEALSTORE_KMS_CACHE_TTL": (
        "seconds to cache decrypted data keys (default 0 = off; when on, GETs of recently "
        "read objects work during a KMS outage)"
    ),
    "SEALSTORE_BODY_IDLE_TIMEOUT": f"seconds an upload may send no body data before it is "
    f"answered RequestTimeout, its temporary file removed (default {DEFAULT_BODY_IDLE_TIMEOUT:g})",
    "SEALSTORE_TLS_CERT_FILE": "PEM certificate chain: serve HTTPS (TLS 1.2+); SIGHUP reloads it",
    "SEALSTORE_TLS_KEY_FILE": "PEM private key of SEALSTORE_TLS_CERT_FILE (both or neither)",
    "SEALSTORE_METRICS_TOKEN_FILE": "file with the bearer token for metrics and readiness detail",
    "SEALSTORE_USERS_FILE": "0600 JSON file of users and their policies; SIGHUP reloads it",
    "SEALSTORE_ALLOW_INSECURE_SSEC": "on|off: accept SSE-C keys over plain HTTP (tests only)",
}
MAX_KMS_CACHE_TTL = 3600.0

_VAULT_REQUIRED = (
    "MINIO_SSE_VAULT_ENDPOINT",
    "MINIO_SSE_VAULT_APPROLE_ID",
    "MINIO_SSE_VAULT_APPROLE_SECRET",
    "MINIO_SSE_VAULT_KEY_NAME",
)
_VAULT_ALL = (
    *_VAULT_REQUIRED,
    "MINIO_SSE_VAULT_AUTH_TYPE",
    "MINIO_SSE_VAULT_NAMESPACE",
    "MINIO_SSE_VAULT_CAPATH",
)


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message is one line for operators."""


@dataclass(frozen=True)
class VaultSettings:
    """Vault/OpenBao transit KMS connection (AppRole).

    ``endpoint`` stays one string (the nodes joined by commas, normalised) because that is what
    ``VaultKMS`` and ``build_kms`` take; ``endpoints`` is the parsed list.
    """

    endpoint: str
    role_id: str = field(repr=False)
    secret_id: str = field(repr=False)
    key_name: str
    namespace: str | None = None
    capath: str | None = None
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every configured node, in the operator's order (the first one is tried first)."""
        return tuple(self.endpoint.split(","))


@dataclass(frozen=True)
class Settings:
    """All server settings. ``repr`` never shows secrets (password, secret-id, master key)."""

    root_user: str
    root_password: str = field(repr=False)
    data_dir: Path | None = None
    region: str = DEFAULT_REGION
    host: str = ""
    port: int = 9000
    workers: int = 1
    log_level: str = "INFO"
    log_format: str = "json"
    vault: VaultSettings | None = None
    master_key: str | None = field(default=None, repr=False)
    auto_encryption: bool = False
    kms_cache_ttl: float = 0.0
    body_idle_timeout: float = DEFAULT_BODY_IDLE_TIMEOUT
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    metrics_token: str | None = field(default=None, repr=False)
    users_file: Path | None = None  # issue 12: checked and loaded by s3/policy/users.py
    allow_insecure_ssec: bool = False  # SSE-C over plain HTTP (AWS refuses it): tests only

    @property
    def kms_kind(self) -> str | None:
        """ "vault", "master-key" or None."""
        if self.vault is not None:
            return "vault"
        if self.master_key is not None:
            return "master-key"
        return None

    @property
    def address(self) -> str:
        """Listen address as HOST:PORT (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def secrets(self) -> list[str]:
        """Every secret value, so tests and log filters can check none of them leaks."""
        out = [self.root_password]
        if self.vault is not None:
            out.append(self.vault.secret_id)
        if self.master_key is not None:
            out.append(self.master_key)
            out.append(self.master_key.split(":", 1)[-1])
        if self.metrics_token is not None:
            out.append(self.metrics_token)
        return [s for s in out if s]

    @classmethod
    def from_env(cls, environ: Mapping[str, str], args: Any = None) -> Settings:
        """Build settings from environment variables, overridden by parsed CLI ``args``.

        ``args`` may be an argparse Namespace with ``address``, ``workers`` and ``data_dir``
        (any may be missing or None).
        """
        env = {k: v for k, v in environ.items() if v != ""}
        # MinIO's pre-2020 names still appear in old environment files; the new names win.
        user = env.get("MINIO_ROOT_USER", env.get("MINIO_ACCESS_KEY"))
        password = env.get("MINIO_ROOT_PASSWORD", env.get("MINIO_SECRET_KEY"))
        if user is None:
            raise ConfigError("MINIO_ROOT_USER is not set (the S3 access key is required)")
        if password is None:
            raise ConfigError("MINIO_ROOT_PASSWORD is not set (the S3 secret key is required)")
        if len(user) < 3:
            raise ConfigError("MINIO_ROOT_USER must be at least 3 characters long")
        if len(password) < 8:
            raise ConfigError("MINIO_ROOT_PASSWORD must be at least 8 characters long")

        region = env.get("MINIO_REGION", DEFAULT_REGION)
        if not region.replace("-", "").isalnum():
            raise ConfigError(f"MINIO_REGION {region!r} is not a valid region name")

        address = _arg(args, "address") or env.get("SEALSTORE_ADDRESS", DEFAULT_ADDRESS)
        host, port = parse_address(address)

        workers_raw = _arg(args, "workers")
        workers = (
            int(workers_raw)
            if workers_raw is not None
            else _parse_int("SEALSTORE_WORKERS", env.get("SEALSTORE_WORKERS", "1"))
        )
        if not 1 <= workers <= MAX_WORKERS:
            raise ConfigError(f"SEALSTORE_WORKERS must be between 1 and {MAX_WORKERS}")

        log_level = env.get("SEALSTORE_LOG_LEVEL", "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"SEALSTORE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        log_format = env.get("SEALSTORE_LOG_FORMAT", "json").lower()
        if log_format not in LOG_FORMATS:
            raise ConfigError("SEALSTORE_LOG_FORMAT must be json or text")

        vault = _vault_settings(env)
        master_key = _master_key(env)
        if vault is not None and master_key is not None:
            raise ConfigError(
                "ambiguous KMS configuration: set either MINIO_SSE_VAULT_* or "
                "MINIO_SSE_MASTER_KEY, not both"
            )
        auto = _parse_on_off("MINIO_SSE_AUTO_ENCRYPTION", env.get("MINIO_SSE_AUTO_ENCRYPTION"))
        if auto and vault is None and master_key is None:
            raise ConfigError(
                "MINIO_SSE_AUTO_ENCRYPTION=on requires a KMS "
                "(MINIO_SSE_VAULT_* or MINIO_SSE_MASTER_KEY)"
            )

        kms_cache_ttl = _parse_cache_ttl(env.get("SEALSTORE_KMS_CACHE_TTL", "0"))
        body_idle_timeout = _parse_body_idle_timeout(env.get("SEALSTORE_BODY_IDLE_TIMEOUT"))

        tls_cert, tls_key, metrics_token = _tls_and_token(env)

        data_dir_raw = _arg(args, "data_dir")
        data_dir = Path(data_dir_raw) if data_dir_raw else None
        return cls(
            root_user=user,
            root_password=password,
            data_dir=data_dir,
            region=region,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            log_format=log_format,
            vault=vault,
            master_key=master_key,
            auto_encryption=auto,
            kms_cache_ttl=kms_cache_ttl,
            body_idle_timeout=body_idle_timeout,
            tls_cert_file=tls_cert,
            tls_key_file=tls_key,
            metrics_token=metrics_token,
            users_file=Path(u) if (u := env.get("SEALSTORE_USERS_FILE")) else None,
            allow_insecure_ssec=_parse_on_off(
                "SEALSTORE_ALLOW_INSECURE_SSEC", env.get("SEALSTORE_ALLOW_INSECURE_SSEC")
            ),
        )


def _tls_and_token(env: Mapping[str, str]) -> tuple[Path | None, Path | None, str | None]:
    """The HTTPS pair and the admin token (rules in ``config_files``, messages kept as-is)."""
    from sealstore.config_files import metrics_token, tls_files

    try:
        return (*tls_files(env), metrics_token(env))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _arg(args: Any, name: str) -> Any:
    return getattr(args, name, None) if args is not None else None


def _seconds(
    name: str, raw: str | None, default: float, high: float, low: float, label: str
) -> float:
    """A bounded "seconds" variable (`config_values.seconds`) with this module's error type."""
    try:
        return config_values.seconds(
            name, raw, default=default, low=low, high=high, low_label=label
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _parse_cache_ttl(raw: str) -> float:
    """SEALSTORE_KMS_CACHE_TTL: 0 (off) up to an hour; longer would keep plaintext data keys
    in memory, and serve reads after a key revocation, for longer than is defensible."""
    return _seconds("SEALSTORE_KMS_CACHE_TTL", raw, 0.0, MAX_KMS_CACHE_TTL, 0.0, "0 (off)")


def _parse_failover_timeout(raw: str | None) -> float:
    """SEALSTORE_KMS_FAILOVER_TIMEOUT: the budget of one KMS call across all nodes; long
    enough to ride out a Raft election, short enough for a 503 before client timeouts."""
    name = "SEALSTORE_KMS_FAILOVER_TIMEOUT"
    return _seconds(name, raw, DEFAULT_FAILOVER_TIMEOUT, MAX_FAILOVER_TIMEOUT, 0.5, "0.5")


def _parse_body_idle_timeout(raw: str | None) -> float:
    """SEALSTORE_BODY_IDLE_TIMEOUT (issue 8): long enough for a congested client, short enough
    that stalled uploads cannot pile up their connections and temporary files."""
    name = "SEALSTORE_BODY_IDLE_TIMEOUT"
    return _seconds(name, raw, DEFAULT_BODY_IDLE_TIMEOUT, MAX_BODY_IDLE_TIMEOUT, 1.0, "1")


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw, 10)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _parse_on_off(name: str, raw: str | None) -> bool:
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("on", "true", "1", "yes", "enable", "enabled"):
        return True
    if value in ("off", "false", "0", "no", "disable", "disabled"):
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}")


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``[v6]:PORT`` (`config_values.listen_address`)."""
    try:
        return config_values.listen_address(address)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _vault_settings(env: Mapping[str, str]) -> VaultSettings | None:
    present = [n for n in _VAULT_ALL if n in env]
    if not present:
        return None
    missing = [n for n in _VAULT_REQUIRED if n not in env]
    if missing:
        raise ConfigError(
            f"incomplete Vault KMS configuration: {missing[0]} is not set "
            f"(found {', '.join(present)})"
        )
    auth_type = env.get("MINIO_SSE_VAULT_AUTH_TYPE")
    if auth_type is not None and auth_type.lower() != "approle":
        raise ConfigError(f"MINIO_SSE_VAULT_AUTH_TYPE must be 'approle', got {auth_type!r}")
    endpoints = parse_vault_endpoints(env["MINIO_SSE_VAULT_ENDPOINT"])
    key_name = env["MINIO_SSE_VAULT_KEY_NAME"]
    if "/" in key_name or key_name.strip() != key_name:
        raise ConfigError(f"MINIO_SSE_VAULT_KEY_NAME {key_name!r} is not a valid transit key name")
    capath = env.get("MINIO_SSE_VAULT_CAPATH")
    if capath is not None and not os.path.exists(capath):
        raise ConfigError(f"MINIO_SSE_VAULT_CAPATH {capath!r} does not exist")
    namespace = env.get("MINIO_SSE_VAULT_NAMESPACE")
    if namespace is not None:
        namespace = namespace.strip("/")
    failover = _parse_failover_timeout(env.get("SEALSTORE_KMS_FAILOVER_TIMEOUT"))
    return VaultSettings(
        endpoint=",".join(endpoints),
        role_id=env["MINIO_SSE_VAULT_APPROLE_ID"],
        secret_id=env["MINIO_SSE_VAULT_APPROLE_SECRET"],
        key_name=key_name,
        namespace=namespace or None,
        capath=capath,
        failover_timeout=failover,
    )


def parse_vault_endpoints(raw: str) -> tuple[str, ...]:
    """``MINIO_SSE_VAULT_ENDPOINT``: one URL, or several comma-separated (a cluster's nodes).

    The rules live with the Vault client (``kms/vault_endpoints.parse_endpoints``) so the
    server and ``VaultKMS`` accept exactly the same values.
    """
    from sealstore.kms.vault_endpoints import parse_endpoints

    try:
        return tuple(parse_endpoints(raw))
    except ValueError as exc:
        raise ConfigError(f"MINIO_SSE_VAULT_ENDPOINT {exc}") from None


def _master_key(env: Mapping[str, str]) -> str | None:
    value = env.get("MINIO_SSE_MASTER_KEY")
    path = env.get("MINIO_SSE_MASTER_KEY_FILE")
    if value is not None and path is not None:
        raise ConfigError("set MINIO_SSE_MASTER_KEY or MINIO_SSE_MASTER_KEY_FILE, not both")
    source = "MINIO_SSE_MASTER_KEY"
    if path is not None:
        source = "MINIO_SSE_MASTER_KEY_FILE"
        candidate = Path(path)
        if not candidate.is_absolute() and not candidate.exists():
            candidate = DOCKER_SECRETS_DIR / path
        try:
            value = candidate.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"MINIO_SSE_MASTER_KEY_FILE {path!r} cannot be read: {exc.strerror}"
            ) from None
    if value is None:
        return None
    from sealstore.kms.master_key import MasterKeyKMS

    try:
        MasterKeyKMS.from_env_value(value)
    except ValueError as exc:
        # The parser's messages never include the key material itself.
        raise ConfigError(f"{source}: {exc}") from None
    return value
