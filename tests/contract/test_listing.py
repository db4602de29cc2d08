"""Contract: ListObjects semantics. Keys come in UTF-8 byte order (checked with keys whose
UTF-16, case-folded or normalised orders differ from it); prefix and delimiter roll keys up
into common prefixes that count as one entry and appear only after `start_after`;
`max_keys` 0, 1 and the exact boundary; `next_marker` set exactly when truncated, and paging
with it yields every entry once. Random key sets are checked against a brute-force model."""

from __future__ import annotations

import asyncio
import random
import unicodedata

import pytest

from sealstore.storage.base import ListResult
from sealstore.storage.contract import Store
from tests.contract.support import put

ORDER_KEYS = [
    "a",
    "B",  # before "a" in bytes, after it case-insensitively
    "b",
    "a/b",
    "a-b",  # '-' 0x2d < '/' 0x2f < '0' 0x30
    "a0",
    "é",  # U+00E9, C3 A9
    "e\u0301",  # the same text decomposed: a different key, sorts right after "e"
    "e",
    "\u00ff",  # C3 BF
    "\u0100",  # C4 80
    "\uff61",  # EF BD A1: after U+1F600 in UTF-16 (surrogates), before it in UTF-8
    "😀",  # U+1F600, F0 9F 98 80
    "z",
    "~",
]

TREE_KEYS = [
    "docs/a",
    "photos/",
    "photos/2024/a",
    "photos/2024/b",
    "photos/2025/c",
    "photos/x",
    "readme",
]


def byte_sorted(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


async def put_keys(store: Store, bucket: str, keys: list[str]) -> None:
    await asyncio.gather(*(put(store, bucket, key, key.encode("utf-8")) for key in keys))


def names(result: ListResult) -> tuple[list[str], list[str]]:
    return [m.key for m in result.objects], result.common_prefixes


def model(
    keys: list[str], *, prefix: str, start_after: str, delimiter: str, max_keys: int
) -> tuple[list[str], list[str], bool, str | None]:
    """S3 ListObjects as documented for this project, by brute force over all keys."""
    if max_keys <= 0:
        return [], [], False, None
    p, after, delim = (s.encode("utf-8") for s in (prefix, start_after, delimiter))
    entries: dict[bytes, bool] = {}  # sort key -> is a common prefix
    for raw in (k.encode("utf-8") for k in keys):
        if not raw.startswith(p):
            continue
        cut = raw.find(delim, len(p)) if delim else -1
        if cut >= 0:
            common = raw[: cut + len(delim)]
            if common > after:
                entries[common] = True
        elif raw > after:
            entries[raw] = False
    ordered = sorted(entries.items())
    page = ordered[:max_keys]
    truncated = len(ordered) > max_keys
    return (
        [k.decode() for k, is_prefix in page if not is_prefix],
        [k.decode() for k, is_prefix in page if is_prefix],
        truncated,
        page[-1][0].decode() if truncated else None,
    )


async def test_keys_list_in_utf8_byte_order(store: Store, bucket: str) -> None:
    # the key set really discriminates byte order from the usual wrong orders
    expected = byte_sorted(ORDER_KEYS)
    assert expected != sorted(ORDER_KEYS, key=lambda k: k.encode("utf-16-be"))
    assert expected != sorted(ORDER_KEYS, key=str.casefold)
    assert expected != sorted(ORDER_KEYS, key=lambda k: unicodedata.normalize("NFD", k))
    await put_keys(store, bucket, ORDER_KEYS)
    result = await store.list_objects(bucket)
    assert names(result) == (expected, [])
    assert (result.is_truncated, result.next_marker) == (False, None)
    for meta in result.objects:
        assert meta.size == len(meta.key.encode("utf-8"))


async def test_paging_one_by_one_in_byte_order(store: Store, bucket: str) -> None:
    await put_keys(store, bucket, ORDER_KEYS)
    seen: list[str] = []
    marker = ""
    while True:
        page = await store.list_objects(bucket, start_after=marker, max_keys=1)
        assert len(page.objects) == 1
        seen.append(page.objects[0].key)
        if not page.is_truncated:
            assert page.next_marker is None
            break
        assert page.next_marker == page.objects[0].key
        marker = page.next_marker
    assert seen == byte_sorted(ORDER_KEYS)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a", ["a", "a-b", "a/b", "a0"]),
        ("a/", ["a/b"]),
        ("e", ["e", "e\u0301"]),
        ("é", ["é"]),
        ("\u00ff", ["\u00ff"]),
        ("😀", ["😀"]),
        ("nothing", []),
    ],
)
async def test_prefix(store: Store, bucket: str, prefix: str, expected: list[str]) -> None:
    await put_keys(store, bucket, ORDER_KEYS)
    result = await store.list_objects(bucket, prefix=prefix)
    assert names(result) == (expected, [])
    assert not result.is_truncated


async def test_delimiter_rolls_up_common_prefixes(store: Store, bucket: str) -> None:
    await put_keys(store, bucket, TREE_KEYS)
    top = await store.list_objects(bucket, delimiter="/")
    assert names(top) == (["readme"], ["docs/", "photos/"])
    inner = await store.list_objects(bucket, prefix="photos/", delimiter="/")
    assert names(inner) == (["photos/", "photos/x"], ["photos/2024/", "photos/2025/"])
    deep = await store.list_objects(bucket, prefix="photos/20", delimiter="/")
    assert names(deep) == ([], ["photos/2024/", "photos/2025/"])
    multi = await store.list_objects(bucket, delimiter="20")  # any string is a delimiter
    assert names(multi) == (["docs/a", "photos/", "photos/x", "readme"], ["photos/20"])


async def test_common_prefix_counts_as_one_entry(store: Store, bucket: str) -> None:
    await put_keys(store, bucket, TREE_KEYS)
    pages = []
    marker = ""
    while True:
        page = await store.list_objects(bucket, delimiter="/", start_after=marker, max_keys=1)
        pages.append((names(page), page.is_truncated, page.next_marker))
        if not page.is_truncated:
            break
        assert page.next_marker is not None
        marker = page.next_marker
    assert pages == [
        (([], ["docs/"]), True, "docs/"),
        (([], ["photos/"]), True, "photos/"),  # 5 keys, one entry
        ((["readme"], []), False, None),
    ]
    two = await store.list_objects(bucket, delimiter="/", max_keys=2)
    assert names(two) == ([], ["docs/", "photos/"])
    assert (two.is_truncated, two.next_marker) == (True, "photos/")
    three = await store.list_objects(bucket, delimiter="/", max_keys=3)  # exactly all
    assert names(three) == (["readme"], ["docs/", "photos/"])
    assert (three.is_truncated, three.next_marker) == (False, None)


async def test_start_after(store: Store, bucket: str) -> None:
    await put_keys(store, bucket, TREE_KEYS)
    flat = await store.list_objects(bucket, start_after="photos/2024/a")
    assert names(flat) == (["photos/2024/b", "photos/2025/c", "photos/x", "readme"], [])
    between = await store.list_objects(bucket, start_after="photos/2024/aa")
    assert names(between)[0][0] == "photos/2024/b"  # a marker need not be a key
    # a common prefix sorting before start_after is not reported again
    rolled = await store.list_objects(bucket, start_after="photos/2024/a", delimiter="/")
    assert names(rolled) == (["readme"], [])
    inside = await store.list_objects(
        bucket, prefix="photos/", start_after="photos/2024/a", delimiter="/"
    )
    assert names(inside) == (["photos/x"], ["photos/2025/"])
    before_prefix = await store.list_objects(bucket, prefix="photos/2", start_after="docs")
    assert names(before_prefix)[0] == ["photos/2024/a", "photos/2024/b", "photos/2025/c"]
    assert names(await store.list_objects(bucket, start_after="readme")) == ([], [])
    assert names(await store.list_objects(bucket, start_after="\U0010ffff")) == ([], [])


async def test_max_keys_zero_one_and_boundary(store: Store, bucket: str) -> None:
    await put_keys(store, bucket, TREE_KEYS)
    n = len(TREE_KEYS)
    zero = await store.list_objects(bucket, max_keys=0)
    assert (names(zero), zero.is_truncated, zero.next_marker) == (([], []), False, None)
    one = await store.list_objects(bucket, max_keys=1)
    assert (names(one), one.is_truncated, one.next_marker) == ((["docs/a"], []), True, "docs/a")
    short = await store.list_objects(bucket, max_keys=n - 1)
    assert names(short)[0] == sorted(TREE_KEYS)[:-1]
    assert (short.is_truncated, short.next_marker) == (True, sorted(TREE_KEYS)[-2])
    for max_keys in (n, n + 1, 1000):
        full = await store.list_objects(bucket, max_keys=max_keys)
        assert names(full)[0] == sorted(TREE_KEYS)
        assert (full.is_truncated, full.next_marker) == (False, None)


async def test_empty_bucket(store: Store, bucket: str) -> None:
    result = await store.list_objects(bucket, delimiter="/")
    assert (names(result), result.is_truncated, result.next_marker) == (([], []), False, None)


def random_keys(rng: random.Random, count: int) -> list[str]:
    alphabet = ["a", "b", "A", "/", "/", "-", "é", "\uff61", "😀", "~", "0"]
    keys: set[str] = set()
    while len(keys) < count:
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        if not key.startswith("/"):
            keys.add(key)
    return sorted(keys)


async def test_random_listings_match_the_model(store: Store, bucket: str) -> None:
    rng = random.Random(20261201)
    keys = random_keys(rng, 80)
    await put_keys(store, bucket, keys)
    queries = [("", "", "", 1000), ("", "", "/", 1000), ("a", "", "/", 1000)]
    for _ in range(150):
        prefix = rng.choice(["", "", "a", "a/", "b", "é", "/", "A/", "😀", "\uff61"])
        prefix = prefix if rng.random() < 0.7 else rng.choice(keys)[:3]
        after = rng.choice(["", "", rng.choice(keys), rng.choice(keys)[:2] + "~"])
        delimiter = rng.choice(["", "", "/", "/", "-", "é", "a/"])
        if prefix.startswith("/"):
            prefix = ""
        queries.append((prefix, after, delimiter, rng.choice([0, 1, 2, 3, 5, 1000])))
    for prefix, after, delimiter, max_keys in queries:
        got = await store.list_objects(
            bucket, prefix=prefix, start_after=after, delimiter=delimiter, max_keys=max_keys
        )
        want = model(keys, prefix=prefix, start_after=after, delimiter=delimiter, max_keys=max_keys)
        query = (prefix, after, delimiter, max_keys)
        assert (*names(got), got.is_truncated, got.next_marker) == want, query


async def test_random_paging_visits_every_entry_once(store: Store, bucket: str) -> None:
    rng = random.Random(7)
    keys = random_keys(rng, 60)
    await put_keys(store, bucket, keys)
    for delimiter in ("", "/", "é"):
        for page_size in (1, 2, 7):
            objects: list[str] = []
            prefixes: list[str] = []
            marker = ""
            while True:
                page = await store.list_objects(
                    bucket, start_after=marker, delimiter=delimiter, max_keys=page_size
                )
                assert len(page.objects) + len(page.common_prefixes) <= page_size
                objects += [m.key for m in page.objects]
                prefixes += page.common_prefixes
                if not page.is_truncated:
                    assert page.next_marker is None
                    break
                assert page.next_marker is not None and page.next_marker.encode() > marker.encode()
                marker = page.next_marker
            full = model(keys, prefix="", start_after="", delimiter=delimiter, max_keys=10_000)
            assert (objects, prefixes) == (full[0], full[1]), (delimiter, page_size)
