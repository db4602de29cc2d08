"""Key management back-ends: HashiCorp Vault/OpenBao transit and the legacy static master key.

Every back-end implements :class:`sealstore.kms.base.KMS`; ``build_kms`` in ``factory`` picks one
from plain configuration values, and ``build_server_kms`` adds what the server wraps around it
(the optional data-key cache in ``cache``, the call/readiness observer in ``health``).
"""
