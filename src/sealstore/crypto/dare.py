"""DARE 2.0 (minio/sio) authenticated encryption streams.

Every byte MinIO writes for an encrypted object, and every sealed key, is a DARE stream: a series
of packages ``header(16) || AEAD ciphertext || tag(16)`` with at most 64 KiB of payload each. The
package header is the AEAD's associated data, and the per-package nonce mixes the stream nonce with
a sequence number, so packages cannot be reordered, dropped, duplicated or truncated without the
reader noticing. Reproducing the format exactly is what lets objects written here be read by MinIO
and the other way round.

The encryptor always writes AES-256-GCM; the decryptor also accepts ChaCha20-Poly1305, which MinIO
writes on CPUs without AES-NI (e.g. arm64), and DARE 1.0 packages, which legacy SSE-C sealed keys
use. Both classes are incremental and hold at most one package plus the caller's chunk, so objects
of any size stream through constant memory.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

PAYLOAD_SIZE = 65536
OVERHEAD = 32
PACKAGE_SIZE = PAYLOAD_SIZE + OVERHEAD
HEADER_SIZE = 16
TAG_SIZE = 16
NONCE_SIZE = 12
KEY_SIZE = 32

VERSION_10 = 0x10
VERSION_20 = 0x20
CIPHER_AES_256_GCM = 0x00
CIPHER_CHACHA20_POLY1305 = 0x01

_FINAL_FLAG = 0x80
_MAX_PACKAGES = 1 << 32


class DareError(Exception):
    """A DARE stream is malformed or failed authentication (MinIO reports "object tampered")."""


def encrypted_size(n: int) -> int:
    """Return the DARE 2.0 ciphertext size for ``n`` plaintext bytes (sio ``EncryptedSize``)."""
    if n < 0:
        raise ValueError("size must not be negative")
    full, rest = divmod(n, PAYLOAD_SIZE)
    return full * PACKAGE_SIZE + (rest + OVERHEAD if rest else 0)


def decrypted_size(m: int) -> int:
    """Return the plaintext size of an ``m``-byte DARE 2.0 stream (sio ``DecryptedSize``).

    A remainder of 1..32 bytes cannot come from any plaintext, so it means the stored object was
    truncated or tampered with; that is reported as :class:`DareError`, as MinIO does.
    """
    if m < 0:
        raise ValueError("size must not be negative")
    full, rest = divmod(m, PACKAGE_SIZE)
    if 0 < rest <= OVERHEAD:
        raise DareError(f"invalid DARE ciphertext size {m}: object tampered")
    return full * PAYLOAD_SIZE + (rest - OVERHEAD if rest else 0)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"DARE key must be {KEY_SIZE} bytes, got {len(key)}")


def _package_nonce(header: bytes | bytearray | memoryview, seq: int) -> bytes:
    """AEAD nonce of a DARE 2.0 package: header[4:16] with header[12:16] XOR uint32_le(seq)."""
    low = int.from_bytes(header[12:16], "little") ^ seq
    return bytes(header[4:12]) + low.to_bytes(4, "little")


class DareEncryptor:
    """Incremental DARE 2.0 writer (AES-256-GCM, one random 12-byte nonce per stream).

    ``update`` returns only complete non-final packages and always keeps at least one byte back,
    because the last package must carry the final flag: a plaintext whose length is an exact
    multiple of 64 KiB therefore ends with a full-size final package, never an empty one (sio
    reads one byte ahead for the same reason). An empty plaintext encrypts to zero bytes.

    Speed: each call allocates its output once, at its exact size, and every package is sealed
    straight into it (header written in place, ``AESGCM.encrypt_into`` for ciphertext + tag)
    from a view of the caller's data. Only the held-back tail (< 64 KiB + the 1 byte) is ever
    copied; no per-package objects are joined afterwards.
    """

    __slots__ = ("_aead", "_buf", "_done", "_head", "_seq")

    def __init__(self, key: bytes, *, nonce: bytes | None = None) -> None:
        """Create a writer; ``nonce`` (12 bytes) is random unless given (tests, sio Nonce)."""
        _check_key(key)
        if nonce is None:
            nonce = os.urandom(NONCE_SIZE)
        elif len(nonce) != NONCE_SIZE:
            raise ValueError(f"DARE nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
        self._aead = AESGCM(bytes(key))
        # Header template: version, cipher, 2 length bytes (patched per package), nonce.
        self._head = bytearray((VERSION_20, CIPHER_AES_256_GCM, 0, 0)) + bytes(nonce)
        self._head[4] &= 0x7F
        self._buf = bytearray()
        self._seq = 0
        self._done = False

    def _seal_into(
        self, payload: bytes | bytearray | memoryview, dst: memoryview, final: bool
    ) -> None:
        """Seal one package into ``dst`` (exactly ``len(payload) + OVERHEAD`` bytes)."""
        if self._seq >= _MAX_PACKAGES:
            raise DareError("DARE stream too large: more than 2^32 packages")
        head = self._head
        head[2:4] = (len(payload) - 1).to_bytes(2, "little")
        if final:
            head[4] |= _FINAL_FLAG
        dst[:HEADER_SIZE] = head
        self._aead.encrypt_into(
            _package_nonce(head, self._seq), payload, bytes(head[:4]), dst[HEADER_SIZE:]
        )
        self._seq += 1

    def _process(self, data: bytes | bytearray | memoryview, final: bool) -> bytearray:
        """Seal every package ``data`` completes (all of them when ``final``)."""
        if self._done:
            raise ValueError("DareEncryptor already finalized")
        if final:
            self._done = True
        buf = self._buf
        with memoryview(data) as raw:
            view = raw if raw.ndim == 1 and raw.itemsize == 1 else raw.cast("B")
            total = len(buf) + len(view)
            if final:
                count = -(-total // PAYLOAD_SIZE)
                last = total - (count - 1) * PAYLOAD_SIZE if count else 0
            else:
                count = max((total - 1) // PAYLOAD_SIZE, 0)
                last = PAYLOAD_SIZE
            if count == 0:
                buf += view
                return bytearray()
            out = bytearray((count - 1) * PACKAGE_SIZE + last + OVERHEAD)
            with memoryview(out) as dst:
                src = pos = 0
                for i in range(count):
                    is_last = i == count - 1
                    size = last if is_last else PAYLOAD_SIZE
                    if buf:  # only the first package can start with held-back bytes
                        src = size - len(buf)
                        buf += view[:src]
                        payload: bytearray | memoryview = buf
                    else:
                        payload = view[src : src + size]
                        src += size
                    self._seal_into(payload, dst[pos : pos + size + OVERHEAD], final and is_last)
                    pos += size + OVERHEAD
                    if buf:
                        buf.clear()
            if not final:
                buf += view[src:]
        return out

    @property
    def nonce(self) -> bytes:
        """The stream nonce in every header (final flag clear): what identifies this stream
        among all streams under the same key (the object layout binds it)."""
        return bytes((self._head[4] & 0x7F,)) + bytes(self._head[5:16])

    def update(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Consume plaintext; return the whole packages that are ready (possibly empty)."""
        return self._process(data, final=False)

    def finalize(self, data: bytes | bytearray | memoryview = b"") -> bytearray:
        """Consume the last ``data`` (optional) and return every remaining package, the last
        one final-flagged, in one buffer; empty for an empty stream.

        ``finalize(data)`` equals ``update(data) + finalize()`` without joining two buffers.
        """
        return self._process(data, final=True)


class DareDecryptor:
    """Incremental DARE reader: DARE 2.0 (AES-256-GCM or ChaCha20-Poly1305) and legacy DARE 1.0.

    It performs every check of sio's reader and releases plaintext only after the package's tag
    verified: version and cipher constant across the stream, declared length consistent, every
    non-final package full, stream nonce constant (compared in constant time), sequence numbers
    consecutive from ``start_seq`` (a range read starts mid-stream), no data after the final
    package, and no end of input before it.
    """

    __slots__ = (
        "_aead",
        "_buf",
        "_cipher",
        "_expect",
        "_final",
        "_key",
        "_ref_nonce",
        "_seen",
        "_seq",
        "_short_seen",
        "_version",
    )

    def __init__(self, key: bytes, *, start_seq: int = 0, nonce: bytes | None = None) -> None:
        """Create a reader expecting the first package to carry sequence number ``start_seq``
        and, when ``nonce`` is given (DARE 2.0, final flag clear), exactly that stream nonce:
        a stream written again under the same key (a re-uploaded part) is then refused."""
        _check_key(key)
        if not 0 <= start_seq < _MAX_PACKAGES:
            raise ValueError("start_seq out of range")
        if nonce is not None and len(nonce) != NONCE_SIZE:
            raise ValueError(f"DARE nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
        self._expect = nonce
        self._key = bytes(key)
        self._seq = start_seq
        self._buf = bytearray()
        self._aead: AESGCM | ChaCha20Poly1305 | None = None
        self._cipher = -1
        self._version = -1
        self._ref_nonce = b""
        self._final = False
        self._seen = False
        self._short_seen = False

    def _open(self, pkg: memoryview) -> bytes:
        header = bytes(pkg[:HEADER_SIZE])
        version, cipher = header[0], header[1]
        if self._aead is None:
            if version not in (VERSION_20, VERSION_10):
                raise DareError(f"unsupported DARE version 0x{version:02x}")
            if cipher == CIPHER_AES_256_GCM:
                self._aead = AESGCM(self._key)
            elif cipher == CIPHER_CHACHA20_POLY1305:
                self._aead = ChaCha20Poly1305(self._key)
            else:
                raise DareError(f"unsupported DARE cipher suite 0x{cipher:02x}")
            self._version, self._cipher = version, cipher
            self._ref_nonce = header[4:16] if version == VERSION_20 else header[8:16]
            if self._expect is not None:
                seen = bytes((header[4] & 0x7F,)) + header[5:16]
                if version != VERSION_20 or not hmac.compare_digest(seen, self._expect):
                    raise DareError("DARE stream nonce differs from the bound one: stream replaced")
        elif version != self._version:
            raise DareError("DARE version changed within the stream")
        elif cipher != self._cipher:
            raise DareError("DARE cipher suite changed within the stream")
        if self._seq >= _MAX_PACKAGES:
            raise DareError("DARE sequence number overflow")
        if version == VERSION_20:
            final = bool(header[4] & _FINAL_FLAG)
            ref = self._ref_nonce
            if final:
                ref = bytes((ref[0] | _FINAL_FLAG,)) + ref[1:]
            if not hmac.compare_digest(header[4:16], ref):
                raise DareError("DARE nonce mismatch: package from another stream")
            nonce = _package_nonce(header, self._seq)
        else:
            final = False
            if int.from_bytes(header[4:8], "little") != self._seq:
                raise DareError("DARE 1.0 sequence number mismatch")
            if not hmac.compare_digest(header[8:16], self._ref_nonce):
                raise DareError("DARE 1.0 nonce mismatch: package from another stream")
            nonce = header[4:16]
        try:
            plain = self._aead.decrypt(nonce, pkg[HEADER_SIZE:], header[:4])
        except InvalidTag:
            raise DareError("DARE package authentication failed: object tampered") from None
        self._seq += 1
        if final:
            self._final = True
        return plain

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Consume ciphertext; return the plaintext of every complete, verified package."""
        if self._final and len(data):
            raise DareError("unexpected data after the final DARE package")
        buf = self._buf
        buf += data
        if len(buf):
            self._seen = True
        out: list[bytes] = []
        pos = 0
        view = memoryview(buf)
        try:
            while len(buf) - pos >= HEADER_SIZE:
                if self._final:
                    raise DareError("unexpected data after the final DARE package")
                if self._short_seen:
                    raise DareError("unexpected data after a short DARE 1.0 package")
                length = int.from_bytes(view[pos + 2 : pos + 4], "little") + 1
                end = pos + HEADER_SIZE + length + TAG_SIZE
                if end > len(buf):
                    break
                plain = self._open(view[pos:end])
                if length != PAYLOAD_SIZE:
                    if self._version == VERSION_20 and not self._final:
                        raise DareError("non-final DARE package is not full: object tampered")
                    if self._version == VERSION_10:
                        self._short_seen = True
                out.append(plain)
                pos = end
        finally:
            view.release()
        if self._final and pos < len(buf):
            raise DareError("unexpected data after the final DARE package")
        del buf[:pos]
        return b"".join(out)

    def finalize(self) -> None:
        """Check that the stream ended properly; raise ``DareError("unexpected EOF")`` otherwise.

        A completely empty input is accepted: an empty object is stored as zero bytes. DARE 1.0
        has no final flag, so for it only leftover partial bytes are an error.
        """
        if self._buf:
            raise DareError("unexpected EOF: incomplete DARE package")
        if self._seen and self._version == VERSION_20 and not self._final:
            raise DareError("unexpected EOF: DARE stream ended before its final package")

    @property
    def finished(self) -> bool:
        """True once the final package has been authenticated."""
        return self._final


def encrypt(key: bytes, plaintext: bytes, *, nonce: bytes | None = None) -> bytes:
    """Encrypt a small in-memory value (sealed keys, ETags) as one DARE 2.0 stream."""
    return bytes(DareEncryptor(key, nonce=nonce).finalize(plaintext))


def decrypt(key: bytes, ciphertext: bytes) -> bytes:
    """Decrypt and fully verify a small in-memory DARE stream (2.0, or 1.0 for legacy keys)."""
    dec = DareDecryptor(key)
    plain = dec.update(ciphertext)
    dec.finalize()
    return plain
