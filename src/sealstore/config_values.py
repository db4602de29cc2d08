"""Value rules of settings: bounded "seconds" variables and the listen address.

Each such variable has a default, a lower and an upper bound, and the same two operator
messages (not a number; out of range). Kept apart from ``config.py`` so that file stays about
the settings themselves; errors are ``ValueError``, which ``config.py`` turns into its
``ConfigError`` (this module imports nothing from sealstore, so there is no cycle).
"""

from __future__ import annotations

import ipaddress


def seconds(
    name: str, raw: str | None, *, default: float, low: float, high: float, low_label: str = ""
) -> float:
    """``raw`` (None: ``default``) as seconds within ``low..high``; nan and inf are refused."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not low <= value <= high:  # also rejects nan
        raise ValueError(f"{name} must be between {low_label or f'{low:g}'} and {high:g} seconds")
    return value


def listen_address(address: str) -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``:PORT`` or ``[v6]:PORT``; empty host means all interfaces."""
    where = f"listen address {address!r}"
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or address[end + 1 : end + 2] != ":":
            raise ValueError(f"{where} is invalid; use [IPv6]:PORT")
        host, port_raw = address[1:end], address[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{where} has an invalid IPv6 host") from None
    else:
        if ":" not in address:
            raise ValueError(f"{where} is missing the port; use HOST:PORT or :PORT")
        host, port_raw = address.rsplit(":", 1)
        if ":" in host:
            raise ValueError(f"{where} is ambiguous; write IPv6 hosts as [addr]:PORT")
    if not port_raw.isdigit() or not 0 <= int(port_raw) <= 65535:
        raise ValueError(f"{where} has an invalid port (0-65535)")
    return host, int(port_raw)
