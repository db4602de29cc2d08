"""Range plans checked against brute-force decryption of whole single- and multipart objects."""

from __future__ import annotations

import os
import random

import pytest

from sealstore.crypto import dare
from sealstore.crypto.dare import PACKAGE_SIZE, PAYLOAD_SIZE, DareDecryptor
from sealstore.crypto.keys import derive_part_key
from sealstore.crypto.ranges import RangeSegment, plan_range

OEK = bytes(range(32))


def _build(part_sizes: list[int], multipart: bool) -> tuple[bytes, bytes]:
    plain = b""
    stored = b""
    for i, size in enumerate(part_sizes):
        data = os.urandom(size)
        key = derive_part_key(OEK, i + 1) if multipart else OEK
        plain += data
        stored += dare.encrypt(key, data)
    return plain, stored


def _read(part_sizes: list[int], stored: bytes, offset: int, length: int, multipart: bool) -> bytes:
    out = b""
    for seg in plan_range(part_sizes, offset, length):
        key = derive_part_key(OEK, seg.part_index + 1) if multipart else OEK
        dec = DareDecryptor(key, start_seq=seg.start_seq)
        chunk = stored[seg.stored_offset : seg.stored_offset + seg.stored_length]
        assert len(chunk) == seg.stored_length
        plain = dec.update(chunk)
        if seg.reaches_end:
            dec.finalize()
        assert len(plain) >= seg.skip + seg.take
        # never decrypt more than one package beyond what is needed
        assert len(plain) - (seg.skip + seg.take) < PAYLOAD_SIZE
        out += plain[seg.skip : seg.skip + seg.take]
    return out


@pytest.mark.parametrize(
    ("part_sizes", "multipart"),
    [
        ([1], False),
        ([65536], False),
        ([3 * 65536 + 100], False),
        ([5 * 1024 * 1024, 65537, 1], True),
        ([65536, 65536, 70000], True),
    ],
)
def test_range_plans_match_brute_force(part_sizes: list[int], multipart: bool) -> None:
    plain, stored = _build(part_sizes, multipart)
    total = len(plain)
    rng = random.Random(total)
    boundaries = {0, total - 1, PAYLOAD_SIZE - 1, PAYLOAD_SIZE, PAYLOAD_SIZE + 1}
    acc = 0
    for s in part_sizes:
        boundaries |= {acc, acc + s - 1, acc + s}
        acc += s
    offsets = sorted(b for b in boundaries if 0 <= b < total)
    pairs = [(o, 1) for o in offsets] + [(o, total - o) for o in offsets]
    pairs += [(rng.randrange(total), 0) for _ in range(40)]
    pairs = [(o, n if n else rng.randrange(1, total - o + 1)) for o, n in pairs]
    for offset, length in pairs:
        assert (
            _read(part_sizes, stored, offset, length, multipart) == plain[offset : offset + length]
        ), (offset, length)


def test_plan_shape_single_part() -> None:
    size = 3 * PAYLOAD_SIZE + 10
    assert plan_range([size], PAYLOAD_SIZE + 5, 10) == [
        RangeSegment(0, PACKAGE_SIZE, PACKAGE_SIZE, 1, 5, 10, False)
    ]
    # the tail: clipped to the end of the part, reaches the final package
    assert plan_range([size], 3 * PAYLOAD_SIZE, 10) == [
        RangeSegment(0, 3 * PACKAGE_SIZE, 42, 3, 0, 10, True)
    ]


def test_plan_spans_parts() -> None:
    sizes = [PAYLOAD_SIZE + 1, 100]
    segs = plan_range(sizes, PAYLOAD_SIZE, 51)
    assert [s.part_index for s in segs] == [0, 1]
    assert segs[0].stored_offset == PACKAGE_SIZE and segs[0].stored_length == 33
    assert segs[0].take == 1 and segs[0].reaches_end
    assert segs[1].stored_offset == PACKAGE_SIZE + 33 and segs[1].take == 50
    assert segs[1].start_seq == 0 and segs[1].skip == 0
    assert segs[1].stored_length == 132 and segs[1].reaches_end


def test_plan_errors() -> None:
    assert plan_range([10], 3, 0) == []
    with pytest.raises(ValueError):
        plan_range([10], 5, 6)
    with pytest.raises(ValueError):
        plan_range([10], -1, 2)
    assert plan_range([], 0, 0) == []
