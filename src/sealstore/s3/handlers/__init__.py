"""S3 operation handlers, one module per operation family.

Every handler has the signature ``async def handler(req: S3Request) -> web.StreamResponse``;
``s3/routing.py`` maps operation names to them (``ROUTES``).
"""
