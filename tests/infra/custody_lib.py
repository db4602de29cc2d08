"""Controller custody as the tests read it: ansible-vault decryption, key shares, generate-root.

Why a module of its own: the roles keep no root token after setup (``vault_server`` revokes it
and keeps a scoped admin token), so a test that needs root powers does what an operator does
in an emergency: it regenerates a root token from the key shares kept on the controller
(``sys/generate-root`` with a one-time password), uses it, and revokes it when the session
ends. Custody files may be ansible-vault encrypted (a scenario with a vault password file):
they are decrypted here with the password Ansible itself is configured with.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (method, path, body) -> (status, JSON document) of one API call with the admin token.
Request = Callable[[str, str, dict[str, Any] | None], tuple[int, dict[str, Any]]]

VAULT_HEADER = "$ANSIBLE_VAULT;"


def vault_password() -> str:
    """The ansible-vault password of ``ANSIBLE_VAULT_PASSWORD_FILE`` ("" when none is set);
    an executable file is run, as Ansible does."""
    name = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE", "")
    if not name:
        return ""
    path = Path(name)
    if os.access(path, os.X_OK):
        return subprocess.run(
            [str(path)], check=True, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    return path.read_text().strip()


def read_text(path: Path) -> str:
    """A custody file's plaintext (decrypted when it is ansible-vault encrypted)."""
    text = path.read_text(errors="replace")
    if not text.startswith(VAULT_HEADER):
        return text
    password = vault_password()
    if not password:
        raise RuntimeError(f"{path} is ansible-vault encrypted and no vault password is set")
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password.encode()))])
    return vault.decrypt(text.encode()).decode()


def read_json(path: Path) -> dict[str, Any]:
    doc = json.loads(read_text(path))
    assert isinstance(doc, dict), f"{path} does not hold a JSON object"
    return doc


def share_files(custody: dict[str, Any]) -> list[Path]:
    """The share-N.json files of a cluster, in share order."""
    d = Path(str(custody.get("shares_dir", "")))
    if not custody.get("shares_dir") or not d.is_dir():
        return []
    return sorted(d.glob("share-*.json"), key=lambda p: int(p.stem.split("-")[1]))


def shares(custody: dict[str, Any]) -> list[str]:
    """Every key share (unseal or recovery) kept on the controller for one cluster."""
    files = share_files(custody)
    if files:
        return [str(read_json(p)["key_b64"]) for p in files]
    return list(custody.get("unseal_keys_b64") or custody.get("recovery_keys_b64") or [])


def generate_root(request: Request, keys: list[str]) -> str:
    """A new root token from the admin token plus the key shares (OpenBao's authenticated
    ``sys/generate-root-token``; the unauthenticated ``sys/generate-root`` is off by default
    since 2.5.3), XOR-decoded with the attempt's one-time password.

    Any attempt left over from an interrupted run is cancelled first (only one may be open).
    """
    request("DELETE", "/v1/sys/generate-root-token/attempt", None)
    status, attempt = request("POST", "/v1/sys/generate-root-token/attempt", {})
    assert status == 200, f"generate-root-token attempt: {status} {attempt.get('errors')}"
    otp, nonce = str(attempt["data"]["otp"]), str(attempt["data"]["nonce"])
    progress: dict[str, Any] = attempt["data"]
    for key in keys:
        body = {"key": key, "nonce": nonce}
        status, doc = request("POST", "/v1/sys/generate-root-token/update", body)
        assert status == 200, f"generate-root-token update: {status} {doc.get('errors')}"
        progress = doc["data"]
        if progress.get("complete"):
            break
    assert progress.get("complete"), "the shares on the controller do not reach the threshold"
    encoded = str(progress["encoded_token"])
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()
