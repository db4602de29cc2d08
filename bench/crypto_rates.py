"""Single-core crypto ceilings measured in the same run as the HTTP numbers.

* AES-256-GCM over 64 KiB packages with ``cryptography``: the best a DARE writer can do.
* DARE 2.0 encrypt/decrypt through sealstore's own streaming classes: what the server's
  crypto layer costs before any HTTP, disk or KMS work.
"""

from __future__ import annotations

import os
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealstore.crypto import dare

PACKAGE = 64 * 1024


def _rate(fn, nbytes: int, seconds: float, rounds: int = 3) -> float:
    """Best MiB/s of ``fn`` (``nbytes`` per call) over ``rounds`` windows of ``seconds``.

    The best window is the least disturbed by other work on a shared host.
    """
    fn()  # warm up (allocations, page faults, CPU frequency)
    best = 0.0
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            fn()
            done += nbytes
        best = max(best, done / elapsed / (1 << 20))
    return best


def aes_gcm_ceiling(seconds: float = 0.5) -> float:
    aead = AESGCM(os.urandom(32))
    payload = os.urandom(PACKAGE)
    nonce = os.urandom(12)
    aad = b"\x20\x00\xff\xff"
    chunk = 16

    def run() -> None:
        for _ in range(chunk):
            aead.encrypt(nonce, payload, aad)

    return _rate(run, chunk * PACKAGE, seconds)


def dare_rates(seconds: float = 0.5) -> tuple[float, float]:
    key = os.urandom(32)
    plain = memoryview(os.urandom(16 << 20))
    step = 1 << 20  # the server streams request bodies in chunks of this order

    def enc() -> bytes:
        e = dare.DareEncryptor(key)
        out = [e.update(plain[i : i + step]) for i in range(0, len(plain), step)]
        out.append(e.finalize())
        return b"".join(out)  # one copy, as a writer assembling a file buffer would

    cipher = enc()

    def dec() -> None:
        d = dare.DareDecryptor(key)
        for i in range(0, len(cipher), step):
            d.update(cipher[i : i + step])
        d.finalize()

    return _rate(enc, len(plain), seconds), _rate(dec, len(plain), seconds)
