"""The SSE client (``sealstore-client``) and the client-side S3 helpers tests and the bench use.

Nothing in the server imports this package. The client imports only the server's protocol
vocabulary (SigV4 canonicalisation, chunk signatures), so that signing and verification share
one implementation and cannot drift apart.

* :mod:`.cli`: the ``sealstore-client`` / ``sealstore client`` argument parser and commands.
* :mod:`.config`: client inputs (sizes, modes, endpoint, credentials from env or env-file).
* :mod:`.content`: the seeded, regenerable plaintext every round trip uploads.
* :mod:`.endpoint`: boto3 client, the signed KMS status call, one-line error vocabulary.
* :mod:`.roundtrip`: the verified PUT/GET/HEAD/range/multipart checks.
* :mod:`.report`: the record of a round trip and its ``--json`` document.
* :mod:`.scan` and :mod:`.scan_cli`: the at-rest plaintext scan and the ``scan`` command.
* :mod:`.signing`: SigV4 header signing and presigned URLs (tests, bench).
* :mod:`.chunked_encoder`: ``aws-chunked`` body framing (tests).

Kept free of imports so that ``import sealstore.client.signing`` (the bench) does not load the
CLI, and the CLI does not load boto3 until a command needs it.
"""
