"""Shared fixtures for integration tests that need a real OpenBao (Vault API).

Session-scoped servers (started once per test run, stopped by PID in a finalizer; an ``atexit``
hook in ``openbao.py`` is the last resort):

* ``openbao``: ``bao server`` (server mode, raft storage) on a free 127.0.0.1 port, plain HTTP.
* ``openbao_tls``: the same over TLS; ``openbao_tls.ca_file`` is the CA PEM file and
  ``openbao_tls.ca_dir`` a directory holding that CA among unrelated files (both are valid
  ``MINIO_SSE_VAULT_CAPATH`` values). ``AppRoleCreds.capath`` defaults to the CA file.

Both already have the quickstart setup (transit key ``my-minio-key``, ``minio-policy``, AppRole
role ``my-role`` with ``period=60s``) in the root namespace and in namespace ``ns1``.

Function-scoped credentials (a fresh secret-id for every test):

* ``vault_creds``: ``AppRoleCreds`` for ``openbao``, root namespace.
* ``vault_creds_ns1``: ``AppRoleCreds`` for ``openbao``, namespace ``ns1``.
* ``vault_creds_tls``: ``AppRoleCreds`` for ``openbao_tls`` (``capath`` = CA file).
* ``approle``: a factory ``approle(server=None, namespace=None, period="60s", key=...)`` for
  anything else (another period or key gets its own role/policy names, so the shared quickstart
  role and policy never change).

``AppRoleCreds.env()`` gives the ``MINIO_SSE_VAULT_*`` variables for a server process and
``AppRoleCreds.kms_kwargs()`` the arguments of ``VaultKMS``/``build_kms``. The harness speaks to
OpenBao through ``hvac``: ``server.client(namespace=..., token=...)`` is an ``hvac.Client`` with
the root token by default, ``server.api(method, path, ...)`` the raw-path call for asserting an
endpoint's exact status and body. Tests that stop,
seal or pause OpenBao must use their own ``OpenBao()`` instance (or the ``private_openbao``
fixture), never the shared ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.integration.openbao import AppRoleCreds, OpenBao

NAMESPACE = "ns1"


def _started(tls: bool) -> OpenBao:
    server = OpenBao(tls=tls)
    try:
        server.start()
        server.configure_sse()
        server.configure_sse(namespace=NAMESPACE)
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBao]:
    """Shared plain-HTTP OpenBao with the quickstart setup in root and ``ns1``."""
    server = _started(tls=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def openbao_tls() -> Iterator[OpenBao]:
    """Shared TLS OpenBao with the quickstart setup in root and ``ns1``."""
    server = _started(tls=True)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_openbao() -> Iterator[OpenBao]:
    """A fresh OpenBao for one test that may stop, seal or pause it."""
    server = OpenBao()
    try:
        server.start()
        yield server
    finally:
        server.close()


def _names_for(period: str, key: str) -> tuple[str, str]:
    """(role, policy) names: the quickstart's for the defaults, derived names otherwise."""
    role = "my-role" if period == "60s" else f"my-role-{period}"
    if key == "my-minio-key":
        return role, "minio-policy"
    return f"{role}-{key}", f"minio-policy-{key}"


@pytest.fixture
def approle(openbao: OpenBao) -> Callable[..., AppRoleCreds]:
    """Factory for fresh AppRole credentials on any OpenBao (default: the shared one)."""

    def make(
        server: OpenBao | None = None,
        namespace: str | None = None,
        period: str = "60s",
        key: str = "my-minio-key",
    ) -> AppRoleCreds:
        target = server if server is not None else openbao
        role, policy = _names_for(period, key)
        return target.configure_sse(
            namespace=namespace, key=key, period=period, role=role, policy=policy
        )

    return make


@pytest.fixture
def vault_creds(openbao: OpenBao) -> AppRoleCreds:
    """Fresh AppRole credentials for the shared plain-HTTP OpenBao, root namespace."""
    return openbao.configure_sse()


@pytest.fixture
def vault_creds_ns1(openbao: OpenBao) -> AppRoleCreds:
    """Fresh AppRole credentials for the shared plain-HTTP OpenBao, namespace ``ns1``."""
    return openbao.configure_sse(namespace=NAMESPACE)


@pytest.fixture
def vault_creds_tls(openbao_tls: OpenBao) -> AppRoleCreds:
    """Fresh AppRole credentials for the shared TLS OpenBao (``capath`` = the CA file)."""
    return openbao_tls.configure_sse()
