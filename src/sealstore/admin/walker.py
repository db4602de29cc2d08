"""Visit every object and pending multipart upload of a store, for one admin job.

The walker owns everything jobs share: the order (bucket by bucket, keys in S3 order, then
the bucket's pending uploads), bounded concurrency (``concurrency`` items in flight) and rate
(`RateLimiter`), retries of KMS outages, the checkpoint, progress, the audit log and the
metrics. A job only says what to do with one item (:class:`Job`).

Every version of an object is an item (`Store.list_versions`, delete markers skipped): each
is sealed under its own key, so a rewrap or KMS migration that skipped noncurrent versions
would leave them unreadable once the old KMS key is gone.

Resume: with items finishing out of order, the checkpoint records per bucket the highest
key at and below which *every* version is done (a low-water mark), so a kill -9 at any moment
loses at most the work in flight, which a rerun redoes (every job is idempotent per object).
Objects written while the job runs are walked if they sort after the listing position and
otherwise were written by the live server with current keys anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sealstore.admin.progress import Reporter
from sealstore.admin.ratelimit import RateLimiter
from sealstore.admin.records import AuditLog, Metrics
from sealstore.admin.state import Checkpoint
from sealstore.kms.base import KMSUnavailableError
from sealstore.storage.base import ObjectMeta, UploadMeta
from sealstore.storage.contract import Store

PAGE = 1000
MAX_LISTED_FAILURES = 10000


class JobAborted(Exception):
    """Raised by a job when going on is pointless for every object (e.g. the KMS policy
    denies the operation): the walk stops at once, the checkpoint is kept for a rerun."""


@dataclass(frozen=True)
class Outcome:
    """What a job did with one item: ``result`` names it; ``changed`` means data or metadata
    was written (audited); ``error`` makes it a failure; ``fields`` go to audit/JSON lines."""

    result: str
    changed: bool = False
    error: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class Job(Protocol):
    """One admin operation over single items; see `rewrap.py` and `verify.py`."""

    name: str

    def params(self) -> dict[str, Any]:
        """What makes two runs the same job (a checkpoint resumes only the same one)."""
        ...

    async def on_object(self, meta: ObjectMeta) -> Outcome: ...

    async def on_upload(self, upload: UploadMeta) -> Outcome: ...

    def summary(self, failed: int) -> dict[str, Any]:
        """Job-specific totals for the final report (``failed``: items that failed)."""
        ...


@dataclass
class WalkOptions:
    buckets: list[str] | None = None
    prefix: str = ""
    concurrency: int = 4
    rate: float = 0.0
    retries: int = 5
    retry_delay: float = 1.0


@dataclass
class _Tracker:
    """Low-water mark of one bucket's objects (see the module docstring)."""

    pending: dict[tuple[str, str], bool] = field(default_factory=dict)  # (key, version)
    listed: bool = False
    last_key: str | None = None  # the key of the newest item produced
    uploads_pending: int = 0
    uploads_listed: bool = False


def _item_name(kind: str, item: Any) -> str:
    """How reports and the audit log name an item."""
    if kind != "object":
        return f"{item.key} (upload {item.upload_id})"
    return item.key if item.version_id is None else f"{item.key} (version {item.version_id})"


class Walker:
    """Runs ``job`` over ``store``; :meth:`run` returns the summary document."""

    def __init__(
        self,
        store: Store,
        job: Job,
        options: WalkOptions,
        checkpoint: Checkpoint,
        reporter: Reporter,
        audit: AuditLog,
        metrics: Metrics,
    ) -> None:
        self.store, self.job, self.opts = store, job, options
        self.checkpoint, self.reporter, self.audit, self.metrics = (
            checkpoint,
            reporter,
            audit,
            metrics,
        )
        self.limiter = RateLimiter(options.rate)
        self.failures: list[dict[str, str]] = []
        self.failed = 0
        self._trackers: dict[str, _Tracker] = {}

    async def _buckets(self) -> list[str]:
        names = sorted(b.name for b in await self.store.list_buckets())
        if self.opts.buckets:
            wanted = set(self.opts.buckets)
            missing = wanted - set(names)
            if missing:
                raise ValueError(f"no such bucket: {', '.join(sorted(missing))}")
            names = [n for n in names if n in wanted]
        return names

    async def _objects(self, bucket: str, after: str) -> AsyncIterator[ObjectMeta]:
        """Every version (markers have no data or key: skipped) of keys after ``after``."""
        key_marker, version_marker = after, ""
        while True:
            page = await self.store.list_versions(
                bucket,
                prefix=self.opts.prefix,
                key_marker=key_marker,
                version_id_marker=version_marker,
                max_keys=PAGE,
            )
            for meta in page.versions:
                if not meta.is_delete_marker:
                    yield meta
            if not page.is_truncated or not page.next_key_marker:
                return
            key_marker = page.next_key_marker
            version_marker = page.next_version_id_marker or ""

    async def _uploads(self, bucket: str) -> AsyncIterator[UploadMeta]:
        key_marker, id_marker = "", ""
        while True:
            uploads, truncated = await self.store.list_uploads(
                bucket,
                prefix=self.opts.prefix,
                key_marker=key_marker,
                upload_id_marker=id_marker,
                max_uploads=PAGE,
            )
            for upload in uploads:
                yield upload
            if not truncated or not uploads:
                return
            key_marker, id_marker = uploads[-1].key, uploads[-1].upload_id

    async def _count(self, buckets: list[str]) -> tuple[int, int]:
        """Objects and bytes still to do (the ETA's denominator): index listings only."""
        total = size = 0
        for bucket in buckets:
            state = self.checkpoint.bucket(bucket)
            if not state.objects_done:
                async for meta in self._objects(bucket, state.after):
                    total += 1
                    size += meta.size
            if not state.uploads_done:
                async for _ in self._uploads(bucket):
                    total += 1
        return total, size

    async def _produce(self, buckets: list[str], queue: asyncio.Queue[Any]) -> None:
        for bucket in buckets:
            state = self.checkpoint.bucket(bucket)
            tracker = self._trackers.setdefault(bucket, _Tracker())
            if not state.objects_done:
                async for meta in self._objects(bucket, state.after):
                    tracker.pending[(meta.key, meta.version_label)] = False
                    tracker.last_key = meta.key
                    await queue.put(("object", meta))
            tracker.listed = True
            if not state.uploads_done:
                async for upload in self._uploads(bucket):
                    tracker.uploads_pending += 1
                    await queue.put(("upload", upload))
            tracker.uploads_listed = True
            self._settle(bucket)
        for _ in range(self.opts.concurrency):
            await queue.put(None)

    def _settle(self, bucket: str, done: tuple[str, str] | None = None) -> None:
        """Advance the bucket's low-water mark and done flags after an item finished: past a
        key only once all its versions are done (none pending, a later key produced, or the
        listing finished), since a resume continues after every version of that key."""
        tracker, state = self._trackers[bucket], self.checkpoint.bucket(bucket)
        if done is not None:
            tracker.pending[done] = True
        while tracker.pending:
            first = next(iter(tracker.pending))
            if not tracker.pending[first]:
                break
            del tracker.pending[first]
            following = next(iter(tracker.pending), None)
            if following is not None and following[0] == first[0]:
                continue
            if following is None and not tracker.listed and tracker.last_key == first[0]:
                continue
            state.after = first[0]
        if tracker.listed and not tracker.pending:
            state.objects_done = True
        if tracker.uploads_listed and tracker.uploads_pending == 0:
            state.uploads_done = True
        self.checkpoint.save()

    async def _attempt(self, kind: str, item: Any) -> Outcome:
        """One item, retrying KMS outages with backoff; any other exception is a failure."""
        delay = self.opts.retry_delay
        for attempt in range(self.opts.retries + 1):
            await self.limiter.acquire()
            try:
                if kind == "object":
                    return await self.job.on_object(item)
                return await self.job.on_upload(item)
            except KMSUnavailableError as exc:
                if attempt == self.opts.retries:
                    return Outcome("failed", error=f"KMS unavailable: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except JobAborted:
                raise
            except Exception as exc:  # one bad object must not end the walk
                return Outcome("failed", error=f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable")

    async def _work(self, queue: asyncio.Queue[Any]) -> None:
        while (entry := await queue.get()) is not None:
            kind, item = entry
            outcome = await self._attempt(kind, item)
            size = item.size if kind == "object" else 0
            name = _item_name(kind, item)
            self._record(item.bucket, name, outcome, size)
            if kind == "object":
                self._settle(item.bucket, (item.key, item.version_label))
            else:
                self._trackers[item.bucket].uploads_pending -= 1
                self._settle(item.bucket)

    def _record(self, bucket: str, key: str, outcome: Outcome, size: int) -> None:
        self.metrics.count(outcome.result, size)
        if outcome.error is not None:
            self.failed += 1
            if len(self.failures) < MAX_LISTED_FAILURES:
                self.failures.append({"bucket": bucket, "key": key, "error": outcome.error})
            self.reporter.item(bucket, key, "failed", error=outcome.error, **outcome.fields)
        elif outcome.changed:
            self.audit.record(bucket, key, result=outcome.result, **outcome.fields)
            self.reporter.item(bucket, key, outcome.result, **outcome.fields)
        self.reporter.advance(size)
        self.metrics.write()

    async def run(self) -> dict[str, Any]:
        """Walk everything (from the checkpoint on); the summary document."""
        buckets = await self._buckets()
        total, size = await self._count(buckets)
        self.reporter.start(total, size, resumed=self.checkpoint.resumed, **self.job.params())
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.opts.concurrency * 2)
        try:
            # a TaskGroup: if a worker dies (say the checkpoint disk is full), the producer
            # and the other workers are cancelled instead of waiting on a full queue forever
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(buckets, queue))
                for _ in range(max(1, self.opts.concurrency)):
                    group.create_task(self._work(queue))
        except BaseExceptionGroup as group_exc:
            raise group_exc.exceptions[0] from None
        finally:
            self.checkpoint.save(force=True)
        summary = {
            "seconds": round(time.monotonic() - self.reporter.started, 3),
            "objects": self.reporter.done,
            "bytes": self.reporter.bytes,
            "failed": self.failed,
            "resumed": self.checkpoint.resumed,
            "results": dict(self.metrics.results),
            **self.job.summary(self.failed),
            "failures": self.failures,
        }
        self.metrics.write(finished=True)
        self.checkpoint.remove()
        self.reporter.finish(summary)
        return summary
