"""What the crash child writes, as pure functions of (mode, generation), so the parent can
recompute every byte and every ETag the child may have left behind without asking it.

Modes:
- ``replace``: overwrite one object with a new generation again and again;
- ``complete``: upload three parts and complete them into that object, again and again;
- ``parts``: upload two parts, replace each twice (three variants), then complete.
"""

from __future__ import annotations

from tests.contract.support import KIB, content, md5hex

BUCKET = "crash"
KEY = "crash/object.bin"
MODES = ("replace", "complete", "parts")


def single_data(gen: int) -> bytes:
    """The replace mode's object: sizes differ between generations (and cross 1 MiB)."""
    return content(("single", gen), (64, 1500, 2600)[gen % 3] * KIB + gen)


def part_variants(mode: str, gen: int, number: int) -> list[bytes]:
    """Every version of part ``number`` the child uploads in ``gen``, in upload order."""
    if mode == "complete":
        size = {1: 300 * KIB + gen, 2: 100 * KIB, 3: 1000 + gen}[number]
        return [content(("part", gen, number), size)]
    return [content(("variant", gen, number, v), 80 * KIB + 1000 * v + number) for v in range(3)]


def part_numbers(mode: str) -> list[int]:
    return [1, 2, 3] if mode == "complete" else [1, 2]


def final_parts(mode: str, gen: int) -> list[bytes]:
    """The parts a completed generation is made of (the last variant of each)."""
    return [part_variants(mode, gen, n)[-1] for n in part_numbers(mode)]


def match_part(mode: str, gen: int, number: int, etag: str, size: int) -> bytes:
    """The variant a listed part is, by its ETag and size; AssertionError if none is."""
    for data in part_variants(mode, gen, number):
        if md5hex(data) == etag and len(data) == size:
            return data
    raise AssertionError(f"gen {gen} part {number}: ETag {etag}, {size} bytes is no variant")
