"""`ansible-playbook --check` on the converged deployment: no failure and nothing to change.

Why: operators gate changes with a dry run in CI; a role whose check mode fails, or reports
changes on a converged host, makes that gate useless. Runs first, right after molecule's
idempotence step, while the deployment is exactly as converged.
"""

from __future__ import annotations

import re

from infra_lib import REPO, Deployment


def test_check_mode_on_converged_deployment_changes_nothing(dep: Deployment):
    proc = dep.run_playbook(REPO / "playbooks" / "site.yml", "--check")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    recap = re.findall(
        r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out, re.M
    )
    assert recap, "no PLAY RECAP in the output"
    assert {host for host, *_ in recap} >= set(dep.all_hosts)
    bad = {h: (c, u, f) for h, c, u, f in recap if int(c) or int(u) or int(f)}
    assert not bad, f"--check on a converged deployment: (changed, unreachable, failed) {bad}"
