"""`sealstore admin rewrap`: re-wrap every object's data key to the newest transit key version.

After ``transit/keys/<key>/rotate`` new objects are sealed with the new version while old
ones keep ``vault:vN:`` ciphertexts of older versions. This job moves every object (and
pending upload) to the newest version with transit ``rewrap`` (the data key never leaves the
KMS) and a compare-and-swap of the metadata only: no data byte is read or written, and every
object stays readable throughout (the old ciphertext stays valid until the operator raises
``min_decryption_version``, which the summary's ``behind`` = 0 makes safe).

Objects already at (or above) the newest version are skipped without a KMS call, so a rerun
after a kill only does what is left. The newest version is read once per key id from
``transit/keys/<key>`` (needs ``read`` on that path); without that grant every object is sent
to ``rewrap`` and unchanged answers are skipped. A static master key has no versions: the job
refuses with one clear line (`KMSRewrapUnsupportedError`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sealstore.admin.walker import JobAborted, Outcome
from sealstore.kms.base import KMSAccessDeniedError, RewrappingKMS
from sealstore.objects import maintenance
from sealstore.storage.base import ObjectMeta, UploadMeta
from sealstore.storage.contract import Store


class RewrapJob:
    """The walker job; ``dry_run`` counts what would change and writes nothing."""

    name = "rewrap"

    def __init__(self, store: Store, kms: RewrappingKMS, *, dry_run: bool = False) -> None:
        self.store = store
        self.kms = kms
        self.dry_run = dry_run
        self._targets: dict[str, int | None] = {}
        self.would_rewrap = 0  # dry run: items below the newest version
        self.versions: Counter[str] = Counter()

    async def prepare(self) -> None:
        """Fail early (and clearly) when the KMS cannot rewrap at all, e.g. a master key."""
        await self._target(self.kms.default_key_id)

    async def _target(self, key_id: str) -> int | None:
        if key_id not in self._targets:
            try:
                self._targets[key_id] = (await self.kms.key_versions(key_id)).latest
            except KMSAccessDeniedError:
                self._targets[key_id] = None  # no read grant: ask rewrap for every object
        return self._targets[key_id]

    def params(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "key": self.kms.default_key_id}

    async def _handle(self, internal: dict[str, str], bucket: str, key: str, run: Any) -> Outcome:
        sealed = maintenance.sealed_data_key(internal, bucket, key)
        if sealed is None:
            return Outcome("unencrypted")
        target = await self._target(sealed.key_id)
        try:
            result = await run(target)
        except KMSAccessDeniedError as exc:
            # a policy problem is the same for every object: stop instead of listing them all
            raise JobAborted(f"{exc} (grant update on transit/rewrap/<key>)") from None
        fields = {"from_version": result.from_version, "to_version": result.to_version}
        if result.action == "would-rewrap":
            self.would_rewrap += 1
        final = result.to_version if result.action != "would-rewrap" else result.from_version
        if result.action != "gone":
            self.versions[f"{sealed.key_id}:v{final}"] += 1
        return Outcome(result.action, changed=result.action == "rewrapped", fields=fields)

    async def on_object(self, meta: ObjectMeta) -> Outcome:
        return await self._handle(
            meta.internal,
            meta.bucket,
            meta.key,
            lambda target: maintenance.rewrap_object(
                self.store, self.kms, meta, target, dry_run=self.dry_run
            ),
        )

    async def on_upload(self, upload: UploadMeta) -> Outcome:
        return await self._handle(
            upload.meta.internal,
            upload.bucket,
            upload.key,
            lambda target: maintenance.rewrap_upload(
                self.store, self.kms, upload, target, dry_run=self.dry_run
            ),
        )

    def summary(self, failed: int) -> dict[str, Any]:
        """``behind``: items that may still use an older version (failed ones count too)."""
        return {
            "dry_run": self.dry_run,
            "target_versions": {k: v for k, v in sorted(self._targets.items())},
            "key_versions": dict(sorted(self.versions.items())),
            "behind": self.would_rewrap + failed,
        }
