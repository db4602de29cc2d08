"""Flexible checksums in the object layer: hashers, CRC combination, composite values, stored
entries, the CompleteMultipartUpload checks and the layout binding.

Known answers come from outside this code: the CRC catalogue check values of "123456789",
zlib.crc32 / anycrc / hashlib over the concatenated data for combinations, and the composite
rule recomputed with hashlib.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import zlib

import anycrc
import pytest

from sealstore.crypto import layout as cl
from sealstore.objects import checksum as ck
from sealstore.objects import multipart_checksum as mp
from sealstore.objects.errors import BadDigest, InvalidPartETag, InvalidRequest
from sealstore.storage.base import PartMeta

ONES32, ONES64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
REFERENCE = {
    "crc32": lambda d: zlib.crc32(d).to_bytes(4, "big"),
    "crc32c": lambda d: (
        anycrc.CRC(width=32, poly=0x1EDC6F41, init=ONES32, refin=True, refout=True, xorout=ONES32)
        .calc(d)
        .to_bytes(4, "big")
    ),
    "crc64nvme": lambda d: (
        anycrc.CRC(
            width=64, poly=0xAD93D23594C93659, init=ONES64, refin=True, refout=True, xorout=ONES64
        )
        .calc(d)
        .to_bytes(8, "big")
    ),
    "sha1": lambda d: hashlib.sha1(d).digest(),
    "sha256": lambda d: hashlib.sha256(d).digest(),
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def digest(alg: str, data: bytes) -> bytes:
    h = ck.new_hasher(alg)
    h.update(data)
    return h.digest()


@pytest.mark.parametrize(
    ("alg", "check"),
    [("crc32", 0xCBF43926), ("crc32c", 0xE3069283), ("crc64nvme", 0xAE8B14860A799888)],
)
def test_catalogue_check_values(alg: str, check: int) -> None:
    assert int.from_bytes(digest(alg, b"123456789"), "big") == check


@pytest.mark.parametrize("alg", list(REFERENCE))
def test_incremental_equals_reference(alg: str) -> None:
    data = os.urandom(100_003)
    h = ck.new_hasher(alg)
    for i in range(0, len(data), 7919):
        h.update(memoryview(data)[i : i + 7919])
    assert h.digest() == REFERENCE[alg](data)
    assert ck.new_hasher(alg.upper()).digest() == REFERENCE[alg](b"")


@pytest.mark.parametrize("alg", ["crc32", "crc32c", "crc64nvme"])
@pytest.mark.parametrize("sizes", [(0, 5), (5, 0), (1, 1), (3, 70_000, 1), (65_536, 65_537, 9)])
def test_crc_combination_equals_crc_of_concatenation(alg: str, sizes: tuple[int, ...]) -> None:
    chunks = [os.urandom(n) for n in sizes]
    parts = [(REFERENCE[alg](c), len(c)) for c in chunks]
    assert mp.combine_full(alg, parts) == REFERENCE[alg](b"".join(chunks))


def test_crc_combine_large_length_without_data() -> None:
    # CRC(zeros(n)) combined from halves equals zlib over the real zeros.
    zeros = bytes(3 << 20)
    half = len(zeros) // 2
    a = zlib.crc32(zeros[:half])
    combined = mp.crc_combine("crc32", a, zlib.crc32(zeros[half:]), len(zeros) - half)
    assert combined == zlib.crc32(zeros)


def test_composite_is_hash_of_concatenated_digests() -> None:
    d1, d2 = hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()
    assert mp.composite("sha256", [d1, d2]) == hashlib.sha256(d1 + d2).digest()
    c1, c2 = zlib.crc32(b"a").to_bytes(4, "big"), zlib.crc32(b"b").to_bytes(4, "big")
    assert mp.composite("crc32", [c1, c2]) == zlib.crc32(c1 + c2).to_bytes(4, "big")


def test_unknown_algorithm_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        ck.new_hasher("md4")


def test_entry_round_trip_and_malformed_entries() -> None:
    full = ck.Checksum("crc32", b64(b"\0\0\0\1"))
    comp = ck.Checksum("sha256", b64(bytes(32)), ck.COMPOSITE, 3)
    for cs in (full, comp):
        assert ck.stored(cs.entry()) == cs
    assert comp.shown.endswith("-3") and full.shown == full.value
    for bad in (
        "",
        "crc32;FULL_OBJECT",
        "md5;FULL_OBJECT;AAAA",
        "crc32;BOTH;AAAAAA==",
        "crc32;FULL_OBJECT;AAAA",
        "sha256;COMPOSITE;" + b64(bytes(32)),
    ):
        assert ck.parse(bad) is None, bad


def part(number: int, data: bytes, alg: str | None) -> PartMeta:
    internal = {} if alg is None else ck.Checksum(alg, b64(REFERENCE[alg](data))).entry()
    return PartMeta(number, "e", len(data), len(data), 0.0, internal)


def upload(alg: str | None, typ: str = ck.COMPOSITE) -> dict[str, str]:
    return {"other": "x", **ck.upload_entries(None if alg is None else (alg, typ))}


def test_finish_composite_and_full_object() -> None:
    d1, d2 = os.urandom(1000), os.urandom(10)
    parts = [part(1, d1, "sha256"), part(2, d2, "sha256")]
    given = {
        1: ("sha256", b64(REFERENCE["sha256"](d1))),
        2: ("sha256", b64(REFERENCE["sha256"](d2))),
    }
    out = mp.finish(upload("sha256"), parts, mp.Completion(given))
    cs = ck.stored(out)
    assert out["other"] == "x" and ck.META_UPLOAD_CHECKSUM not in out
    want = hashlib.sha256(REFERENCE["sha256"](d1) + REFERENCE["sha256"](d2)).digest()
    assert cs == ck.Checksum("sha256", b64(want), ck.COMPOSITE, 2)

    crcs = [part(1, d1, "crc32c"), part(2, d2, "crc32c")]
    whole = b64(REFERENCE["crc32c"](d1 + d2))
    out = mp.finish(upload("crc32c", ck.FULL_OBJECT), crcs, mp.Completion(whole=("crc32c", whole)))
    assert ck.stored(out) == ck.Checksum("crc32c", whole)
    with pytest.raises(BadDigest):
        mp.finish(
            upload("crc32c", ck.FULL_OBJECT),
            crcs,
            mp.Completion(whole=("crc32c", given[1][1][:8] + "AA==")),
        )


def test_finish_refusals() -> None:
    d1 = os.urandom(100)
    parts = [part(1, d1, "sha1")]
    with pytest.raises(InvalidRequest, match="missing for part 1"):
        mp.finish(upload("sha1"), parts, mp.Completion())
    with pytest.raises(InvalidPartETag):
        mp.finish(upload("sha1"), parts, mp.Completion({1: ("sha1", b64(bytes(20)))}))
    with pytest.raises(BadDigest):
        mp.finish(upload("sha1"), parts, mp.Completion({1: ("crc32", b64(bytes(4)))}))
    with pytest.raises(InvalidRequest, match="checksum mode"):
        mp.finish(upload("sha1"), parts, mp.Completion(type=ck.FULL_OBJECT))
    with pytest.raises(InvalidPartETag):  # no algorithm, but the request names part checksums
        mp.finish(upload(None), [part(1, d1, None)], mp.Completion({1: ("sha1", b64(bytes(20)))}))
    assert ck.META_CHECKSUM not in mp.finish(upload(None), [part(1, d1, None)], None)
    assert not mp.involved(upload(None), None) and mp.involved(upload("sha1"), None)


def test_layout_binds_checksums_and_keeps_version_1() -> None:
    oek = bytes(range(32))
    base = cl.Layout("b", "k", 5, "e", False, (cl.Stream(0, 5),))
    legacy = "1:" + cl.tag(oek, base, cl.LEGACY_VERSION).hex()  # written before checksums
    assert cl.verify(oek, base, legacy)
    bound = cl.Layout(
        "b", "k", 5, "e", False, (cl.Stream(0, 5),), checksum="crc32;FULL_OBJECT;AAAAAA=="
    )
    sealed = cl.seal(oek, bound)
    assert sealed.startswith("2:") and cl.verify(oek, bound, sealed)
    assert not cl.verify(oek, base, sealed)  # stripped checksum
    other = cl.Layout(
        "b", "k", 5, "e", False, (cl.Stream(0, 5),), checksum="crc32;FULL_OBJECT;AAAAAQ=="
    )
    assert not cl.verify(oek, other, sealed)
    assert not cl.verify(oek, bound, cl.seal(oek, base))  # checksum added beside its tag
    assert not cl.verify(oek, bound, legacy)  # or beside a version-1 tag, which binds none
    parts = cl.Layout("b", "k", 5, "e-1", True, (cl.Stream(1, 5, b"", "sha1;FULL_OBJECT;x"),))
    assert cl.seal(oek, parts).startswith("2:")


def test_copy_tap_keeps_full_recomputes_composite_or_requested() -> None:
    asyncio.run(_copy_tap())


async def _copy_tap() -> None:
    data = b"copy me" * 1000

    async def source():
        yield data[:100]
        yield data[100:]

    async def run(tap: ck.CopyTap) -> dict[str, str]:
        assert b"".join([c async for c in tap.hashed(source())]) == data
        assert tap.md5 == hashlib.md5(data).hexdigest()
        return tap.entries()

    kept = ck.Checksum("crc32", b64(REFERENCE["crc32"](data)))
    assert await run(ck.CopyTap.for_object(kept.entry(), None)) == kept.entry()
    comp = ck.Checksum("sha256", b64(bytes(32)), ck.COMPOSITE, 2)
    assert ck.stored(await run(ck.CopyTap.for_object(comp.entry(), None))) == ck.Checksum(
        "sha256", b64(REFERENCE["sha256"](data))
    )
    got = ck.stored(await run(ck.CopyTap.for_object(kept.entry(), "SHA1")))
    assert got == ck.Checksum("sha1", b64(REFERENCE["sha1"](data)))
    assert await run(ck.CopyTap.for_object({}, None)) == {}
    assert ck.stored(await run(ck.CopyTap.for_part(upload("crc32c")))).algorithm == "crc32c"
