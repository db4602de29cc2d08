"""Run the molecule scenarios from pytest, so `make test` ends with pytest's one summary line.

Each scenario is a full `molecule test` (create, prepare, converge, idempotence, verify,
destroy) whose verify step runs the testinfra suites beside this file. Output goes to
``.cache/molecule/<scenario>.log``; a failure shows its tail. Two scenarios run at once by
default (each has its own containers and network); ``SEALSTORE_MOLECULE_JOBS`` changes that.
``SEALSTORE_MOLECULE_SCENARIOS=default,namespace`` runs only those (the others are not started,
so a developer proving one role change does not pay for all four).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Longest first (kms-cluster: 6 containers, fault run, backup/restore), so with two at a time the
# others run beside it instead of after it.
ALL_SCENARIOS = ["kms-cluster", "default", "master-key", "namespace"]


def _selected() -> list[str]:
    """The scenarios this run proves: all, or the comma-separated SEALSTORE_MOLECULE_SCENARIOS."""
    raw = os.environ.get("SEALSTORE_MOLECULE_SCENARIOS", "").strip()
    if not raw:
        return ALL_SCENARIOS
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(ALL_SCENARIOS))
    if unknown:
        raise ValueError(f"SEALSTORE_MOLECULE_SCENARIOS names unknown scenarios: {unknown}")
    return [s for s in ALL_SCENARIOS if s in wanted]


SCENARIOS = _selected()
LOG_DIR = REPO / ".cache" / "molecule"
# kms-cluster took 50 min on 2 loaded cores (load average 9-10): the bound is per scenario.
TIMEOUT_S = int(os.environ.get("SEALSTORE_MOLECULE_TIMEOUT", "3600"))


@dataclass
class Run:
    scenario: str
    returncode: int
    seconds: float
    log: Path


# What the roles build the sealstore wheel from (sealstore_install_source_dir).
SOURCE_PARTS = ["src", "requirements", "pyproject.toml", "README.md", "LICENSE"]


def snapshot_source() -> Path:
    """Copy the package sources once, so every converge of this run builds the same tree.

    Without it, an edit to src/ between converge and idempotence (an editor, a parallel
    developer) changes the wheel fingerprint and the second converge reinstalls: a false
    idempotence failure. The copy is what this run tested.
    """
    dest = LOG_DIR / "source"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".cache")
    for part in SOURCE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / part)
    return dest


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["SEALSTORE_SOURCE_DIR"] = str(LOG_DIR / "source")
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["NO_COLOR"] = "1"
    env["PY_COLORS"] = "0"
    for var in ("MOLECULE_INVENTORY_FILE", "SEALSTORE_INFRA_INVENTORY", "ANSIBLE_CONFIG"):
        env.pop(var, None)
    return env


def _run(scenario: str) -> Run:
    LOG_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = LOG_DIR / f"{scenario}.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.monotonic()
    with os.fdopen(fd, "w") as out:
        # A run that was interrupted earlier may have left containers behind.
        subprocess.run(
            ["molecule", "destroy", "-s", scenario],
            cwd=REPO,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=300,
        )
        try:
            proc = subprocess.run(
                ["molecule", "test", "-s", scenario],
                cwd=REPO,
                env=_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=TIMEOUT_S,
            )
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            out.write(f"\n*** molecule test -s {scenario} timed out after {TIMEOUT_S}s\n")
            rc = -1
    if rc != 0:
        # Leave nothing running after a failure either.
        subprocess.run(
            ["molecule", "destroy", "-s", scenario],
            cwd=REPO,
            env=_env(),
            capture_output=True,
            check=False,
            timeout=300,
        )
    return Run(scenario, rc, time.monotonic() - start, log)


_started: dict[str, Future[Run]] = {}


def preflight() -> str | None:
    """Why the scenarios cannot run here, or None."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        return "no Docker engine answers: run `make docker` (as root) first"
    image = os.environ.get("SEALSTORE_LAB_IMAGE", "sealstore/lab-base:bookworm")
    probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    if probe.returncode:
        return f"image {image} missing: run `make image` first"
    return None


def start_all() -> dict[str, Future[Run]]:
    """Start every scenario in background threads (once); the tests only wait for them.

    conftest calls this right after collection, so in `make test` the scenarios run while the
    unit and integration tests do, instead of after them.
    """
    if not _started and preflight() is None:
        LOG_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        snapshot_source()
        jobs = max(1, int(os.environ.get("SEALSTORE_MOLECULE_JOBS", "2")))
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="molecule")
        _started.update({s: pool.submit(_run, s) for s in SCENARIOS})
    return _started


@pytest.fixture(scope="session")
def molecule_runs() -> dict[str, Future[Run]]:
    problem = preflight() if not _started else None
    assert problem is None, problem
    return start_all()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str, molecule_runs: dict[str, Future[Run]]):
    run = molecule_runs[scenario].result()
    if run.returncode != 0:
        tail = run.log.read_text(errors="replace")[-6000:]
        pytest.fail(
            f"molecule test -s {scenario} failed (rc={run.returncode}, {run.seconds:.0f}s); "
            f"full log: {run.log}\n{tail}"
        )
    text = run.log.read_text(errors="replace")
    for step in ("converge", "idempotence", "verify"):
        assert re.search(rf"{step}: Executed: Successful", text), f"step {step} did not succeed"
    assert "Verifier completed successfully" in text, "the testinfra suites did not run to success"
