"""Process helpers for the benchmark: free ports, readiness polling, clean shutdown by PID.

Everything the benchmark starts is registered here and stopped in reverse order, even when a
cell fails, so a run never leaves servers behind on the shared machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

_started: list[subprocess.Popen[bytes]] = []
_after_stop: dict[int, list[Callable[[], None]]] = {}


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the OS picks it; never a fixed port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(argv: list[str], env: dict[str, str], log_path: str, cpus: str | None = None):
    """Start a process in its own session, stdout/stderr to a private log file."""
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True
        )
    finally:
        os.close(fd)
    _started.append(proc)
    return proc


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0, signalled: bool = False) -> None:
    """SIGTERM the process group we created, then SIGKILL it if it does not exit."""
    if proc.poll() is None:
        if not signalled:
            _terminate(proc)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if proc in _started:
        _started.remove(proc)
    for callback in _after_stop.pop(proc.pid, []):
        callback()


def on_stop(proc: subprocess.Popen[bytes], callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``proc`` has been stopped (files it leaves outside the run dir)."""
    _after_stop.setdefault(proc.pid, []).append(callback)


def peak_rss_mib(proc: subprocess.Popen[bytes]) -> float | None:
    """Peak resident set size (VmHWM) of a running process, MiB; None once it is gone."""
    try:
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def stop_all(timeout: float = 10.0) -> None:
    """Stop every process this run started: SIGTERM to all at once (SeaweedFS takes its
    time to drain), then wait for each in reverse start order within one shared deadline."""
    running = list(reversed(_started))
    for proc in running:
        _terminate(proc)
    deadline = time.monotonic() + timeout
    for proc in running:
        stop(proc, max(0.1, deadline - time.monotonic()), signalled=True)


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes],
    log_path: str,
    timeout: float = 60.0,
    ok: Callable[[int], bool] = lambda s: s == 200,
) -> None:
    """Poll ``url`` until it answers an accepted status; fail early if the process died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"process exited with {proc.returncode}; see {log_path}:\n" + tail(log_path)
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if ok(resp.status):
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            if ok(exc.code):
                return
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s ({last}); log:\n" + tail(log_path))


def tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""
