"""Report where any of the secrets read from stdin (JSON list) appear on this host.

Why: the deployment promises that no secret reaches process arguments, the journal or a
world-readable file. The secrets come in on stdin (never argv), and only the places and the
secret's index are printed, never the secret itself.
"""

import json
import os
import stat
import subprocess
import sys

ROOTS = ["/etc", "/opt", "/var", "/srv", "/home", "/root", "/tmp", "/run", "/usr/local"]  # noqa: S108 - scanning /tmp for leaked secrets is the point
MAX_BYTES = 64 << 20


def others_can_traverse(path: str) -> bool:
    """True when every directory from / down to path grants execute to others."""
    while path not in ("/", ""):
        try:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        path = os.path.dirname(path)
    return True


def world_readable_files() -> list[str]:
    """Regular files any local user can read: o+r on the file and o+x on every parent directory."""
    found = []
    for root in ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            if not others_can_traverse(dirpath):
                dirnames[:] = []
                continue
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if (
                    stat.S_ISREG(st.st_mode)
                    and st.st_mode & stat.S_IROTH
                    and st.st_size <= MAX_BYTES
                ):
                    found.append(path)
    return found


def main() -> int:
    secrets = [s.encode() for s in json.load(sys.stdin) if s]
    hits = []
    for path in world_readable_files():
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        hits += [
            {"where": "file", "path": path, "secret": i} for i, s in enumerate(secrets) if s in data
        ]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, check=True).stdout
    hits += [{"where": "ps", "secret": i} for i, s in enumerate(secrets) if s in ps]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read()
            except OSError:
                continue
            hits += [
                {"where": "cmdline", "pid": int(pid), "secret": i}
                for i, s in enumerate(secrets)
                if s in cmd
            ]
    journal = subprocess.run(
        ["journalctl", "--no-pager", "-o", "cat"], capture_output=True, check=False
    ).stdout
    hits += [{"where": "journal", "secret": i} for i, s in enumerate(secrets) if s in journal]
    print(json.dumps({"secrets": len(secrets), "hits": hits}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
