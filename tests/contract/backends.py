"""The registry of storage backends the contract suite runs against: one entry per backend.

A backend entry knows two things: how to *provision* an empty store in a scratch directory
(returning JSON-serialisable parameters: where the data lives, which options it was given),
and how to *build* an unopened `Store` from those parameters. Everything else the suite needs
follows from that: the `store` fixture opens one, restart tests build a second instance on the
same parameters, and crash tests hand the parameters to a child process (on stdin, never on
the command line, so a backend whose parameters carry credentials keeps them out of `ps`).

Adding a backend (the S3/SeaweedFS one) means adding one `Backend` to `BACKENDS`; no test
changes. Its `provision` may start whatever server it needs and stop it on exit, or (cheaper:
the suite provisions one site per test module plus one per restart/crash test) start one
server per session and hand every site a fresh bucket or key prefix on it. Parameters must
survive `json.dumps`; a child process rebuilds the store from them alone, so two instances
built from one site must see the same data (the suite checks that too).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealstore.storage.contract import Store

Params = Mapping[str, Any]

# The part-size floor the suite asks backends for: small, so EntityTooSmall and its boundary
# are testable with kilobytes instead of 5 MiB parts. A backend that cannot go this low may
# report a larger floor in its params ("min_part_size"); tests read it from there.
TEST_MIN_PART_SIZE = 64 * 1024


@dataclass(frozen=True)
class Backend:
    """How the suite makes, and remakes, stores of one implementation."""

    name: str
    provision: Callable[[Path], AbstractContextManager[dict[str, Any]]]
    build: Callable[[Params], Store]


# -- FSBackend: SQLite index + fsynced files in a local directory ---------------------------


@contextmanager
def _fs_provision(scratch: Path) -> Iterator[dict[str, Any]]:
    # gc_grace=0: replaced data is removed as soon as nothing holds it open, the strictest
    # setting for "a started reader keeps its bytes" and for crash recovery.
    yield {
        "data_dir": str(scratch / "fs-store"),
        "min_part_size": TEST_MIN_PART_SIZE,
        "gc_grace": 0.0,
    }


def _fs_build(params: Params) -> Store:
    from sealstore.storage.fs import FSBackend

    return FSBackend(
        Path(params["data_dir"]),
        gc_grace=float(params["gc_grace"]),
        min_part_size=int(params["min_part_size"]),
    )


BACKENDS: dict[str, Backend] = {
    "fs": Backend(name="fs", provision=_fs_provision, build=_fs_build),
}


# -- what tests hold ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSite:
    """One provisioned store: its backend and parameters, re-openable any number of times."""

    backend: str
    params: dict[str, Any]

    @property
    def min_part_size(self) -> int:
        return int(self.params["min_part_size"])

    def new_store(self) -> Store:
        """A fresh, unopened `Store` instance over this site's data."""
        return BACKENDS[self.backend].build(self.params)

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[Store]:
        """Open a new instance on the same data (a restart), close it on exit."""
        store = self.new_store()
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    def to_json(self) -> str:
        """The site as one JSON line, for a child process (`from_json`)."""
        return json.dumps({"backend": self.backend, "params": self.params})

    @classmethod
    def from_json(cls, text: str) -> StoreSite:
        raw = json.loads(text)
        return cls(backend=raw["backend"], params=dict(raw["params"]))

    @classmethod
    def from_stdin(cls) -> StoreSite:
        """Read the site a parent wrote with `to_json` (the first line of stdin)."""
        return cls.from_json(sys.stdin.readline())
