"""Pick the storage backend for a configured data location.

Everything above `storage/` asks for a ``Store`` here and never names a backend class, so a
second backend (an ``s3://`` gateway to SeaweedFS or another S3 service) is one more branch
in :func:`open_store` and nothing else changes.
"""

from __future__ import annotations

from pathlib import Path

from sealstore.storage.contract import Store
from sealstore.storage.fs import FSBackend


def open_store(data: str | Path) -> Store:
    """The (not yet opened) backend for ``data``: a directory path -> FSBackend.

    A ``scheme://`` location names a remote backend; none is implemented yet, so any scheme
    is a clear ValueError rather than a directory literally called ``s3:``.
    """
    text = str(data)
    scheme, sep, _ = text.partition("://")
    if sep and scheme and scheme.replace("+", "").replace("-", "").isalnum():
        raise ValueError(f"unknown storage location scheme {scheme!r} in {text!r}")
    return FSBackend(Path(data))
