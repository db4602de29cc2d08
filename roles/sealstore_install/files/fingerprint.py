"""Print a JSON fingerprint of everything that goes into the sealstore wheelhouse.

Why: the wheelhouse is rebuilt only when the sources, pins or extras change, so a second converge
does not rebuild (wheels are not byte-reproducible, which would make every run report a change).
Each fingerprint gets its own directory, so concurrent runs with different inputs never clobber
each other's wheelhouse.
Usage: fingerprint.py SOURCE_DIR WHEELHOUSE_DIR EXTRAS CONSTRAINTS
"""

import hashlib
import json
import os
import sys


def main() -> int:
    source, wheelhouse, extras, constraints = sys.argv[1:5]
    digest = hashlib.sha256(f"extras={extras}\n".encode())
    files = [
        os.path.join(source, "pyproject.toml"),
        os.path.join(source, "requirements", "runtime.txt"),
    ]
    if extras:
        files.append(constraints)
    for root, dirs, names in os.walk(os.path.join(source, "src")):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.endswith(".egg-info"))
        files.extend(os.path.join(root, n) for n in sorted(names) if not n.endswith(".pyc"))
    for path in files:
        digest.update(os.path.relpath(path, source).encode() + b"\0")
        with open(path, "rb") as fh:
            digest.update(hashlib.sha256(fh.read()).digest())
    fingerprint = digest.hexdigest()[:32]
    tarball = os.path.join(wheelhouse, fingerprint, "wheelhouse.tar")
    print(
        json.dumps(
            {"fingerprint": fingerprint, "current": os.path.isfile(tarball), "tarball": tarball}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
