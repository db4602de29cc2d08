"""roles/storage_server deploys users for SEALSTORE_USERS_FILE: the role's own templates,
rendered by real Ansible (ansible-playbook on localhost with the role's defaults and vars and a
secret key kept in ansible-vault), give a users file that sealstore's own loader accepts with
the decrypted secret and the named and inline policies, and an EnvironmentFile naming it; with
no users the EnvironmentFile names none. The role's argument spec refuses a user without a
secret key and an unknown field, naming the problem but not the secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sealstore.s3.policy.users import parse_users

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ROLE = REPO / "roles" / "storage_server"
SECRET = "vaulted-secret-key-0123"
VAULT_PASSWORD = "test-vault-password"

PLAYBOOK = textwrap.dedent(
    f"""\
    - name: Render storage_server user templates
      hosts: localhost
      connection: local
      gather_facts: false
      vars_files:
        - {ROLE}/defaults/main.yml
        - {ROLE}/vars/main.yml
        - "{{{{ users_vars }}}}"
      vars:
        storage_server_kms_mode: master_key
        storage_server_master_key: "k:{"0" * 64}"
        storage_server__access_key: root
        storage_server__secret_key: root-secret-0123
      tasks:
        - name: Users file
          ansible.builtin.template:
            src: {ROLE}/templates/users.json.j2
            dest: "{{{{ out }}}}/users.json"
            mode: "0600"
        - name: Environment file
          ansible.builtin.template:
            src: {ROLE}/templates/sealstore.env.j2
            dest: "{{{{ out }}}}/sealstore.env"
            mode: "0600"
        - name: Environment file without users
          ansible.builtin.template:
            src: {ROLE}/templates/sealstore.env.j2
            dest: "{{{{ out }}}}/sealstore-no-users.env"
            mode: "0600"
          vars:
            storage_server_users: []
        - name: Argument spec on bad users (case {{{{ item.0 }}}})
          ansible.builtin.validate_argument_spec:
            argument_spec: "{{{{ (lookup('ansible.builtin.file', '{ROLE}/meta/argument_specs.yml')
              | from_yaml).argument_specs.main.options }}}}"
            provided_arguments:
              storage_server_users: ["{{{{ item.1 }}}}"]
          loop: "{{{{ bad_users | dict2items | map(attribute='key') | zip(bad_users.values()) }}}}"
          loop_control:
            label: "{{{{ item.0 }}}}"
          register: spec
          ignore_errors: true
          no_log: true  # the display of a failed loop item would show it (this test's loop)
        - name: Argument spec results
          ansible.builtin.copy:
            content: "{{{{ spec.results | map(attribute='msg') | list | to_json }}}}"
            dest: "{{{{ out }}}}/spec.json"
            mode: "0600"
    """
)
BAD_USERS = {
    "valid": {
        "name": "carol",
        "access_key": "AKCAROL0001",
        "secret_key": "carol-secret-0123",
        "policies": [
            "read-only",
            {"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}},
        ],
    },
    "no-secret": {"name": "bob", "access_key": "AKBOB0001"},
    "unknown-field": {
        "name": "bob",
        "access_key": "AKBOB0001",
        "secret_key": "bob-secret-0123",
        "colour": 1,
    },
}


def _vaulted(value: str) -> str:
    """``value`` as an ansible-vault ciphertext (the real VaultLib), for a !vault tag."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    return vault.encrypt(value).decode()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("users-role")
    password = tmp / "vault-password"
    password.write_text(VAULT_PASSWORD + "\n")
    os.chmod(password, 0o600)
    users_vars = tmp / "users.yml"
    users_vars.write_text(
        "storage_server_user_policies:\n"
        "  read-only:\n"
        '    Version: "2012-10-17"\n'
        "    Statement:\n"
        "      - {Effect: Allow, Action: [s3:GetObject], Resource: ['arn:aws:s3:::data/*']}\n"
        "storage_server_users:\n"
        "  - name: alice\n"
        "    access_key: AKALICE0001\n"
        "    secret_key: !vault |\n"
        + textwrap.indent(_vaulted(SECRET), "      ")
        + "\n    policies:\n"
        "      - read-only\n"
        "      - {Statement: {Effect: Deny, Action: 's3:*', Resource: 'arn:aws:s3:::secret/*'}}\n"
    )
    out = tmp / "out"
    out.mkdir()
    play = tmp / "play.yml"
    play.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = str(VENV_BIN) + os.pathsep + env.get("PATH", "")
    extra = {"out": str(out), "users_vars": str(users_vars), "bad_users": BAD_USERS}
    extra["ansible_python_interpreter"] = sys.executable
    vault = ["--vault-password-file", str(password)]
    proc = subprocess.run(
        [VENV_BIN / "ansible-playbook", "-i", "localhost,", play, "-e", json.dumps(extra), *vault],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for secret in (SECRET, "bob-secret-0123", "carol-secret-0123"):
        assert secret not in proc.stdout + proc.stderr
    return {
        "users": (out / "users.json").read_text(),
        "env": (out / "sealstore.env").read_text(),
        "env_without_users": (out / "sealstore-no-users.env").read_text(),
        "spec": (out / "spec.json").read_text(),
    }


def test_users_file_is_what_the_server_loads(rendered: dict[str, str]) -> None:
    users = parse_users(rendered["users"], "root")
    alice = users.get("AKALICE0001")
    assert alice is not None and alice.name == "alice" and alice.secret_key == SECRET
    assert len(alice.policies) == 2
    assert alice.policies[0].statements[0].actions == ("s3:GetObject",)
    assert alice.policies[1].statements[0].effect == "Deny"
    assert "$ANSIBLE_VAULT" not in rendered["users"]


def test_environment_file_names_the_users_file_only_with_users(rendered: dict[str, str]) -> None:
    assert "SEALSTORE_USERS_FILE=/etc/sealstore/users.json\n" in rendered["env"]
    assert "SEALSTORE_USERS_FILE" not in rendered["env_without_users"]
    assert SECRET not in rendered["env"]


def test_argument_spec_refuses_bad_users(rendered: dict[str, str]) -> None:
    valid, no_secret, unknown = json.loads(rendered["spec"])
    assert "passed" in valid
    assert "secret_key" in no_secret and "required" in no_secret
    assert "colour" in unknown
    assert "bob-secret-0123" not in rendered["spec"] and "carol-secret" not in rendered["spec"]
