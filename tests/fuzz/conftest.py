"""Hypothesis profiles for the fuzz suite and the count of executed cases.

``ci`` (the default, used by ``make test``) is bounded and derandomized, so every run tries
the same inputs and a failure reproduces; ``fuzz`` (``make fuzz``) draws fresh random inputs
with fifty times the budget (over 100,000 cases across the suite). Pick one with
``SEALSTORE_FUZZ_PROFILE``; ``SEALSTORE_FUZZ_SCALE`` multiplies the per-test budgets.

Cases are counted by wrapping each Hypothesis test's inner function (the documented plugin
hook), so the summary line reports what really ran, shrinking and replays included:
``fuzz: N cases, F failures``.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# function_scoped_fixture: the server tests check health once per test, after all cases.
_SLOW_OK = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.function_scoped_fixture,
]

settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "fuzz",
    max_examples=5_000,
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
PROFILE = os.environ.get("SEALSTORE_FUZZ_PROFILE", "ci")
settings.load_profile(PROFILE)

_cases = {"n": 0}


def _counted(inner: Any) -> Any:
    @functools.wraps(inner)
    def run(*args: Any, **kwargs: Any) -> Any:
        _cases["n"] += 1
        return inner(*args, **kwargs)

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        hyp = getattr(getattr(item, "obj", None), "hypothesis", None)
        if hyp is not None and not getattr(hyp.inner_test, "_fuzz_counted", False):
            hyp.inner_test = _counted(hyp.inner_test)
            hyp.inner_test._fuzz_counted = True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """With SEALSTORE_FUZZ_PROGRESS set, append the running case count after each test."""
    path = os.environ.get("SEALSTORE_FUZZ_PROGRESS")
    if path and report.when == "call":
        with open(path, "a", encoding="utf-8") as out:
            out.write(
                f"{time.strftime('%H:%M:%S')} {report.outcome} {report.nodeid} "
                f"total={_cases['n']}\n"
            )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _cases["n"]:
        failed = len(terminalreporter.stats.get("failed", []))
        errors = len(terminalreporter.stats.get("error", []))
        terminalreporter.write_line(
            f"fuzz: {_cases['n']} cases, {failed + errors} failures (profile {PROFILE})"
        )
