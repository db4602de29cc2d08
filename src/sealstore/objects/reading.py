"""Reading an object back: stored bytes -> authenticated plaintext of a byte range.

An encrypted object is one DARE stream per multipart part (or one for a single-part object).
A range read decrypts only the packages it touches (crypto.ranges.plan_range, §4.3): each
touched part gives one storage read whose transform is that part's decryptor, so the backend
reads and decrypts each chunk in one worker-thread hop and the event loop never runs AES.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sealstore.crypto import dare, keys, ranges
from sealstore.objects.layout import stream_nonce
from sealstore.storage.base import ObjectMeta
from sealstore.storage.contract import Store


@dataclass(frozen=True)
class StoredPart:
    """One DARE stream of an encrypted object: part number (None = single-part), size and
    the recorded stream nonce (None when none is recorded: legacy objects and parts)."""

    number: int | None
    plain_size: int
    nonce: bytes | None = None


def _nonce(internal: dict[str, str]) -> bytes | None:
    nonce = stream_nonce(internal)
    return nonce if len(nonce) == dare.NONCE_SIZE else None


def stored_parts(meta: ObjectMeta) -> list[StoredPart]:
    """The DARE streams of an encrypted object (one per multipart part, else one)."""
    if meta.parts:
        return [StoredPart(p.number, p.size, _nonce(p.internal)) for p in meta.parts]
    return [StoredPart(None, meta.size, _nonce(meta.internal))]


def _part_key(oek: bytes, part: StoredPart) -> bytes:
    return oek if part.number is None else keys.derive_part_key(oek, part.number)


async def decrypt_range(
    store: Store, meta: ObjectMeta, oek: bytes, offset: int, length: int
) -> AsyncIterator[bytes]:
    """Yield plaintext bytes ``[offset, offset+length)`` of the encrypted object ``meta``.

    Each segment is decrypted from its start sequence number; the stream's final-package
    check runs only when the segment reaches the end of its part (``reaches_end``), since a
    range that stops mid-part legitimately ends without a final package.

    The last batch of every segment is held back until the segment proved complete (its
    final package authenticated where it reaches the part's end, and every byte asked for
    arrived): a stream cut short at a package boundary therefore never delivers its last
    verified-but-unfinished batch, and an object of one batch (~1 MiB of ciphertext) is
    verified whole before the first byte is sent.
    """
    if length <= 0:
        return
    parts = stored_parts(meta)
    for seg in ranges.plan_range([p.plain_size for p in parts], offset, length):
        part = parts[seg.part_index]
        dec = dare.DareDecryptor(_part_key(oek, part), start_seq=seg.start_seq, nonce=part.nonce)
        to_skip = seg.skip
        remaining = seg.take
        held = b""
        async for plain in store.read(
            meta, seg.stored_offset, seg.stored_length, transform=dec.update
        ):
            if to_skip:
                cut = min(to_skip, len(plain))
                plain = plain[cut:]
                to_skip -= cut
            if len(plain) > remaining:
                plain = plain[:remaining]
            remaining -= len(plain)
            if plain:
                if held:
                    yield held
                held = plain
        if seg.reaches_end:
            dec.finalize()  # checks decryptor state only: no AES, fine on the loop
        if remaining:
            raise dare.DareError("stored object is shorter than its metadata says")
        if held:
            yield held


def plaintext(
    store: Store, meta: ObjectMeta, oek: bytes | None, offset: int, length: int
) -> AsyncIterator[bytes]:
    """Plaintext bytes ``[offset, offset+length)`` of an object (decrypting when ``oek``)."""
    if oek is None:
        return store.read(meta, offset, length)
    return decrypt_range(store, meta, oek, offset, length)
