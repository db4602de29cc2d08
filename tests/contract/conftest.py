"""Fixtures of the storage contract suite: every test runs once per registered backend.

`site` is a provisioned store of one backend (see `backends.BACKENDS`) shared by the tests
of one module, `store` that site opened on the module's event loop, and `bucket` a new,
empty bucket in it for each test, so tests stay independent without paying a store's open
(several fsyncs) per test. `fresh_site` is an empty store of a test's own, re-openable for
restart tests and describable to a child process for crash tests; `empty_store` is one
opened for tests of store-wide state.

Contract tests are plain `async def` functions: the `pytest_pyfunc_call` hook below runs each
one on the same `asyncio.Runner` loop the `store` fixture opened the store on (or on a loop
of its own when it takes only `fresh_site`), with no plugin needed, under a generous timeout so a
hung backend fails the test instead of the run.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealstore.storage.contract import Store
from tests.contract.backends import BACKENDS, StoreSite

TEST_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """The event loop of one test module: fixtures and test bodies share it."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


def _provision(name: str, scratch: Path) -> Iterator[StoreSite]:
    backend = BACKENDS[name]
    with backend.provision(scratch) as params:
        yield StoreSite(backend=backend.name, params=params)


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreSite]:
    """The provisioned store one test module shares (each test in its own bucket)."""
    yield from _provision(request.param, tmp_path_factory.mktemp(f"contract-{request.param}"))


@pytest.fixture(scope="module")
def store(site: StoreSite, runner: asyncio.Runner) -> Iterator[Store]:
    """`site`, opened on the module's loop (opening a durable store costs fsyncs: once per
    module, not per test)."""
    yield from _opened(site, runner)


@pytest.fixture
def bucket(store: Store, runner: asyncio.Runner) -> str:
    """A new, empty bucket in `store`, for this test alone."""
    name = f"contract-{next(_bucket_numbers):04d}"
    runner.run(store.create_bucket(name))
    return name


@pytest.fixture(params=sorted(BACKENDS))
def fresh_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSite]:
    """An empty, provisioned store of one backend for this test alone (not opened): for
    restart and crash tests, which open it themselves (`fresh_site.opened()`)."""
    yield from _provision(request.param, tmp_path)


@pytest.fixture
def empty_store(fresh_site: StoreSite, runner: asyncio.Runner) -> Iterator[Store]:
    """A store of its own, opened and empty: for tests of store-wide state (ListBuckets)."""
    yield from _opened(fresh_site, runner)


def _opened(site: StoreSite, runner: asyncio.Runner) -> Iterator[Store]:
    opened = site.new_store()
    runner.run(opened.open())
    try:
        yield opened
    finally:
        runner.run(opened.close())


_bucket_numbers = itertools.count()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` contract tests on the test's `runner` loop."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = inspect.signature(pyfuncitem.obj).parameters
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
