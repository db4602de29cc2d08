"""DARE 2.0 stream tests: sizes, chunking, hand-derived vectors and every tamper case."""

from __future__ import annotations

import os
import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from sealstore.crypto import dare
from sealstore.crypto.dare import (
    PACKAGE_SIZE,
    PAYLOAD_SIZE,
    DareDecryptor,
    DareEncryptor,
    DareError,
    decrypted_size,
    encrypted_size,
)

KEY = bytes(range(32))
NONCE = bytes.fromhex("0123456789abcdef01234567")
SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 3 * 65536 + 7]


def _stream_encrypt(key: bytes, data: bytes, rng: random.Random) -> bytes:
    enc = DareEncryptor(key)
    out = bytearray()
    pos = 0
    while pos < len(data):
        n = rng.choice([1, 7, 4096, 65535, 65536, 65537, 200_000])
        chunk = enc.update(data[pos : pos + n])
        # update only ever returns whole, non-final packages
        assert len(chunk) % PACKAGE_SIZE == 0
        out += chunk
        pos += n
    out += enc.finalize()
    return bytes(out)


def _stream_decrypt(key: bytes, data: bytes, rng: random.Random, start_seq: int = 0) -> bytes:
    dec = DareDecryptor(key, start_seq=start_seq)
    out = bytearray()
    pos = 0
    while pos < len(data):
        n = rng.choice([1, 15, 16, 17, 1000, 65568, 70000])
        out += dec.update(data[pos : pos + n])
        pos += n
    dec.finalize()
    return bytes(out)


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_sizes(size: int) -> None:
    plain = os.urandom(size)
    ct = dare.encrypt(KEY, plain)
    assert len(ct) == encrypted_size(size)
    assert decrypted_size(len(ct)) == size
    assert dare.decrypt(KEY, ct) == plain


@pytest.mark.parametrize("seed", range(8))
def test_round_trip_random_chunking(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.choice([*SIZES, rng.randrange(0, 5 * PAYLOAD_SIZE)])
    plain = rng.randbytes(size)
    ct = _stream_encrypt(KEY, plain, rng)
    assert len(ct) == encrypted_size(size)
    assert _stream_decrypt(KEY, ct, rng) == plain


def test_empty_plaintext_is_zero_bytes() -> None:
    enc = DareEncryptor(KEY)
    assert enc.update(b"") == b""
    assert enc.finalize() == b""
    assert dare.decrypt(KEY, b"") == b""


def test_exact_multiple_ends_with_full_final_package() -> None:
    plain = os.urandom(2 * PAYLOAD_SIZE)
    enc = DareEncryptor(KEY, nonce=NONCE)
    first = enc.update(plain)
    assert len(first) == PACKAGE_SIZE  # one byte-ahead: second package held back
    last = enc.finalize()
    assert len(last) == PACKAGE_SIZE
    assert last[4] & 0x80 and not first[4] & 0x80


def test_size_math() -> None:
    assert encrypted_size(0) == 0
    assert encrypted_size(1) == 33
    assert encrypted_size(65536) == 65568
    assert encrypted_size(65537) == 65568 + 33
    assert decrypted_size(0) == 0
    assert decrypted_size(65568 + 33) == 65537
    for bad in (1, 32, 65568 + 1, 65568 + 32):
        with pytest.raises(DareError):
            decrypted_size(bad)
    for n in range(0, 3 * PAYLOAD_SIZE, 4099):
        assert decrypted_size(encrypted_size(n)) == n


def test_vector_header_and_aead_by_hand() -> None:
    """Derive the expected bytes from the spec with the raw AEAD, independent of DareEncryptor."""
    plain = bytes(range(256)) * 300  # 76800 bytes: one full package + 11264-byte final package
    ct = dare.encrypt(KEY, plain, nonce=NONCE)
    assert len(ct) == PACKAGE_SIZE + 16 + 11264 + 16
    h0 = ct[:16]
    assert h0[0] == 0x20 and h0[1] == 0x00
    assert int.from_bytes(h0[2:4], "little") == PAYLOAD_SIZE - 1
    assert h0[4] == NONCE[0] & 0x7F and h0[5:16] == NONCE[1:]
    h1 = ct[PACKAGE_SIZE : PACKAGE_SIZE + 16]
    assert h1[0:2] == b"\x20\x00"
    assert int.from_bytes(h1[2:4], "little") == 11264 - 1
    assert h1[4] == NONCE[0] | 0x80 and h1[5:16] == NONCE[1:]
    aes = AESGCM(KEY)
    for seq, (start, header) in enumerate([(0, h0), (PACKAGE_SIZE, h1)]):
        tail = int.from_bytes(header[12:16], "little") ^ seq
        nonce = header[4:12] + tail.to_bytes(4, "little")
        length = int.from_bytes(header[2:4], "little") + 1
        body = ct[start + 16 : start + 16 + length + 16]
        got = aes.decrypt(nonce, body, header[:4])
        assert got == plain[seq * PAYLOAD_SIZE : seq * PAYLOAD_SIZE + length]


def test_vector_hand_built_chacha_stream_decodes() -> None:
    """MinIO on arm64 writes ChaCha20-Poly1305 packages; build one by hand and read it."""
    aead = ChaCha20Poly1305(KEY)
    payloads = [os.urandom(PAYLOAD_SIZE), b"tail bytes"]
    out = b""
    for seq, payload in enumerate(payloads):
        final = seq == len(payloads) - 1
        first = NONCE[0] | 0x80 if final else NONCE[0] & 0x7F
        header = b"\x20\x01" + (len(payload) - 1).to_bytes(2, "little") + bytes([first])
        header += NONCE[1:]
        tail = int.from_bytes(header[12:16], "little") ^ seq
        nonce = header[4:12] + tail.to_bytes(4, "little")
        out += header + aead.encrypt(nonce, payload, header[:4])
    assert dare.decrypt(KEY, out) == b"".join(payloads)
    # and a flipped byte is still detected with the other cipher
    bad = bytearray(out)
    bad[100] ^= 1
    with pytest.raises(DareError):
        dare.decrypt(KEY, bytes(bad))


def test_dare10_legacy_stream_decodes() -> None:
    aes = AESGCM(KEY)
    rand = os.urandom(8)
    out = b""
    for seq, payload in enumerate([os.urandom(PAYLOAD_SIZE), b"abc"]):
        header = b"\x10\x00" + (len(payload) - 1).to_bytes(2, "little")
        header += seq.to_bytes(4, "little") + rand
        out += header + aes.encrypt(header[4:16], payload, header[:4])
    assert len(dare.decrypt(KEY, out)) == PAYLOAD_SIZE + 3


def _three_packages() -> tuple[bytes, bytes]:
    plain = os.urandom(2 * PAYLOAD_SIZE + 100)
    return plain, dare.encrypt(KEY, plain)


@pytest.mark.parametrize("where", [0, 1, 3, 4, 15, 16, 5000, PACKAGE_SIZE - 1, -1, -17])
def test_flipped_byte_detected(where: int) -> None:
    _, ct = _three_packages()
    bad = bytearray(ct)
    bad[where] ^= 0x01
    with pytest.raises(DareError):
        dare.decrypt(KEY, bytes(bad))


@pytest.mark.parametrize("cut", [1, 16, 33, 132, PACKAGE_SIZE])
def test_truncation_detected(cut: int) -> None:
    _, ct = _three_packages()
    with pytest.raises(DareError):
        dare.decrypt(KEY, ct[:-cut])


def test_truncation_at_package_boundary_is_unexpected_eof() -> None:
    _, ct = _three_packages()
    dec = DareDecryptor(KEY)
    assert len(dec.update(ct[: 2 * PACKAGE_SIZE])) == 2 * PAYLOAD_SIZE
    with pytest.raises(DareError, match="unexpected EOF"):
        dec.finalize()


def test_reordered_packages_detected() -> None:
    _, ct = _three_packages()
    swapped = ct[PACKAGE_SIZE : 2 * PACKAGE_SIZE] + ct[:PACKAGE_SIZE] + ct[2 * PACKAGE_SIZE :]
    with pytest.raises(DareError):
        dare.decrypt(KEY, swapped)


def test_dropped_middle_package_detected() -> None:
    _, ct = _three_packages()
    with pytest.raises(DareError):
        dare.decrypt(KEY, ct[:PACKAGE_SIZE] + ct[2 * PACKAGE_SIZE :])


def test_package_from_other_stream_detected() -> None:
    _, ct1 = _three_packages()
    _, ct2 = _three_packages()
    with pytest.raises(DareError, match="nonce"):
        dare.decrypt(KEY, ct1[:PACKAGE_SIZE] + ct2[PACKAGE_SIZE:])


@pytest.mark.parametrize("extra", [b"\x00", b"x" * 16, None])
def test_trailing_data_detected(extra: bytes | None) -> None:
    _, ct = _three_packages()
    tail = ct[-133:] if extra is None else extra  # None: replay the final package
    with pytest.raises(DareError, match="after the final"):
        dare.decrypt(KEY, ct + tail)
    dec = DareDecryptor(KEY)
    dec.update(ct)
    with pytest.raises(DareError):
        dec.update(tail)


def test_wrong_key_detected() -> None:
    _, ct = _three_packages()
    with pytest.raises(DareError, match="authentication"):
        dare.decrypt(os.urandom(32), ct)


def test_start_seq_range_read_and_wrong_start_seq() -> None:
    plain, ct = _three_packages()
    dec = DareDecryptor(KEY, start_seq=1)
    out = dec.update(ct[PACKAGE_SIZE:])
    dec.finalize()
    assert out == plain[PAYLOAD_SIZE:]
    with pytest.raises(DareError):
        DareDecryptor(KEY, start_seq=0).update(ct[PACKAGE_SIZE:])
    with pytest.raises(DareError):
        DareDecryptor(KEY, start_seq=2).update(ct)


def test_short_non_final_package_rejected() -> None:
    """A writer that emits a short package without the final flag is not a valid DARE stream."""
    aes = AESGCM(KEY)
    header = b"\x20\x00" + (10 - 1).to_bytes(2, "little") + bytes([NONCE[0] & 0x7F]) + NONCE[1:]
    pkg = header + aes.encrypt(header[4:16], b"0123456789", header[:4])
    with pytest.raises(DareError, match="not full"):
        dare.decrypt(KEY, pkg)


def test_unknown_version_and_cipher_rejected() -> None:
    ct = bytearray(dare.encrypt(KEY, b"hello"))
    for idx, value in ((0, 0x30), (1, 0x07)):
        bad = bytearray(ct)
        bad[idx] = value
        with pytest.raises(DareError, match="unsupported"):
            dare.decrypt(KEY, bytes(bad))


def test_plaintext_only_released_after_tag() -> None:
    """Feeding all but the last byte of a package yields nothing: no unauthenticated output."""
    _, ct = _three_packages()
    dec = DareDecryptor(KEY)
    assert dec.update(ct[: PACKAGE_SIZE - 1]) == b""
    assert len(dec.update(ct[PACKAGE_SIZE - 1 : PACKAGE_SIZE])) == PAYLOAD_SIZE


def test_bad_key_and_nonce_sizes() -> None:
    with pytest.raises(ValueError):
        DareEncryptor(b"short")
    with pytest.raises(ValueError):
        DareEncryptor(KEY, nonce=b"x")
    with pytest.raises(ValueError):
        DareDecryptor(b"short")


@pytest.mark.parametrize("seed", range(6))
def test_any_segmentation_and_finalize_with_data_give_identical_bytes(seed: int) -> None:
    """With a fixed nonce the stream is a pure function of the plaintext: how it is cut into
    update() calls, whether the last piece goes through finalize(data), and whether the input
    is bytes, bytearray or a (non-byte-format) memoryview must not change a single byte."""
    rng = random.Random(seed)
    size = rng.choice([1, PAYLOAD_SIZE, PAYLOAD_SIZE + 1, rng.randrange(0, 6 * PAYLOAD_SIZE)])
    plain = rng.randbytes(size)
    reference = dare.encrypt(KEY, plain, nonce=NONCE)
    enc = DareEncryptor(KEY, nonce=NONCE)
    out = bytearray()
    pos = 0
    while pos < size and rng.random() < 0.8:
        n = rng.choice([1, 100, PAYLOAD_SIZE - 1, PAYLOAD_SIZE, PAYLOAD_SIZE + 1, 300_000])
        piece = plain[pos : pos + n]
        kind = rng.choice(["bytes", "bytearray", "memoryview"])
        if kind == "bytearray":
            out += enc.update(bytearray(piece))
        elif kind == "memoryview" and len(piece) % 4 == 0:
            out += enc.update(memoryview(piece).cast("I"))
        else:
            out += enc.update(piece)
        pos += n
    out += enc.finalize(plain[pos:])
    assert bytes(out) == reference
    assert len(reference) == encrypted_size(size)
    with pytest.raises(ValueError, match="finalized"):
        enc.update(b"x")
    with pytest.raises(ValueError, match="finalized"):
        enc.finalize()


def test_update_does_not_keep_or_alias_the_callers_buffer() -> None:
    data = bytearray(os.urandom(3 * PAYLOAD_SIZE + 5))
    original = bytes(data)
    enc = DareEncryptor(KEY, nonce=NONCE)
    first = enc.update(data)
    data[:] = bytes(len(data))  # the caller reuses its buffer
    data.extend(b"more")  # and may resize it (no export may remain)
    rest = enc.finalize()
    assert dare.decrypt(KEY, bytes(first + rest)) == original
