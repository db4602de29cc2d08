"""TRANSITIONAL shim: the admin endpoints moved to ``sealstore.s3.admin_api`` and KMS health to
``sealstore.kms.health``.

Only ``mark_kms_failed`` is left, because ``s3/handlers/object.py``'s ``_kms_call`` still
imports it until the object service replaces that helper. It does nothing: the server's KMS is
an ``ObservedKMS`` (``kms.factory.build_server_kms``), which already dropped readiness when the
KMS call raised ``KMSUnavailableError``. Delete this module with ``_kms_call``; the name
``sealstore.admin`` is reserved for the ``sealstore admin`` CLI package.
"""

from __future__ import annotations


def mark_kms_failed(ctx: object, error: str) -> None:
    """No-op (see the module docstring): ``ObservedKMS`` drops readiness itself."""
    del ctx, error
