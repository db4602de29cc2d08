"""Pure cryptography for sealstore: DARE 2.0 streams, object keys, sealing and range math.

Nothing in this package performs I/O or touches asyncio, so it can run inside worker threads and be
unit-tested byte for byte against the MinIO/sio format description.
"""
