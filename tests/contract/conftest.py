"""Fixtures of the storage contract suite: every test runs once per registered backend.

`site` is a freshly provisioned, empty store of one backend (see `backends.BACKENDS`),
re-openable for restart tests and describable to a child process for crash tests; `store` is
that site opened on the test's event loop; `bucket` is an existing, empty bucket in it.

Contract tests are plain `async def` functions: the `pytest_pyfunc_call` hook below runs each
one on the same `asyncio.Runner` loop the `store` fixture opened the store on (or on a loop
of its own when it takes only `site`), with no plugin needed, under a generous timeout so a
hung backend fails the test instead of the run.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealstore.storage.contract import Store
from tests.contract.backends import BACKENDS, StoreSite

TEST_TIMEOUT_S = 60.0
BUCKET = "contract"


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """The event loop of one test: fixtures and the test body share it."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(params=sorted(BACKENDS))
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSite]:
    """An empty, provisioned store of one backend (not opened)."""
    backend = BACKENDS[request.param]
    with backend.provision(tmp_path) as params:
        yield StoreSite(backend=backend.name, params=params)


@pytest.fixture
def store(site: StoreSite, runner: asyncio.Runner) -> Iterator[Store]:
    """The site's store, opened on the test's loop and closed after it."""
    opened = site.new_store()
    runner.run(opened.open())
    try:
        yield opened
    finally:
        runner.run(opened.close())


@pytest.fixture
def bucket(store: Store, runner: asyncio.Runner) -> str:
    """An empty bucket in `store`."""
    runner.run(store.create_bucket(BUCKET))
    return BUCKET


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` contract tests on the test's `runner` loop."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    loop_runner = pyfuncitem.funcargs.get("runner")
    async def body() -> None:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            await pyfuncitem.obj(**kwargs)

    if isinstance(loop_runner, asyncio.Runner):
        loop_runner.run(body())
    else:  # a test that opens its stores itself (`site.opened()`) gets a loop of its own
        asyncio.run(body())
    return True
