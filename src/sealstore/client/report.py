"""The record of one ``roundtrip`` run: its checks and objects, and the ``--json`` document.

Kept apart from :mod:`.roundtrip` (which runs the checks) because ``scan --from-json``, the
tests and automation read this document without running anything: its field names are the
client's output contract.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sealstore.client.endpoint import KMSStatus


@dataclass
class Check:
    """One verified property."""

    name: str
    ok: bool
    detail: str = ""
    object: str | None = None


@dataclass
class ObjectRecord:
    """What was uploaded, so automation (and ``scan``) can find and regenerate it."""

    bucket: str
    key: str
    mode: str
    size: int
    seed: str
    sha256: str
    md5: str
    multipart: bool = False
    parts: int = 1
    etag: str | None = None
    sse: str | None = None


@dataclass
class Report:
    """Everything the run did; serialised as the --json document."""

    endpoint: str
    region: str
    seed: str
    buckets: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    objects: list[ObjectRecord] = field(default_factory=list)
    kms: KMSStatus | None = None
    fatal: str | None = None
    kept: bool = False

    @property
    def ok(self) -> bool:
        return self.fatal is None and all(c.ok for c in self.checks) and bool(self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        kms = None
        if self.kms is not None:
            kms = {k: v for k, v in asdict(self.kms).items() if k != "raw"}
            kms["status"] = self.kms.raw
        return {
            "ok": self.ok,
            "endpoint": self.endpoint,
            "region": self.region,
            "seed": self.seed,
            "buckets": self.buckets,
            "kept": self.kept,
            "fatal": self.fatal,
            "kms": kms,
            "kms_key_id": self.kms.key_id if self.kms else None,
            "checks": [asdict(c) for c in self.checks],
            "objects": [asdict(o) for o in self.objects],
            "bytes": sum(o.size for o in self.objects),
        }
