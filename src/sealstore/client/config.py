"""Inputs of the SSE client: sizes, modes, environment files and credentials.

Credentials never come from argv (they would show in ``ps``): they come from the environment
or from a KEY=VALUE file such as the server's systemd EnvironmentFile. Every bad input gets
one clear line that never repeats a secret value.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MODES = ("sse-s3", "auto", "bucket-default", "plain")
DEFAULT_SIZES = (0, 1, 65536, 1048577)
DEFAULT_MULTIPART = 12 << 20

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClientConfigError(ValueError):
    """A bad client input; the message is one line and safe to print."""


def parse_size(text: str) -> int:
    """Parse ``12MiB``, ``64k``, ``1048577`` or ``1.5MiB`` into bytes (binary units are exact)."""
    m = _SIZE_RE.match(text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise ClientConfigError(f"invalid size {text!r} (examples: 0, 65536, 64KiB, 12MiB, 1GB)")
    value = (
        float(m.group(1)) * _UNITS[unit] if "." in m.group(1) else int(m.group(1)) * _UNITS[unit]
    )
    if value != int(value):
        raise ClientConfigError(f"invalid size {text!r}: not a whole number of bytes")
    return int(value)


def parse_sizes(text: str) -> list[int]:
    """Parse a comma-separated size list, keeping order and dropping duplicates."""
    sizes: list[int] = []
    for part in text.split(","):
        if not part.strip():
            raise ClientConfigError(f"invalid size list {text!r}: empty element")
        size = parse_size(part)
        if size not in sizes:
            sizes.append(size)
    return sizes


def parse_endpoint(text: str) -> str:
    """Check an S3 endpoint URL (``http(s)://host[:port]``) and drop a trailing slash."""
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ClientConfigError(
            f"invalid endpoint {text!r}: expected http(s)://HOST[:PORT], e.g. https://storage1:9000"
        )
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ClientConfigError(
            f"invalid endpoint {parts.scheme}://{parts.hostname}...: no path, query or user info"
        )
    return url


def parse_modes(text: str) -> list[str]:
    """Parse a comma-separated list of round-trip modes."""
    modes: list[str] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if part not in MODES:
            raise ClientConfigError(f"unknown mode {part!r} (choose from {', '.join(MODES)})")
        if part not in modes:
            modes.append(part)
    return modes


def _unquote(value: str, path: str, lineno: int) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        if value[0] == '"':
            inner = re.sub(r"\\(.)", r"\1", inner)
        return inner
    if value and value[0] in "'\"":
        raise ClientConfigError(f"{path}:{lineno}: unterminated quote")
    return value


def parse_env_text(text: str, path: str = "<env>") -> dict[str, str]:
    """Parse KEY=VALUE lines (systemd EnvironmentFile / shell style, ``export`` allowed)."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            # Never echo the line: it may hold a secret.
            raise ClientConfigError(f"{path}:{lineno}: expected KEY=VALUE")
        values[key] = _unquote(value.strip(), path, lineno)
    return values


def read_env_file(path: str) -> dict[str, str]:
    """Read an env file; refuse unreadable ones with a one-line reason."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ClientConfigError(f"cannot read env file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ClientConfigError(f"env file {path} is not UTF-8 text") from None
    return parse_env_text(text, path)


def env_file_world_readable(path: str) -> bool:
    """True when others may read the file: worth a warning since it holds secrets."""
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


@dataclass(frozen=True)
class Credentials:
    """S3 credentials plus where they came from (the source is printable, the secret is not)."""

    access_key: str
    secret_key: str = field(default="", repr=False)
    session_token: str | None = field(default=None, repr=False)
    source: str = ""


def _pick(values: Mapping[str, str], source: str) -> Credentials | None:
    pairs = (
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"),
    )
    for user_var, secret_var in pairs:
        user, secret = values.get(user_var, ""), values.get(secret_var, "")
        if user and secret:
            token = values.get("AWS_SESSION_TOKEN") if user_var.startswith("AWS") else None
            return Credentials(user, secret, token or None, f"{source} {user_var}")
        if user or secret:
            missing = secret_var if user else user_var
            raise ClientConfigError(f"{source}: {missing} is missing (set both or neither)")
    return None


def load_credentials(environ: Mapping[str, str], env_file: str | None) -> Credentials:
    """Credentials from --env-file first (explicit wins), then AWS_*, then MINIO_ROOT_*."""
    if env_file:
        found = _pick(read_env_file(env_file), env_file)
        if found:
            return found
        raise ClientConfigError(
            f"{env_file}: no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
            "MINIO_ROOT_USER/MINIO_ROOT_PASSWORD in it"
        )
    found = _pick(environ, "environment")
    if found:
        return found
    raise ClientConfigError(
        "no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
        "MINIO_ROOT_USER/MINIO_ROOT_PASSWORD, or pass --env-file PATH"
    )


def human_size(n: float) -> str:
    """Short binary-unit rendering for summaries (``12.6 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
