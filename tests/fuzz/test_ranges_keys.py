"""Ranges, part numbers, conditional headers and object/bucket names.

Proves that ``Range``/``x-amz-copy-source-range``/``partNumber`` parsing answers any header
text with a range inside the object, "whole object" or a typed 4xx error (never another
exception); that ``crypto.ranges.plan_range`` covers exactly the requested plaintext bytes
for any part layout; and that object-key and bucket-name validation accept or refuse any
string with their own typed error, an accepted key surviving its UTF-8 round trip.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sealstore.crypto.dare import encrypted_size
from sealstore.crypto.ranges import plan_range
from sealstore.s3.handlers import preconditions as pre
from sealstore.s3.handlers.multipart_xml import parse_int, parse_part_number
from sealstore.storage import base as storage

from .strategies import ANY_TEXT, DIGITS_TEXT, around, budget, object_keys, typed

SIZES = st.integers(0, 10**12) | st.integers(0, 200_000)
RANGE_TEXT = st.one_of(
    DIGITS_TEXT.map(lambda s: "bytes=" + s),
    st.tuples(DIGITS_TEXT, DIGITS_TEXT).map(lambda t: f"bytes={t[0]}-{t[1]}"),
    around("bytes=0-99"),
    around("bytes=-5"),
    ANY_TEXT,
)


@settings(max_examples=budget(2))
@given(header=st.none() | RANGE_TEXT, size=SIZES)
def test_get_range(header: str | None, size: int) -> None:
    r = typed(pre.parse_range, header, size)
    if r is not None:
        assert isinstance(r, pre.ByteRange)
        assert 0 <= r.start < size and r.length >= 1 and r.start + r.length <= size


@settings(max_examples=budget())
@given(value=st.none() | RANGE_TEXT, size=SIZES)
def test_copy_source_range(value: str | None, size: int) -> None:
    r = typed(pre.parse_copy_range, value, size)
    if r is not None:
        offset, length = r
        assert offset >= 0 and length >= 0 and offset + length <= size


@settings(max_examples=budget())
@given(
    raw=st.none() | DIGITS_TEXT | ANY_TEXT,
    range_header=st.none() | RANGE_TEXT,
    sizes=st.lists(st.integers(0, 10**9), max_size=5),
)
def test_part_range_and_numbers(
    raw: str | None, range_header: str | None, sizes: list[int]
) -> None:
    parts = [storage.PartMeta(i + 1, "e", s, encrypted_size(s), 0.0) for i, s in enumerate(sizes)]
    meta = storage.ObjectMeta(bucket="b", key="k", size=sum(sizes), parts=parts)
    r = typed(pre.part_range, raw, range_header, meta)
    if r is not None:
        assert r.start + r.length <= meta.size
    typed(parse_part_number, raw)
    typed(parse_int, raw, "max-keys", 1000, 1000)


@settings(max_examples=budget())
@given(
    sizes=st.lists(st.integers(0, 3 * 65536 + 7), max_size=5),
    at=st.integers(-3, 10**6),
    length=st.integers(-3, 10**6),
)
def test_plan_range(sizes: list[int], at: int, length: int) -> None:
    """The plan emits exactly ``length`` bytes or refuses with ValueError (its typed error)."""
    try:
        plan = plan_range(sizes, at, length)
    except ValueError:
        assert at < 0 or length < 0 or at + length > sum(sizes)
        return
    assert sum(seg.take for seg in plan) == length
    for seg in plan:
        assert seg.stored_length > 0 and seg.skip >= 0 and seg.start_seq >= 0


@settings(max_examples=budget(2))
@given(key=object_keys())
def test_object_keys(key: str) -> None:
    raw = typed(storage.encode_key, key)
    if raw is not None:
        assert isinstance(raw, bytes) and raw.decode("utf-8") == key
        assert 0 < len(raw) <= storage.MAX_KEY_BYTES


@settings(max_examples=budget())
@given(name=around("my-bucket.01") | ANY_TEXT)
def test_bucket_names(name: str) -> None:
    typed(storage.validate_bucket_name, name)
