"""Fixtures for the testinfra suites (run by molecule's verifier, or against the lab).

The suites need a deployed system; without an inventory (``MOLECULE_INVENTORY_FILE`` from
molecule, or ``SEALSTORE_INFRA_INVENTORY`` for the lab) they skip instead of failing, so a
plain ``pytest tests/`` on a laptop does not pretend to have tested hosts.
"""

from __future__ import annotations

import os

import pytest
from infra_lib import Deployment, inventory_source
from load_lib import MEASURED

# Read-only suites first, then the faults. The secret suite (a -vvv converge and host scans)
# runs inside the fault suite's final wait of more than two token periods, so those two
# minutes are not spent idle: the last fault step sleeps only for what remains.
_ORDER = [
    "test_check_mode",
    "test_vault",
    "test_storage",
    "test_client",
    "test_faults",
    "test_secrets",
]
_AFTER_SECRETS = {"test_06_still_encrypts_after_two_token_periods"}
# Changes the deployment for good (Shamir -> static seal): after every suite, even test_06 above.
_LAST = ["test_seal_migration"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection suite (stops/restarts services)")
    config.addinivalue_line("markers", "kmscluster: KMS raft cluster suites (kms-cluster only)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        stem = item.path.stem
        if item.name in _AFTER_SECRETS:
            return len(_ORDER)
        if stem in _LAST:
            return len(_ORDER) + 1 + _LAST.index(stem)
        return _ORDER.index(stem) if stem in _ORDER else -1

    for item in items:
        if item.path.stem in _ORDER or item.path.stem in _LAST:
            item.add_marker(pytest.mark.infra)
    items.sort(key=rank)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the molecule scenarios as soon as they are collected (see start_all)."""
    if os.environ.get("SEALSTORE_MOLECULE_EARLY", "1") == "0":
        return
    if os.environ.get("MOLECULE_INVENTORY_FILE"):
        return  # inside a molecule verify: never start molecule from molecule
    if session.config.option.collectonly:
        return
    for item in session.items:
        if item.path.name == "test_molecule_scenarios.py":
            item.module.start_all()  # type: ignore[attr-defined]
            return


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the fault suites measured (seconds, error counts), so the run's log shows it."""
    for title, numbers in MEASURED.items():
        terminalreporter.write_sep("-", f"measured: {title}")
        for key, value in numbers.items():
            terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(scope="session")
def dep() -> Deployment:
    source = inventory_source()
    if source is None:
        pytest.skip("no deployment to verify (set SEALSTORE_INFRA_INVENTORY or run under molecule)")
    return Deployment(source)


@pytest.fixture(scope="session")
def secrets(dep: Deployment) -> set[str]:
    values = dep.secret_values()
    assert values, "found no secrets to look for: custody files or EnvironmentFile missing"
    return values
