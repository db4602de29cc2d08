"""Unit tests of the SSE client's input parsing: sizes, modes, env files, credentials."""

from __future__ import annotations

import pytest

from sealstore.client.config import (
    ClientConfigError,
    human_size,
    load_credentials,
    parse_endpoint,
    parse_env_text,
    parse_modes,
    parse_size,
    parse_sizes,
    read_env_file,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1", 1),
        ("65536", 65536),
        ("64KiB", 65536),
        ("64kib", 65536),
        ("12MiB", 12 * 1024 * 1024),
        ("1.5MiB", 1572864),
        ("2k", 2000),
        ("1GB", 10**9),
        ("1GiB", 1 << 30),
        (" 7 B ", 7),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "12XB", "MiB", "1.3B", "0x10", "1,5"])
def test_parse_size_rejects(text):
    with pytest.raises(ClientConfigError, match="invalid size"):
        parse_size(text)


def test_parse_sizes_keeps_order_and_dedups():
    assert parse_sizes("0,1,65536,64KiB,1048577") == [0, 1, 65536, 1048577]
    with pytest.raises(ClientConfigError, match="empty element"):
        parse_sizes("1,,2")


def test_parse_modes():
    assert parse_modes("sse-s3, AUTO,plain,sse-s3") == ["sse-s3", "auto", "plain"]
    with pytest.raises(ClientConfigError, match="unknown mode 'sse-c'"):
        parse_modes("sse-c")


def test_parse_env_text_systemd_and_shell_forms():
    text = """
# comment
; other comment
MINIO_ROOT_USER=admin
export MINIO_ROOT_PASSWORD="se cret\\"x"
MINIO_SSE_VAULT_KEY_NAME='my-minio-key'
EMPTY=
  SPACED = value with spaces
"""
    assert parse_env_text(text) == {
        "MINIO_ROOT_USER": "admin",
        "MINIO_ROOT_PASSWORD": 'se cret"x',
        "MINIO_SSE_VAULT_KEY_NAME": "my-minio-key",
        "EMPTY": "",
        "SPACED": "value with spaces",
    }


@pytest.mark.parametrize("line", ["no-equals-sign", "1BAD=x", "A B=c", "=value"])
def test_parse_env_text_rejects_without_echoing(line):
    secret_line = line + "supersecret"
    with pytest.raises(ClientConfigError) as err:
        parse_env_text(f"OK=1\n{secret_line}\n", "/etc/f")
    assert str(err.value) == "/etc/f:2: expected KEY=VALUE"
    assert "supersecret" not in str(err.value)


def test_parse_env_text_unterminated_quote():
    with pytest.raises(ClientConfigError, match=":1: unterminated quote"):
        parse_env_text('A="abc\n')


def test_read_env_file_errors(tmp_path):
    with pytest.raises(ClientConfigError, match="cannot read env file"):
        read_env_file(str(tmp_path / "missing"))
    bad = tmp_path / "bin"
    bad.write_bytes(b"\xff\xfe=1")
    with pytest.raises(ClientConfigError, match="not UTF-8"):
        read_env_file(str(bad))


def test_credentials_precedence(tmp_path):
    env = {
        "AWS_ACCESS_KEY_ID": "aws-user",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "MINIO_ROOT_USER": "root",
        "MINIO_ROOT_PASSWORD": "root-secret",
    }
    creds = load_credentials(env, None)
    assert (creds.access_key, creds.secret_key) == ("aws-user", "aws-secret")
    creds = load_credentials({k: v for k, v in env.items() if k.startswith("MINIO")}, None)
    assert (creds.access_key, creds.secret_key) == ("root", "root-secret")
    f = tmp_path / "env"
    f.write_text("MINIO_ROOT_USER=file-user\nMINIO_ROOT_PASSWORD=file-secret\n")
    creds = load_credentials(env, str(f))
    assert (creds.access_key, creds.secret_key) == ("file-user", "file-secret")
    assert "secret" not in repr(creds).replace("source", "")


def test_credentials_missing_or_half_set(tmp_path):
    with pytest.raises(ClientConfigError, match="no credentials"):
        load_credentials({}, None)
    with pytest.raises(ClientConfigError, match="AWS_SECRET_ACCESS_KEY is missing"):
        load_credentials({"AWS_ACCESS_KEY_ID": "x"}, None)
    f = tmp_path / "env"
    f.write_text("MINIO_SSE_MASTER_KEY=k:00\n")
    with pytest.raises(ClientConfigError, match="no AWS_ACCESS_KEY_ID"):
        load_credentials({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}, str(f))


def test_human_size():
    assert human_size(0) == "0 B"
    assert human_size(13212113) == "12.6 MiB"
    assert human_size(65536) == "64.0 KiB"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("https://storage1:9000/", "https://storage1:9000"),
        (" http://[::1]:9000 ", "http://[::1]:9000"),
    ],
)
def test_parse_endpoint(text, expected):
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:9000",
        "ftp://h",
        "http://",
        "http://h:99999",
        "http://h:x",
        "http://h/bucket",
        "http://user:pw@h:9000",
    ],
)
def test_parse_endpoint_rejects(text):
    with pytest.raises(ClientConfigError, match="invalid endpoint") as err:
        parse_endpoint(text)
    assert "pw" not in str(err.value)
