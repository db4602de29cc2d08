"""Binding an encrypted object's layout to its key, and checking it before any byte is read.

`crypto.layout` defines the tag; this module knows where its inputs live in an `ObjectMeta`
(size, ETag, part list, the exact bucket and key) and where the tag is stored: one extra
internal entry, ``X-Sealstore-Internal-Layout``, beside MinIO's (a MinIO reader ignores it,
so the object format stays MinIO's). Objects written before the entry existed, and objects
MinIO wrote, have none: they stay readable and are reported as legacy (a log line, a counter
`legacy_reads`, and `verify_layout` for `sealstore admin verify`).

Besides the tag, every encrypted object must satisfy the DARE size arithmetic (stored size =
``encrypted_size(plaintext size)`` per stream, and sums to the object's sizes), legacy or not:
those checks catch an edited size without any key.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sealstore.crypto import dare
from sealstore.crypto import layout as cl
from sealstore.crypto.keys import is_clean_key
from sealstore.objects import metadata as md
from sealstore.objects.checksum import META_CHECKSUM
from sealstore.objects.errors import ObjectIntegrityError
from sealstore.storage.base import (
    InvalidPart,
    InvalidPartOrder,
    ObjectMeta,
    PartMeta,
    UploadMeta,
    normalize_etag,
)
from sealstore.storage.contract import Store

META_LAYOUT = "X-Sealstore-Internal-Layout"
# Hex of a DARE stream's nonce: in the object's internal entries for a single-part object,
# in each part's for a multipart one; bound by the layout tag, enforced by the decryptor.
META_STREAM_NONCE = "X-Sealstore-Internal-Stream-Nonce"

log = logging.getLogger("sealstore.objects.layout")


class LayoutState(enum.Enum):
    """What `verify_layout` found."""

    VERIFIED = "verified"  # the layout entry authenticates size, ETag and part list
    LEGACY = "legacy"  # encrypted, no layout entry (written before it, or by MinIO)
    UNENCRYPTED = "unencrypted"  # plaintext object: nothing is bound
    MISMATCH = "mismatch"  # the index disagrees with what was bound, or the entry is bad


@dataclass(frozen=True)
class LayoutStatus:
    """The verdict for one object; ``reason`` says what failed (for logs and `admin verify`)."""

    state: LayoutState
    reason: str = ""

    @property
    def readable(self) -> bool:
        """True when the object may be served (verified, legacy or unencrypted)."""
        return self.state is not LayoutState.MISMATCH


def stream_nonce(internal: dict[str, str]) -> bytes:
    """The recorded stream nonce of an object or part (b"" when none or malformed; a
    malformed one then fails the tag, which bound the real one)."""
    raw = internal.get(META_STREAM_NONCE, "")
    try:
        nonce = bytes.fromhex(raw)
    except ValueError:
        return b"\xff"  # never a valid 12-byte nonce: the tag check fails
    return nonce


def nonce_entry(nonce: bytes | None) -> dict[str, str]:
    """The internal entry recording ``nonce`` ({} for an unencrypted stream)."""
    return {} if nonce is None else {META_STREAM_NONCE: nonce.hex()}


def describe(meta: ObjectMeta) -> cl.Layout:
    """The layout the index claims for ``meta``: what a reader would read."""
    if meta.parts:
        streams = tuple(
            cl.Stream(p.number, p.size, stream_nonce(p.internal), p.internal.get(META_CHECKSUM, ""))
            for p in meta.parts
        )
    else:
        streams = (cl.Stream(cl.SINGLE_PART, meta.size, stream_nonce(meta.internal)),)
    return cl.Layout(
        bucket=meta.bucket,
        key=meta.key,
        size=meta.size,
        etag=meta.etag,
        multipart=bool(meta.parts),
        streams=streams,
        checksum=meta.internal.get(META_CHECKSUM, ""),
        version_id=meta.version_id,
    )


def seal_layout(meta: ObjectMeta, oek: bytes) -> str:
    """The layout entry value for a new encrypted object (its final size, ETag and parts)."""
    return cl.seal(oek, describe(meta))


def _structure_problem(meta: ObjectMeta) -> str | None:
    """Why ``meta``'s sizes cannot describe a DARE object, or None (no key needed)."""
    if meta.parts:
        for p in meta.parts:
            if p.size < 0 or p.stored_size != dare.encrypted_size(max(p.size, 0)):
                return f"part {p.number}: stored size {p.stored_size} != DARE size of {p.size}"
        if meta.size != sum(p.size for p in meta.parts):
            return f"size {meta.size} is not the sum of the part sizes"
        if meta.stored_size != sum(p.stored_size for p in meta.parts):
            return f"stored size {meta.stored_size} is not the sum of the parts' stored sizes"
    elif meta.size < 0 or meta.stored_size != dare.encrypted_size(max(meta.size, 0)):
        return f"stored size {meta.stored_size} != DARE size of {meta.size}"
    actual = md.ci_get(meta.internal, md.META_ACTUAL_SIZE)
    if actual is not None and actual != str(meta.size):
        return f"actual-size entry {actual} != size {meta.size}"
    return None


def verify_layout(meta: ObjectMeta, oek: bytes | None) -> LayoutStatus:
    """Check ``meta`` (from the index) against its layout entry under the object key ``oek``.

    ``oek`` is the unsealed object key (None for an unencrypted object). Never raises for a
    bad object: the verdict says what is wrong. This is the function `sealstore admin verify`
    calls per object (after opening the key with the KMS, e.g. `ObjectService.verify`).
    """
    if oek is None or not md.is_encrypted(meta.internal):
        return LayoutStatus(LayoutState.UNENCRYPTED)
    problem = _structure_problem(meta)
    if problem is not None:
        return LayoutStatus(LayoutState.MISMATCH, problem)
    stored = md.ci_get(meta.internal, META_LAYOUT)
    if stored is None:
        return LayoutStatus(LayoutState.LEGACY, "no layout entry (written before it existed)")
    try:
        ok = cl.verify(oek, describe(meta), stored)
    except cl.LayoutError as exc:
        return LayoutStatus(LayoutState.MISMATCH, str(exc))
    if not ok:
        return LayoutStatus(
            LayoutState.MISMATCH,
            "size, ETag or part list (numbers, order, sizes) differ from the bound layout",
        )
    return LayoutStatus(LayoutState.VERIFIED)


class _LegacyCounter:
    """Thread-safe count of legacy objects opened, logging each object once (bounded)."""

    def __init__(self, remember: int = 4096) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._remember = remember

    def record(self, bucket: str, key: str) -> None:
        with self._lock:
            self._count += 1
            first = (bucket, key) not in self._seen
            self._seen[(bucket, key)] = None
            self._seen.move_to_end((bucket, key))
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        if first:
            log.warning(
                "legacy encrypted object without a layout binding",
                extra={"bucket": bucket, "key": key},
            )

    @property
    def count(self) -> int:
        with self._lock:
            return self._count


_LEGACY = _LegacyCounter()


def legacy_reads() -> int:
    """How many opens of legacy (unbound) encrypted objects this process has served."""
    return _LEGACY.count


def require_layout(meta: ObjectMeta, oek: bytes | None) -> LayoutStatus:
    """`verify_layout`, raising ObjectIntegrityError on a mismatch and counting legacy opens;
    what the object service runs before the first byte of every read."""
    status = verify_layout(meta, oek)
    if status.state is LayoutState.MISMATCH:
        raise ObjectIntegrityError(meta.bucket, meta.key, status.reason)
    if status.state is LayoutState.LEGACY:
        _LEGACY.record(meta.bucket, meta.key)
    return status


def legacy_empty(meta: ObjectMeta) -> bool:
    """An empty object without a layout entry whose key MinIO's ``path.Clean`` changes (a
    ``dir/`` folder marker sealed before exact-path binding): the only kind of object the
    service may open with the cleaned path, because it has no plaintext to substitute."""
    return (
        meta.size == 0
        and not meta.parts
        and md.ci_get(meta.internal, META_LAYOUT) is None
        and not is_clean_key(meta.key)
    )


async def chosen_parts(
    store: Store, upload: UploadMeta, parts: list[tuple[int, str]]
) -> list[PartMeta]:
    """The stored parts a CompleteMultipartUpload names, in its order, for binding.

    Raises what the store would (empty list: InvalidPart; order: InvalidPartOrder; missing
    part or other ETag: InvalidPart); the store repeats every check atomically when it
    publishes, so a part replaced in between (a new ETag) is refused, never mis-bound.
    """
    if not parts:
        raise InvalidPart("the part list is empty")
    for (previous, _), (number, _) in itertools.pairwise(parts):
        if number <= previous:
            raise InvalidPartOrder(f"part {number} follows part {previous}")
    stored: dict[int, PartMeta] = {}
    marker = 0
    while True:
        page, more = await store.list_parts(upload, marker=marker, max_parts=1000)
        stored.update((p.number, p) for p in page)
        if not more or not page:
            break
        marker = page[-1].number
    chosen = []
    for number, etag in parts:
        found = stored.get(number)
        if found is None or normalize_etag(found.etag) != normalize_etag(etag):
            raise InvalidPart(f"part {number} with ETag {etag} was not uploaded")
        chosen.append(found)
    return chosen


async def bind_completion(
    store: Store, upload: UploadMeta, parts: list[tuple[int, str]], meta: ObjectMeta, oek: bytes
) -> None:
    """Add the layout entry to ``meta``, the object a completion of ``upload`` will publish
    from the listed parts (sizes and stream nonces from the stored parts)."""
    chosen = await chosen_parts(store, upload, parts)
    bound = dataclasses.replace(meta, parts=chosen, size=sum(p.size for p in chosen))
    meta.internal[META_LAYOUT] = seal_layout(bound, oek)
