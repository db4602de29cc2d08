"""Version ids and delete markers at the object service: which id a new write gets, and the
answers S3 gives when a read names a delete marker.

A write's version id is decided before its data is published (it is bound into an encrypted
object's authenticated layout): a fresh id when the bucket's versioning is Enabled, the null
version (None) otherwise. Markers have no data, so reading one is refused as S3 does.
"""

from __future__ import annotations

from sealstore.objects.errors import DeleteMarkerRequested, InvalidRequest
from sealstore.storage.base import ObjectMeta, Versioning, new_version_id


def version_for(state: Versioning) -> str | None:
    """The version id a write into a bucket in ``state`` gets (None: the null version)."""
    return new_version_id() if state is Versioning.ENABLED else None


def readable(meta: ObjectMeta, *, copy_source: bool = False) -> ObjectMeta:
    """``meta`` unless it is a delete marker named by version id: a GET or HEAD of one is
    S3's 405 MethodNotAllowed (with the marker's ``x-amz-delete-marker``, version id and
    ``Last-Modified``), a copy source naming one 400 InvalidRequest."""
    if not meta.is_delete_marker:
        return meta
    if copy_source:
        raise InvalidRequest(
            "The source of a copy request may not specifically refer to a delete marker "
            "by version id."
        )
    raise DeleteMarkerRequested(meta)
