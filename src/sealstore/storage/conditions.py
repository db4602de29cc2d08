"""Write preconditions: what a key must hold at the moment a commit publishes over it.

Why in storage: S3's conditional writes (``If-None-Match: *``, ``If-Match: <etag>`` on
PutObject and CompleteMultipartUpload) promise that two racing writers cannot both succeed.
A check in the object service before the commit cannot keep that promise (both writers may
check before either publishes), so the check has to run inside the same transaction that
publishes: a compare-and-swap on the key's current object, like `Store.update_internal`.
A commit whose condition no longer holds publishes nothing and raises ``ObjectChanged``
(S3's 409 ConditionalRequestConflict); the service reports a condition that was already false
before the upload started as 412/404 itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealstore.storage.base import normalize_etag


@dataclass(frozen=True)
class WriteCondition:
    """``absent``: no object may be at the key; ``etag``: the object at the key must have this
    ETag (``*``: any object). Both may be set; then both must hold (never, in practice)."""

    absent: bool = False
    etag: str | None = None

    def holds(self, current_etag: str | None) -> bool:
        """Whether the condition holds for a key whose current object has ``current_etag``
        (None: no object at the key)."""
        if self.absent and current_etag is not None:
            return False
        if self.etag is None:
            return True
        if current_etag is None:
            return False
        return self.etag == "*" or normalize_etag(self.etag) == normalize_etag(current_etag)
