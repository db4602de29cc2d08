"""`sealstore admin verify`: prove every object opens under the current KMS.

For every object and pending upload: the sealed key must unseal (one KMS decrypt, exactly
what a GET does). With ``--deep`` every byte is also decrypted (authenticated DARE packages)
and the plaintext MD5s compared with the stored ETags (whole object, or each multipart part)
and the sealed ETag; every opened key is also checked against its authenticated layout entry
(`objects/layout.py`, reported as ``layout`` counts: verified, legacy, unencrypted).
Nothing is written. The summary lists every failing object and counts objects per KMS key
version, which is how an operator proves that old transit versions are unused before raising
``min_decryption_version``. Exit status 1 when anything failed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sealstore.admin.walker import Outcome
from sealstore.kms.base import KMS
from sealstore.objects import maintenance
from sealstore.objects.metadata import kms_key_id_of
from sealstore.storage.base import ObjectMeta, UploadMeta
from sealstore.storage.contract import Store


class VerifyJob:
    """The walker job (read-only)."""

    name = "verify"

    def __init__(self, store: Store, kms: KMS | None, *, deep: bool = False) -> None:
        self.store = store
        self.kms = kms
        self.deep = deep
        self.versions: Counter[str] = Counter()
        self.layout: Counter[str] = Counter()

    def params(self) -> dict[str, Any]:
        return {"deep": self.deep}

    def _outcome(self, check: maintenance.Check, key_id: str | None) -> Outcome:
        if check.version is not None and key_id:
            self.versions[f"{key_id}:v{check.version}"] += 1
        if check.layout == "gone":
            return Outcome("gone")
        self.layout[check.layout] += 1
        if check.problem is not None:
            return Outcome("failed", error=check.problem, fields={"version": check.version})
        return Outcome("ok")

    async def on_object(self, meta: ObjectMeta) -> Outcome:
        check = await maintenance.check_object(self.store, self.kms, meta, deep=self.deep)
        return self._outcome(check, kms_key_id_of(meta.internal))

    async def on_upload(self, upload: UploadMeta) -> Outcome:
        check = await maintenance.check_upload(self.kms, upload)
        return self._outcome(check, kms_key_id_of(upload.meta.internal))

    def summary(self, failed: int) -> dict[str, Any]:
        return {
            "deep": self.deep,
            "key_versions": dict(sorted(self.versions.items())),
            "layout": dict(sorted(self.layout.items())),
        }
