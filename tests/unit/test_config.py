"""Settings.from_env: every variable, every bad value gets one precise line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sealstore.config import ConfigError, Settings, parse_address

MASTER = "my-key:" + "ab" * 32
BASE = {"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "s3cr3t-password"}
VAULT = {
    "MINIO_SSE_VAULT_ENDPOINT": "https://vault.example:8200",
    "MINIO_SSE_VAULT_APPROLE_ID": "role-id-123",
    "MINIO_SSE_VAULT_APPROLE_SECRET": "secret-id-456789",
    "MINIO_SSE_VAULT_KEY_NAME": "my-minio-key",
}


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def error_of(env: dict[str, str], args: argparse.Namespace | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env, args)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_defaults() -> None:
    s = settings()
    assert s.region == "us-east-1"
    assert (s.host, s.port) == ("", 9000)
    assert s.workers == 1
    assert s.log_level == "INFO" and s.log_format == "json"
    assert s.kms_kind is None and s.auto_encryption is False


def test_missing_credentials() -> None:
    assert "MINIO_ROOT_USER" in error_of({"MINIO_ROOT_PASSWORD": "password1"})
    assert "MINIO_ROOT_PASSWORD" in error_of({"MINIO_ROOT_USER": "admin"})


def test_short_password_rejected_like_minio() -> None:
    msg = error_of({"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "short"})
    assert "MINIO_ROOT_PASSWORD" in msg and "8" in msg


def test_empty_value_counts_as_unset() -> None:
    assert "MINIO_ROOT_USER" in error_of({"MINIO_ROOT_USER": "", "MINIO_ROOT_PASSWORD": "x" * 9})


def test_vault_complete() -> None:
    s = settings(**VAULT, MINIO_SSE_VAULT_NAMESPACE="ns1/", MINIO_SSE_VAULT_AUTH_TYPE="AppRole")
    assert s.kms_kind == "vault"
    assert s.vault is not None
    assert s.vault.endpoint == "https://vault.example:8200"
    assert s.vault.namespace == "ns1"
    assert s.vault.key_name == "my-minio-key"


@pytest.mark.parametrize("missing", sorted(VAULT))
def test_partial_vault_names_missing_variable(missing: str) -> None:
    env = {**BASE, **{k: v for k, v in VAULT.items() if k != missing}}
    assert missing in error_of(env)


def test_vault_auth_type_must_be_approle() -> None:
    msg = error_of({**BASE, **VAULT, "MINIO_SSE_VAULT_AUTH_TYPE": "token"})
    assert "MINIO_SSE_VAULT_AUTH_TYPE" in msg


@pytest.mark.parametrize("endpoint", ["vault:8200", "ftp://vault", "https://", "http://h:99999"])
def test_vault_bad_endpoint(endpoint: str) -> None:
    msg = error_of({**BASE, **VAULT, "MINIO_SSE_VAULT_ENDPOINT": endpoint})
    assert "MINIO_SSE_VAULT_ENDPOINT" in msg


def test_vault_capath_must_exist(tmp_path: Path) -> None:
    msg = error_of({**BASE, **VAULT, "MINIO_SSE_VAULT_CAPATH": str(tmp_path / "nope.pem")})
    assert "MINIO_SSE_VAULT_CAPATH" in msg
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert settings(**VAULT, MINIO_SSE_VAULT_CAPATH=str(ca)).vault.capath == str(ca)


def test_master_key() -> None:
    s = settings(MINIO_SSE_MASTER_KEY=MASTER)
    assert s.kms_kind == "master-key"
    assert s.master_key == MASTER


@pytest.mark.parametrize(
    "value",
    ["nocolon", ":" + "ab" * 32, "id:" + "ab" * 31, "id:" + "zz" * 32],
)
def test_master_key_malformed(value: str) -> None:
    msg = error_of({**BASE, "MINIO_SSE_MASTER_KEY": value})
    assert msg.startswith("MINIO_SSE_MASTER_KEY:")
    assert value.split(":", 1)[-1] not in msg or len(value.split(":", 1)[-1]) < 8


def test_master_key_file(tmp_path: Path) -> None:
    f = tmp_path / "mk"
    f.write_text(MASTER + "\n")
    assert settings(MINIO_SSE_MASTER_KEY_FILE=str(f)).master_key == MASTER
    msg = error_of({**BASE, "MINIO_SSE_MASTER_KEY_FILE": str(tmp_path / "missing")})
    assert "MINIO_SSE_MASTER_KEY_FILE" in msg


def test_both_kms_is_ambiguous() -> None:
    msg = error_of({**BASE, **VAULT, "MINIO_SSE_MASTER_KEY": MASTER})
    assert "ambiguous" in msg


def test_auto_encryption() -> None:
    assert settings(MINIO_SSE_MASTER_KEY=MASTER, MINIO_SSE_AUTO_ENCRYPTION="on").auto_encryption
    assert not settings(MINIO_SSE_AUTO_ENCRYPTION="off").auto_encryption
    assert "requires a KMS" in error_of({**BASE, "MINIO_SSE_AUTO_ENCRYPTION": "on"})
    assert "on or off" in error_of(
        {**BASE, "MINIO_SSE_MASTER_KEY": MASTER, "MINIO_SSE_AUTO_ENCRYPTION": "maybe"}
    )


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":9000", ("", 9000)),
        ("127.0.0.1:1234", ("127.0.0.1", 1234)),
        ("[::1]:80", ("::1", 80)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["9000", "host:", "host:70000", "::1:80", "[zz]:80"])
def test_bad_address(address: str) -> None:
    assert "listen address" in error_of({**BASE, "SEALSTORE_ADDRESS": address})


def test_cli_args_override_env() -> None:
    args = argparse.Namespace(address="127.0.0.1:7000", workers=3, data_dir="/tmp/x")
    s = Settings.from_env({**BASE, "SEALSTORE_ADDRESS": ":9000", "SEALSTORE_WORKERS": "1"}, args)
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 7000, 3)
    assert s.data_dir == Path("/tmp/x")


def test_bad_workers_and_logging() -> None:
    assert "SEALSTORE_WORKERS" in error_of({**BASE, "SEALSTORE_WORKERS": "two"})
    assert "SEALSTORE_WORKERS" in error_of({**BASE, "SEALSTORE_WORKERS": "0"})
    assert "SEALSTORE_LOG_LEVEL" in error_of({**BASE, "SEALSTORE_LOG_LEVEL": "chatty"})
    assert "SEALSTORE_LOG_FORMAT" in error_of({**BASE, "SEALSTORE_LOG_FORMAT": "xml"})
    assert settings(SEALSTORE_LOG_LEVEL="debug").log_level == "DEBUG"


def test_repr_hides_secrets() -> None:
    s = settings(**VAULT)
    text = repr(s)
    for secret in (BASE["MINIO_ROOT_PASSWORD"], VAULT["MINIO_SSE_VAULT_APPROLE_SECRET"]):
        assert secret not in text
    m = settings(MINIO_SSE_MASTER_KEY=MASTER)
    assert MASTER.split(":")[1] not in repr(m)
    assert MASTER in m.secrets()


def test_legacy_minio_credential_names() -> None:
    s = Settings.from_env({"MINIO_ACCESS_KEY": "old-user", "MINIO_SECRET_KEY": "old-secret-1"})
    assert (s.root_user, s.root_password) == ("old-user", "old-secret-1")
    s = Settings.from_env({**BASE, "MINIO_ACCESS_KEY": "old-user"})
    assert s.root_user == BASE["MINIO_ROOT_USER"]


def test_help_documents_every_variable() -> None:
    from sealstore.cli import build_parser

    text = build_parser().format_help()
    for name in (
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "MINIO_REGION",
        "MINIO_SSE_VAULT_ENDPOINT",
        "MINIO_SSE_VAULT_APPROLE_ID",
        "MINIO_SSE_VAULT_APPROLE_SECRET",
        "MINIO_SSE_VAULT_KEY_NAME",
        "MINIO_SSE_VAULT_NAMESPACE",
        "MINIO_SSE_VAULT_CAPATH",
        "MINIO_SSE_MASTER_KEY",
        "MINIO_SSE_MASTER_KEY_FILE",
        "MINIO_SSE_AUTO_ENCRYPTION",
        "SEALSTORE_ADDRESS",
        "SEALSTORE_WORKERS",
        "SEALSTORE_LOG_LEVEL",
        "SEALSTORE_LOG_FORMAT",
        "SEALSTORE_TLS_CERT_FILE",
        "SEALSTORE_TLS_KEY_FILE",
        "SEALSTORE_METRICS_TOKEN_FILE",
    ):
        assert name in text, name


def test_kms_cache_ttl_default_off_and_parsed() -> None:
    assert Settings.from_env(BASE).kms_cache_ttl == 0.0
    assert Settings.from_env({**BASE, "SEALSTORE_KMS_CACHE_TTL": "30"}).kms_cache_ttl == 30.0
    assert Settings.from_env({**BASE, "SEALSTORE_KMS_CACHE_TTL": "0.5"}).kms_cache_ttl == 0.5


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf", "3601"])
def test_kms_cache_ttl_bad_values(value: str) -> None:
    with pytest.raises(ConfigError, match="SEALSTORE_KMS_CACHE_TTL"):
        Settings.from_env({**BASE, "SEALSTORE_KMS_CACHE_TTL": value})


def test_kms_cache_ttl_in_help() -> None:
    from sealstore.cli import build_parser

    text = build_parser().format_help()
    assert "SEALSTORE_KMS_CACHE_TTL" in text and "default 0 = off" in text


# --- TLS and admin token (issue 8 items 9, 10) ---


def test_tls_files_both_or_neither(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("cert")
    key.write_text("key")
    assert settings().tls_cert_file is None
    s = settings(SEALSTORE_TLS_CERT_FILE=str(cert), SEALSTORE_TLS_KEY_FILE=str(key))
    assert (s.tls_cert_file, s.tls_key_file) == (cert, key)
    msg = error_of({**BASE, "SEALSTORE_TLS_CERT_FILE": str(cert)})
    assert "SEALSTORE_TLS_KEY_FILE is not set" in msg
    msg = error_of({**BASE, "SEALSTORE_TLS_KEY_FILE": str(key)})
    assert "SEALSTORE_TLS_CERT_FILE is not set" in msg
    missing = str(tmp_path / "nope.pem")
    msg = error_of({**BASE, "SEALSTORE_TLS_CERT_FILE": missing, "SEALSTORE_TLS_KEY_FILE": str(key)})
    assert msg == f"SEALSTORE_TLS_CERT_FILE {missing!r} is not a readable file"


def test_metrics_token_from_a_file_is_a_secret(tmp_path: Path) -> None:
    token = "tok-" + "x" * 28
    path = tmp_path / "token"
    path.write_text(token + "\n")
    s = settings(SEALSTORE_METRICS_TOKEN_FILE=str(path))
    assert s.metrics_token == token
    assert token in s.secrets() and token not in repr(s)
    assert settings().metrics_token is None
    path.write_text("short")
    assert "at least 16 characters" in error_of({**BASE, "SEALSTORE_METRICS_TOKEN_FILE": str(path)})
    path.write_text("two words that are long enough")
    assert "without spaces" in error_of({**BASE, "SEALSTORE_METRICS_TOKEN_FILE": str(path)})
    msg = error_of({**BASE, "SEALSTORE_METRICS_TOKEN_FILE": str(tmp_path / "gone")})
    assert "cannot be read" in msg and "gone" in msg
