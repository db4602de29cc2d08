"""No secret in the output of a verbose converge, a world-readable file, `ps`, or a journal.

The secrets are collected from where they really are (the controller custody files the roles
write and the storage hosts' EnvironmentFile), so the checks follow whatever the roles hold.
"""

from __future__ import annotations

import re
import stat
import subprocess

import custody_lib
import pytest
from infra_lib import REPO, Deployment, find_leaks, scan_hosts


def test_every_inventorys_secrets_dir_is_git_ignored(dep: Deployment):
    """`.secrets/` of every inventory in the repository (and of the deployment under test,
    when it lives in the repository) is ignored by git."""
    dirs = sorted(p for p in (REPO / "inventories").iterdir() if p.is_dir())
    assert dirs, "no inventories in the repository"
    if dep.inventory_dir.resolve().is_relative_to(REPO):
        dirs.append(dep.inventory_dir)
    for d in dirs:
        probe = d / ".secrets" / "probe.json"
        out = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "-q", str(probe)], check=False
        )
        assert out.returncode == 0, f"{probe.parent} is not ignored by git"


def test_custody_files_encrypted_when_a_vault_password_is_configured(dep: Deployment):
    """With ANSIBLE_VAULT_PASSWORD_FILE set (scenario `namespace`), every custody file the
    roles keep (init document, key shares, secret-ids, credentials) is ansible-vault
    encrypted and decrypts with that password."""
    if not custody_lib.vault_password():
        pytest.skip("no ansible-vault password configured for this deployment")
    files = [
        p
        for p in dep.secrets_dir.rglob("*")
        if p.is_file() and p.suffix in {".json", ".key", ".txt", ""} and p.parent.name != "pki"
    ]
    assert files, f"no custody files under {dep.secrets_dir}"
    plain = [str(p) for p in files if not p.read_text().startswith(custody_lib.VAULT_HEADER)]
    assert not plain, f"custody files written in the clear: {plain}"
    for p in files:
        assert custody_lib.read_text(p), f"{p} does not decrypt"


def test_controller_custody_is_private(dep: Deployment):
    d = dep.secrets_dir
    assert d.is_dir(), f"no controller custody directory at {d}"
    assert stat.S_IMODE(d.stat().st_mode) & 0o077 == 0, f"{d} is open to others"
    files = [p for p in d.rglob("*") if p.is_file()]
    assert files
    for p in files:
        if p.suffix in {".pem", ".crt"} and "PRIVATE KEY" not in p.read_text(errors="replace"):
            continue  # certificates are public
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p} has mode {oct(mode)}"


def test_secrets_include_every_kind(dep: Deployment, secrets: set[str]):
    """Guard against a scan that silently looks for nothing."""
    env = dep.storage_env(dep.storage_hosts[0])
    assert env["MINIO_ROOT_PASSWORD"] in secrets
    if dep.kms_mode == "vault":
        assert env["MINIO_SSE_VAULT_APPROLE_SECRET"] in secrets
        custody = dep.custody(dep.vault_hosts[0])
        assert dep.admin_token(dep.vault_hosts[0]) in secrets
        keys = custody_lib.shares(custody)
        assert keys and set(keys) <= secrets
    else:
        assert env["MINIO_SSE_MASTER_KEY"].split(":", 1)[1] in secrets


@pytest.fixture(scope="module")
def verbose_converge(dep: Deployment):
    proc = dep.run_playbook(REPO / "playbooks" / "site.yml", verbosity=3)
    return proc


def test_verbose_converge_succeeds_unchanged(verbose_converge):
    out = verbose_converge.stdout + verbose_converge.stderr
    assert verbose_converge.returncode == 0, out[-3000:]
    recap = re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", out, re.M)
    assert recap, "no PLAY RECAP in the output"
    changed = {host: int(n) for host, n in recap if int(n)}
    assert not changed, f"a second converge changed something: {changed}"


def test_verbose_converge_leaks_no_secret(verbose_converge, secrets: set[str]):
    out = verbose_converge.stdout + verbose_converge.stderr
    assert len(out) > 10_000, "suspiciously little -vvv output"
    leaks = find_leaks(out, secrets)
    assert not leaks, f"secrets in the -vvv converge output: {leaks}"


@pytest.fixture(scope="module")
def host_scan(dep: Deployment, secrets: set[str]):
    return scan_hosts(dep, secrets)


def test_scan_covered_every_host(dep: Deployment, host_scan):
    assert set(host_scan) == set(dep.all_hosts)
    for host, result in host_scan.items():
        assert result["files_scanned"] > 1000, f"{host}: the scan saw too few files"


def test_no_secret_in_world_readable_files(host_scan):
    bad = {h: r["files"] for h, r in host_scan.items() if r["files"]}
    assert not bad, f"world-readable files holding a secret: {bad}"


def test_no_secret_in_process_arguments(host_scan):
    bad = {h: r["processes"] for h, r in host_scan.items() if r["processes"]}
    assert not bad, f"processes with a secret in their arguments (pid, name): {bad}"


def test_no_secret_in_the_journal(host_scan):
    bad = {h: r["journal_lines"] for h, r in host_scan.items() if r["journal_lines"]}
    assert not bad, f"journal lines holding a secret (count per host): {bad}"
