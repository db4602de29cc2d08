"""Command line: ``sealstore server|client|admin|version``.

``sealstore server DATA_DIR`` is shaped like ``minio server ~/export``. With ``--workers N``
the parent binds the listening socket once, forks N workers that all accept on it, forwards
SIGTERM/SIGINT to them and restarts a worker that dies unexpectedly. Secrets only ever come
from the environment or files, never from argv, so they never show up in ``ps``.

With ``SEALSTORE_TLS_CERT_FILE``/``SEALSTORE_TLS_KEY_FILE`` every worker serves HTTPS; SIGHUP
(to the parent, forwarded to each worker) reloads the certificate without dropping a
connection (``sealstore.tls``). A pair that does not load is a configuration error at start.
SIGHUP also reloads ``SEALSTORE_USERS_FILE`` (``sealstore.s3.policy.users``): a file that is
exposed or invalid stops the start with one line; on reload it is logged and the old users stay.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sealstore.config import ENV_DOC, ConfigError, Settings

EXIT_CONFIG = 2


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("sealstore")
    except Exception:
        return "0.1.0"


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for all subcommands (``--help`` lists every environment variable)."""
    env_help = "environment variables:\n" + "\n".join(
        f"  {name:<32} {doc}" for name, doc in ENV_DOC.items()
    )
    parser = argparse.ArgumentParser(
        prog="sealstore",
        description="S3-compatible object storage with MinIO-compatible SSE-S3 encryption.",
        epilog=env_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    srv = sub.add_parser(
        "server",
        help="run the S3 server",
        description="Run the S3 server on DATA_DIR (like `minio server DATA_DIR`).",
        epilog=env_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    srv.add_argument("--address", help="listen address HOST:PORT (env SEALSTORE_ADDRESS)")
    srv.add_argument(
        "--workers", type=int, help="worker processes sharing the socket (env SEALSTORE_WORKERS)"
    )
    srv.add_argument("data_dir", metavar="DATA_DIR", help="directory holding objects and index")
    sub.add_parser("client", help="SSE client round trips (see `sealstore client --help`)")
    sub.add_parser("admin", help="rewrap | verify | ... (see `sealstore admin --help`)")
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sealstore`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "client":
        from sealstore.client import cli  # imported lazily: the server does not need boto3

        return int(cli.main(args_list[1:]) or 0)
    if args_list and args_list[0] == "admin":
        from sealstore.admin import cli as admin_cli  # the server does not need it

        return admin_cli.main(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "version":
        print(f"sealstore {_version()}")
        return 0
    if args.command != "server":
        parser.print_help()
        return EXIT_CONFIG
    try:
        settings = Settings.from_env(os.environ, args)
        _check_data_dir(settings.data_dir)
        _check_tls(settings)
        _check_users(settings)
    except ConfigError as exc:
        print(f"sealstore: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not _check_storage(settings.data_dir):
        return EXIT_CONFIG
    return serve(settings)


def _storage_failure(exc: Exception) -> None:
    """Report an unusable data directory as one line on stderr (no traceback, no secrets:
    storage messages carry paths and OS/SQLite reasons only)."""
    print(f"sealstore: storage error: {exc}", file=sys.stderr)


def _check_storage(data_dir: Path | None) -> bool:
    """Open the store once in the parent before any worker starts (see FSBackend.preflight).

    Like a configuration error, an unusable data directory (read-only, not a database, a
    newer index format) will not fix itself by restarting, so it ends the process with
    exit code 2 and one line rather than a traceback from inside the event loop.
    """
    from sealstore.storage import StorageError
    from sealstore.storage.fs import FSBackend

    assert data_dir is not None  # checked by _check_data_dir
    try:
        FSBackend.preflight(data_dir)
    except StorageError as exc:
        _storage_failure(exc)
        return False
    return True


def _check_data_dir(data_dir: Path | None) -> None:
    if data_dir is None:
        raise ConfigError("DATA_DIR is required")
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"DATA_DIR {str(data_dir)!r} exists and is not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"DATA_DIR {str(data_dir)!r} cannot be created: {exc.strerror}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"DATA_DIR {str(data_dir)!r} is not writable")


def _check_tls(settings: Settings) -> None:
    """Load the certificate pair once before binding, so a bad pair is one line, exit 2."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return
    import ssl

    from sealstore.tls import load_context

    try:
        load_context(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "SEALSTORE_TLS_CERT_FILE/SEALSTORE_TLS_KEY_FILE cannot be loaded as a certificate "
            f"and matching key: {getattr(exc, 'reason', None) or exc}"
        ) from None


def _check_users(settings: Settings) -> None:
    """Load the users file once before binding: exposed or invalid is one line, exit 2."""
    if settings.users_file is None:
        return
    from sealstore.s3.policy.users import UsersFileError, load_users_file

    try:
        load_users_file(settings.users_file, settings.root_user)
    except UsersFileError as exc:
        raise ConfigError(str(exc)) from None


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen once in the parent; workers inherit the socket across fork."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host == "":
        family = socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and host == "":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((host if host else ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))  # noqa: S104
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> int:
    """Bind, then run one worker in-process or supervise ``settings.workers`` forked workers."""
    from sealstore.log import get_logger, setup_logging

    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    log = get_logger()
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        print(
            f"sealstore: cannot listen on {settings.address}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    log.info(
        "sealstore starting",
        extra={
            "address": settings.address,
            "workers": settings.workers,
            "kms": settings.kms_kind or "none",
            "auto_encryption": settings.auto_encryption,
            "tls": settings.tls_cert_file is not None,
            "version": _version(),
        },
    )
    if settings.allow_insecure_ssec:
        log.warning(
            "SEALSTORE_ALLOW_INSECURE_SSEC is on: SSE-C keys are accepted over plain HTTP, "
            "where anyone on the path can read them; use this for tests only"
        )
    # SIGHUP only reloads files: never let it terminate a process (the default) in the
    # moment before a worker's event loop installs its handler.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if settings.workers == 1:
        return run_worker(settings, sock)
    return _supervise(settings, sock)


def run_worker(settings: Settings, sock: socket.socket) -> int:
    """Run one aiohttp server on the shared socket until SIGTERM/SIGINT (graceful)."""
    from aiohttp import web

    from sealstore.s3.app import build_app

    loop = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = None
    from sealstore.storage import StorageError

    app = build_app(settings)
    ssl_context = _install_reload(app, settings)
    try:
        web.run_app(
            app,
            sock=sock,
            ssl_context=ssl_context,
            print=None,
            access_log=None,
            handle_signals=True,
            shutdown_timeout=30.0,
            loop=loop,
        )
    except StorageError as exc:
        # The data directory became unusable between the preflight and this worker's
        # open(): same one-line report and exit code, so the supervisor stops too.
        _storage_failure(exc)
        return EXIT_CONFIG
    return 0


def _install_reload(app: Any, settings: Settings) -> Any:
    """SIGHUP reloads this worker's TLS certificate and users file; returns the listening
    SSLContext (None for plain HTTP)."""
    import asyncio

    from sealstore.log import get_logger
    from sealstore.s3.app import APP_CTX_KEY

    reloaders: list[Any] = [app[APP_CTX_KEY].users]  # a no-op without SEALSTORE_USERS_FILE
    listening = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        from sealstore.tls import CertificateReloader

        tls = CertificateReloader(settings.tls_cert_file, settings.tls_key_file, get_logger())
        reloaders.append(tls)
        listening = tls.listening
    tasks: set[asyncio.Task[bool]] = set()

    def on_sighup() -> None:
        for reloader in reloaders:
            task = asyncio.get_running_loop().create_task(reloader.reload())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def start(_app: object) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
        if any(r.changed_since_load() for r in reloaders):  # a SIGHUP during start-up
            on_sighup()

    async def stop(_app: object) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return listening


def _supervise(settings: Settings, sock: socket.socket) -> int:
    """Fork workers, forward termination signals, restart crashed workers (with backoff)."""
    from sealstore.log import get_logger

    log = get_logger()
    children: dict[int, int] = {}  # pid -> slot
    stopping = False
    fatal = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # child
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until its event loop takes it over
            code = 1
            try:
                code = run_worker(settings, sock)
            finally:
                os._exit(code)
        children[pid] = slot

    def reload(_signum: int, _frame: object) -> None:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, reload)
    for slot in range(settings.workers):
        spawn(slot)
    last_restart = 0.0
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        slot = children.pop(pid, None)
        if slot is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            continue
        if code == EXIT_CONFIG:
            # The worker found the store unusable: restarting cannot help, so stop all.
            log.error("worker cannot use the data directory; stopping", extra={"pid": pid})
            fatal = True
            forward(signal.SIGTERM, None)
            continue
        log.warning("worker exited unexpectedly", extra={"pid": pid, "exit_code": code})
        exit_code = 1
        # Avoid a hot crash loop when something is persistently wrong.
        if time.monotonic() - last_restart < 1.0:
            time.sleep(1.0)
        last_restart = time.monotonic()
        spawn(slot)
    sock.close()
    if fatal:
        return EXIT_CONFIG
    return 0 if stopping else exit_code
