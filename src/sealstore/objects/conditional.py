"""Conditional writes and retried completions: the object-service side of both.

Conditional writes (``If-None-Match: *``, ``If-Match``): S3 answers 412 PreconditionFailed when
the condition is already false (404 NoSuchKey for If-Match on a missing key), and 409
ConditionalRequestConflict when a conflicting write lands while the request is under way. So
the condition is checked twice: `precheck` before any byte is read (the 412/404 answers), and
again by the store inside the publishing transaction (`storage.conditions`), whose
``ObjectChanged`` is the 409. Only the second check makes it safe: two creators racing past the
first cannot both publish.

Retried completions: clients retry CompleteMultipartUpload after a timeout, when the first
attempt may have succeeded, and S3 then answers 200 with the same result. The upload is gone by
then, so completion records the upload id in the object's internal entries (`UPLOAD_ID`, not
bound by the layout tag, which covers size, ETag and parts) and `completed_from` recognises a
repeat: the key's current object came from that upload with exactly the listed parts.
"""

from __future__ import annotations

from sealstore.objects.errors import ObjectError
from sealstore.storage.base import NoSuchKey, ObjectMeta, normalize_etag
from sealstore.storage.conditions import WriteCondition
from sealstore.storage.contract import Store

UPLOAD_ID = "X-Sealstore-Internal-Upload-Id"
Condition = WriteCondition | None  # what `ObjectService.put` / `complete` take


class PreconditionFailed(ObjectError):
    """A conditional write's condition is false for the key's current object (412)."""

    code = "PreconditionFailed"


async def precheck(store: Store, bucket: str, key: str, condition: WriteCondition | None) -> None:
    """PreconditionFailed (or NoSuchKey for an ETag condition on a missing key) when
    ``condition`` does not hold now; nothing to check without one."""
    if condition is None:
        return
    try:
        current: str | None = (await store.head(bucket, key)).etag
    except NoSuchKey:
        current = None
    if condition.holds(current):
        return
    if current is None and condition.etag is not None:
        raise NoSuchKey(key)
    raise PreconditionFailed()


async def completed_from(
    store: Store, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
) -> ObjectMeta | None:
    """The key's current object if upload ``upload_id`` completed into it with exactly
    ``parts`` (``(number, etag)``, as listed by the retried request), else None."""
    try:
        meta = await store.head(bucket, key)
    except NoSuchKey:
        return None
    if not upload_id or meta.internal.get(UPLOAD_ID) != upload_id:
        return None
    listed = [(n, normalize_etag(e)) for n, e in parts]
    stored = [(p.number, normalize_etag(p.etag)) for p in meta.parts]
    return meta if listed == stored else None
