"""sealstore: S3-compatible object storage that encrypts every object (MinIO-compatible SSE-S3).

The package is split so that the security core (``crypto``, ``kms``) stays pure and testable on its
own, while ``s3``/``storage`` build the server on top of it.
"""
