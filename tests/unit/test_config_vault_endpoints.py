"""MINIO_SSE_VAULT_ENDPOINT with several nodes and SEALSTORE_KMS_FAILOVER_TIMEOUT.

Proves that one endpoint parses exactly as before, that a comma-separated list becomes the
ordered node list (whitespace and trailing slashes tolerated), that every bad entry gets one
ConfigError line naming the variable and the entry, that secrets in URLs and mixed schemes are
refused, that the failover budget is range-checked, that VaultKMS accepts the same forms, and
that ``sealstore server --help`` documents the new form.
"""

from __future__ import annotations

import pytest

from sealstore.config import ConfigError, Settings, parse_vault_endpoints
from sealstore.kms.vault import VaultKMS, split_endpoints

BASE = {"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "s3cr3t-password"}
VAULT = {
    "MINIO_SSE_VAULT_APPROLE_ID": "role-id-123",
    "MINIO_SSE_VAULT_APPROLE_SECRET": "secret-id-456789",
    "MINIO_SSE_VAULT_KEY_NAME": "my-minio-key",
}


def vault(endpoint: str, **extra: str) -> Settings:
    return Settings.from_env({**BASE, **VAULT, "MINIO_SSE_VAULT_ENDPOINT": endpoint, **extra})


def error_of(endpoint: str, **extra: str) -> str:
    with pytest.raises(ConfigError) as info:
        vault(endpoint, **extra)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_single_endpoint_is_unchanged() -> None:
    s = vault("https://vault.example:8200/")
    assert s.vault is not None
    assert s.vault.endpoint == "https://vault.example:8200"
    assert s.vault.endpoints == ("https://vault.example:8200",)
    assert s.vault.failover_timeout == 10.0


def test_several_endpoints_keep_their_order() -> None:
    s = vault(" https://kms1:8200/ , https://kms2:8200,https://10.0.0.3:8200 ")
    assert s.vault is not None
    assert s.vault.endpoints == ("https://kms1:8200", "https://kms2:8200", "https://10.0.0.3:8200")
    assert s.vault.endpoint == "https://kms1:8200,https://kms2:8200,https://10.0.0.3:8200"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://kms1:8200,,https://kms2:8200", "entry 2 of 3 is empty"),
        ("https://kms1:8200,", "entry 2 of 2 is empty"),
        ("https://kms1:8200,kms2:8200", "entry 2 of 2 must be an http(s) URL"),
        ("https://kms1:8200,ftp://kms2", "entry 2 of 2 must be an http(s) URL"),
        ("https://kms1:8200,https://kms2:99999", "entry 2 of 2 has an invalid port"),
        ("https://kms1:8200,http://kms2:8200", "mixes http:// and https://"),
        ("https://kms1:8200,https://KMS1:8200/", "lists 'https://KMS1:8200' twice"),
        ("https://kms1:8200?x=1", "must not contain a query"),
        ("https://kms1:8200#frag", "must not contain a query or fragment"),
    ],
)
def test_bad_entries_get_one_clear_line(endpoint: str, expected: str) -> None:
    msg = error_of(endpoint)
    assert msg.startswith("MINIO_SSE_VAULT_ENDPOINT"), msg
    assert expected in msg, msg


def test_user_info_is_refused_without_echoing_it() -> None:
    msg = error_of("https://kms1:8200,https://bob:hunter2@kms2:8200")
    assert "user info" in msg and "hunter2" not in msg


def test_too_many_endpoints() -> None:
    many = ",".join(f"https://kms{i}:8200" for i in range(17))
    assert "at most 16" in error_of(many)


@pytest.mark.parametrize(
    ("raw", "expected"), [("2.5", 2.5), ("0.5", 0.5), ("120", 120.0), ("30", 30.0)]
)
def test_failover_timeout(raw: str, expected: float) -> None:
    s = vault("https://a:8200,https://b:8200", SEALSTORE_KMS_FAILOVER_TIMEOUT=raw)
    assert s.vault is not None and s.vault.failover_timeout == expected


@pytest.mark.parametrize("raw", ["0", "0.1", "121", "nan", "ten", "-1"])
def test_bad_failover_timeout(raw: str) -> None:
    msg = error_of("https://a:8200", SEALSTORE_KMS_FAILOVER_TIMEOUT=raw)
    assert msg.startswith("SEALSTORE_KMS_FAILOVER_TIMEOUT"), msg


def test_failover_timeout_alone_does_not_turn_vault_on() -> None:
    s = Settings.from_env({**BASE, "SEALSTORE_KMS_FAILOVER_TIMEOUT": "5"})
    assert s.vault is None and s.kms_kind is None


def test_parse_vault_endpoints_directly() -> None:
    assert parse_vault_endpoints("http://127.0.0.1:8200") == ("http://127.0.0.1:8200",)
    with pytest.raises(ConfigError, match="is empty"):
        parse_vault_endpoints("")


def test_vault_kms_accepts_the_same_forms() -> None:
    assert split_endpoints("https://a:1/, https://b:2") == ["https://a:1", "https://b:2"]
    assert split_endpoints(["https://a:1", "https://b:2/"]) == ["https://a:1", "https://b:2"]
    for bad in ("https://a:1,", "a:1", "https://a:1,http://b:2"):
        with pytest.raises(ValueError):
            split_endpoints(bad)
    kms = VaultKMS("http://a:1,http://b:2", "role", "secret", "k")
    assert kms.endpoints == ["http://a:1", "http://b:2"]
    assert kms.endpoint == "http://a:1,http://b:2"
    assert [h.url for h in kms.endpoint_health()] == ["http://a:1", "http://b:2"]
    assert "secret" not in repr(kms) and "role" not in repr(kms)


def test_help_lists_the_new_form(capsys: pytest.CaptureFixture[str]) -> None:
    from sealstore.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["server", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "MINIO_SSE_VAULT_ENDPOINT" in out
    assert "comma-separated" in out and "https://kms1:8200,https://kms2:8200" in out
    assert "SEALSTORE_KMS_FAILOVER_TIMEOUT" in out
