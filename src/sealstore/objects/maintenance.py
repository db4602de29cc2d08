"""Per-object key maintenance for `sealstore admin`: re-wrap a sealed data key, verify an object.

The admin tools walk the store; what they do to ONE object lives here, in the object layer,
because it combines the KMS, the sealing format and storage (the rule of `objects/`). Each
operation is safe against live traffic:

* `rewrap_object` changes only the stored KMS ciphertext of the data key (transit ``rewrap``:
  the data key itself never leaves the KMS), so the sealed object key, the ETag seal and
  every data byte stay valid and untouched. The new entry is published with the store's
  compare-and-swap `update_internal`: a client PUT that replaced the object meanwhile wins,
  and readers see the old ciphertext (still decryptable) or the new one, never a mix.
* `check_object` opens the key under the current KMS and, when deep, decrypts every byte and
  compares the plaintext MD5s with the stored ETags and the sealed ETag. Every opened key also
  checks the authenticated layout entry (`objects/layout.py`); legacy objects without one are
  counted as ``legacy``, not failed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sealstore.crypto import dare, keys
from sealstore.kms.base import KMSError, RewrappingKMS
from sealstore.kms.vault import ciphertext_version
from sealstore.objects import layout as layout_binding
from sealstore.objects import metadata as md
from sealstore.objects import sealing
from sealstore.objects.reading import decrypt_range
from sealstore.storage.base import NoSuchKey, NoSuchVersion, ObjectChanged, ObjectMeta, UploadMeta
from sealstore.storage.contract import Store

if TYPE_CHECKING:
    from sealstore.kms.base import KMS


class LayoutMismatch(Exception):
    """The authenticated layout entry disagrees with the index (raised by `LAYOUT_CHECK`)."""


def _layout_check(meta: ObjectMeta, oek: bytes) -> str:
    """`layout.verify_layout` as ``(meta, oek) -> "verified" | "legacy" | "unencrypted"``,
    raising `LayoutMismatch` for an object the server would refuse to serve."""
    status = layout_binding.verify_layout(meta, oek)
    if not status.readable:
        raise LayoutMismatch(status.reason or status.state.value)
    return str(status.state.value)


# The hook `check_object` calls with every opened object key; tests may replace it.
LAYOUT_CHECK: Callable[[ObjectMeta, bytes], str] | None = _layout_check


@dataclass(frozen=True)
class SealedDataKey:
    """Where an object's data key is sealed: KMS key id, ciphertext, context, version."""

    key_id: str
    ciphertext: bytes
    context: dict[str, str]
    version: int | None  # transit key version (``vault:vN:``); None for other KMS kinds
    kms_kind: str | None


@dataclass(frozen=True)
class RewrapResult:
    """What `rewrap_object` did: ``rewrapped``, ``current`` (nothing to do), ``gone`` (the
    object was deleted meanwhile) or ``unencrypted``; versions before and after."""

    action: str
    from_version: int | None = None
    to_version: int | None = None


def sealed_data_key(internal: dict[str, str], bucket: str, key: str) -> SealedDataKey | None:
    """The KMS-sealed data key of an SSE-S3/SSE-KMS object or upload (None: not KMS-sealed).

    Raises ``SSEMetadataError`` for malformed entries."""
    if md.sse_kind(internal) not in (md.DOMAIN_SSE_S3, md.DOMAIN_SSE_KMS):
        return None
    key_id = md.ci_get(internal, md.META_S3_KMS_KEY_ID)
    if key_id is None:
        raise md.SSEMetadataError(f"missing encryption metadata entry {md.META_S3_KMS_KEY_ID}")
    ciphertext = md.b64_entry(internal, md.META_S3_KMS_SEALED_KEY, None)
    if md.is_sse_s3(internal):
        ctx = md.object_context(bucket, key)
    else:
        ctx = md.kms_context(bucket, key, md.stored_client_context(internal))
    return SealedDataKey(
        key_id=key_id,
        ciphertext=ciphertext,
        context=ctx,
        version=ciphertext_version(ciphertext),
        kms_kind=md.ci_get(internal, md.META_KMS_KIND),
    )


def _with_ciphertext(internal: dict[str, str], ciphertext: bytes) -> dict[str, str]:
    """``internal`` with the KMS ciphertext entry replaced (its stored name kept)."""
    out = dict(internal)
    name = next((k for k in out if k.lower() == md.META_S3_KMS_SEALED_KEY.lower()), None)
    out[name or md.META_S3_KMS_SEALED_KEY] = base64.b64encode(ciphertext).decode()
    return out


async def _rewrapped(
    kms: RewrappingKMS,
    internal: dict[str, str],
    bucket: str,
    key: str,
    target: int | None,
    dry_run: bool,
) -> tuple[RewrapResult, dict[str, str] | None]:
    """(result, new internal entries or None when nothing changes); a dry run with a known
    ``target`` makes no KMS call and answers ``would-rewrap``."""
    sealed = sealed_data_key(internal, bucket, key)
    if sealed is None:
        return RewrapResult("unencrypted"), None
    if sealed.kms_kind is not None and sealed.kms_kind != kms.kind:
        raise KMSError(f"sealed by a {sealed.kms_kind} KMS but this tool uses {kms.kind}")
    if target is not None and sealed.version is not None and sealed.version >= target:
        return RewrapResult("current", sealed.version, sealed.version), None
    if dry_run and target is not None:
        return RewrapResult("would-rewrap", sealed.version, target), None
    fresh = await kms.rewrap_key(sealed.key_id, sealed.ciphertext, sealed.context)
    new_version = ciphertext_version(fresh)
    if new_version is not None and new_version == sealed.version:
        return RewrapResult("current", sealed.version, new_version), None
    if dry_run:
        return RewrapResult("would-rewrap", sealed.version, new_version), None
    return RewrapResult("rewrapped", sealed.version, new_version), _with_ciphertext(internal, fresh)


async def rewrap_object(
    store: Store, kms: RewrappingKMS, meta: ObjectMeta, target: int | None, *, dry_run: bool
) -> RewrapResult:
    """Re-wrap the data key of ``meta`` to the newest key version (``target``: skip objects
    already at or above it without a KMS call; None: ask the KMS every time).

    A concurrent replace makes the compare-and-swap fail; the object is then read again and
    handled once more (the new one is normally sealed at the newest version already)."""
    for _ in range(3):
        result, internal = await _rewrapped(
            kms, meta.internal, meta.bucket, meta.key, target, dry_run
        )
        if internal is None:
            return result
        try:
            await store.update_internal(meta, internal)
            return result
        except ObjectChanged:
            try:
                meta = await store.head(meta.bucket, meta.key, meta.version_label)
            except (NoSuchKey, NoSuchVersion):
                return RewrapResult("gone")
    raise ObjectChanged(f"{meta.bucket}/{meta.key} keeps changing; try again later")


async def rewrap_upload(
    store: Store, kms: RewrappingKMS, upload: UploadMeta, target: int | None, *, dry_run: bool
) -> RewrapResult:
    """`rewrap_object` for a pending multipart upload's sealed key (its parts are sealed by
    keys derived from it, so they need nothing)."""
    result, internal = await _rewrapped(
        kms, upload.meta.internal, upload.bucket, upload.key, target, dry_run
    )
    if internal is None:
        return result
    try:
        await store.update_upload_internal(upload, internal)
    except ObjectChanged:
        return RewrapResult("gone")  # completed or aborted meanwhile; the object is walked
    return result


@dataclass(frozen=True)
class Check:
    """The verdict of `check_object`: ``problem`` None means fine."""

    problem: str | None
    version: int | None = None
    layout: str = "skipped"


async def _md5_of(store: Store, meta: ObjectMeta, oek: bytes | None, offset: int, n: int) -> str:
    """Plaintext MD5 of bytes ``[offset, offset+n)`` (decrypting when ``oek``), streamed."""
    digest = hashlib.md5(usedforsecurity=False)
    if oek is None:
        source = store.read(meta, offset, n)
    else:
        source = decrypt_range(store, meta, oek, offset, n)
    async for chunk in source:
        digest.update(chunk)
    return digest.hexdigest()


async def _deep(store: Store, meta: ObjectMeta, oek: bytes | None) -> str | None:
    """Decrypt everything and compare with the stored checksums; the problem or None."""
    if meta.parts:
        offset = 0
        for part in meta.parts:
            got = await _md5_of(store, meta, oek, offset, part.size)
            if got != part.etag.strip('"').lower():
                return f"part {part.number} checksum mismatch (MD5 {got} != {part.etag})"
            offset += part.size
        return None
    got = await _md5_of(store, meta, oek, 0, meta.size)
    if got != meta.etag.lower():
        return f"checksum mismatch (MD5 {got} != ETag {meta.etag})"
    sealed_etag = md.ci_get(meta.internal, md.META_SEALED_ETAG)
    if oek is not None and sealed_etag and sealing.unseal_etag_hex(oek, sealed_etag) != got:
        return "sealed ETag does not match the plaintext MD5"
    return None


async def check_object(store: Store, kms: KMS | None, meta: ObjectMeta, *, deep: bool) -> Check:
    """Does ``meta``'s key unseal under ``kms`` (and, if ``deep``, does every byte decrypt to
    the stored checksums)? Problems are returned, never raised (KMS outages excepted:
    ``KMSUnavailableError`` propagates so the caller can retry instead of reporting)."""
    from sealstore.kms.base import KMSUnavailableError

    kind = md.sse_kind(meta.internal)
    version = None
    oek = None
    try:
        if kind == md.DOMAIN_SSE_C:
            return Check(None, None, "customer-key")  # SSE-C: only the client's key opens it
        if kind is not None:
            if kms is None:
                return Check("encrypted, but no KMS is configured")
            sealed = sealed_data_key(meta.internal, meta.bucket, meta.key)
            version = sealed.version if sealed else None
            oek = await sealing.open_object_key(kms, meta.internal, meta.bucket, meta.key)
        layout = "skipped"
        if LAYOUT_CHECK is not None and oek is not None:
            layout = LAYOUT_CHECK(meta, oek)  # metadata only: cheap, also without --deep
        if deep:
            problem = await _deep(store, meta, oek)
            if problem is not None:
                return Check(problem, version, layout)
        return Check(None, version, layout)
    except KMSUnavailableError:
        raise
    except KMSError as exc:
        return Check(f"key does not unseal: {exc}", version)
    except keys.KeyMismatchError as exc:
        return Check(f"sealed key does not open for this path: {exc}", version)
    except md.SSEMetadataError as exc:
        return Check(f"encryption metadata: {exc}", version)
    except dare.DareError as exc:
        return Check(f"data does not decrypt (tampered or truncated): {exc}", version)
    except LayoutMismatch as exc:
        return Check(f"authenticated layout mismatch: {exc}", version, "mismatch")
    except NoSuchKey:
        return Check(None, version, "gone")


async def check_upload(kms: KMS | None, upload: UploadMeta) -> Check:
    """Does a pending upload's sealed key unseal under ``kms``?"""
    meta = replace(upload.meta, bucket=upload.bucket, key=upload.key)
    if not md.is_encrypted(meta.internal) or md.sse_kind(meta.internal) == md.DOMAIN_SSE_C:
        return Check(None)  # plaintext, or SSE-C: only the client's key opens it
    if kms is None:
        return Check("encrypted upload, but no KMS is configured")
    from sealstore.kms.base import KMSUnavailableError

    sealed = sealed_data_key(meta.internal, meta.bucket, meta.key)
    try:
        await sealing.open_object_key(kms, meta.internal, meta.bucket, meta.key)
    except KMSUnavailableError:
        raise
    except (KMSError, keys.KeyMismatchError, md.SSEMetadataError) as exc:
        return Check(f"upload key does not unseal: {exc}", sealed.version if sealed else None)
    return Check(None, sealed.version if sealed else None)
