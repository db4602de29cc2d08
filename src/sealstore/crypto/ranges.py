"""Map a plaintext byte range of an encrypted object onto the stored ciphertext (§4.3).

A range GET must read and decrypt only the DARE packages that overlap the range. Each multipart
part is its own DARE stream (own key, sequence restarting at 0), so the plan is one segment per
touched part: where to read, which sequence number the first package has, how many plaintext bytes
to discard and how many to emit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealstore.crypto.dare import PACKAGE_SIZE, PAYLOAD_SIZE, encrypted_size


@dataclass(frozen=True)
class RangeSegment:
    """One part's share of a range read.

    ``stored_offset`` is relative to the start of the whole stored object (all parts
    concatenated). Decrypt ``stored_length`` bytes from there with the part's key starting at
    ``start_seq``, drop ``skip`` plaintext bytes, emit ``take``. ``reaches_end`` says whether the
    read includes the part's final package: only then may the caller demand a final package
    (``DareDecryptor.finalize``); otherwise the stream legitimately stops mid-way.
    """

    part_index: int
    stored_offset: int
    stored_length: int
    start_seq: int
    skip: int
    take: int
    reaches_end: bool = False


def plan_range(part_sizes: list[int], offset: int, length: int) -> list[RangeSegment]:
    """Plan reading plaintext ``[offset, offset+length)`` over parts of these plaintext sizes.

    Raises ``ValueError`` for a negative offset/length or a range past the end; a zero length
    gives an empty plan.
    """
    if offset < 0 or length < 0:
        raise ValueError("range offset and length must not be negative")
    if any(s < 0 for s in part_sizes):
        raise ValueError("part sizes must not be negative")
    total = sum(part_sizes)
    if offset + length > total:
        raise ValueError(f"range [{offset}, {offset + length}) exceeds object size {total}")
    if length == 0:
        return []
    end = offset + length  # exclusive
    segments: list[RangeSegment] = []
    plain_start = 0
    stored_start = 0
    for index, size in enumerate(part_sizes):
        plain_end = plain_start + size
        part_stored = encrypted_size(size)
        if size and plain_end > offset and plain_start < end:
            rel = max(offset, plain_start) - plain_start
            rel_end = min(end, plain_end) - plain_start  # exclusive
            first_pkg, skip = divmod(rel, PAYLOAD_SIZE)
            last_pkg = (rel_end - 1) // PAYLOAD_SIZE
            seg_start = first_pkg * PACKAGE_SIZE
            seg_end = min((last_pkg + 1) * PACKAGE_SIZE, part_stored)
            segments.append(
                RangeSegment(
                    part_index=index,
                    stored_offset=stored_start + seg_start,
                    stored_length=seg_end - seg_start,
                    start_seq=first_pkg,
                    skip=skip,
                    take=rel_end - rel,
                    reaches_end=seg_end == part_stored,
                )
            )
        if plain_end >= end:
            break
        plain_start = plain_end
        stored_start += part_stored
    return segments
