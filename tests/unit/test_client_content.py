"""Unit tests of the deterministic content generator used by round trips and scans."""

from __future__ import annotations

import hashlib
import io

from sealstore.client import content as cc


def test_generate_is_deterministic_and_random_access():
    whole = cc.generate("s", 0, 200000)
    assert whole == cc.generate("s", 0, 200000)
    assert whole != cc.generate("t", 0, 200000)
    for off, n in [(0, 1), (15, 2), (16, 16), (65535, 3), (199990, 10)]:
        assert cc.generate("s", off, n) == whole[off : off + n]
    assert b"".join(cc.iter_chunks("s", 200000, chunk=7000)) == whole
    assert cc.generate("s", 5, 0) == b""


def test_digests_match_hashlib():
    data = cc.generate("d", 0, 3_000_001)
    sha, md5 = cc.digests("d", 3_000_001)
    assert sha == hashlib.sha256(data).hexdigest()
    assert md5 == hashlib.md5(data).hexdigest()


def test_reader_seeks_and_reads_slices():
    data = cc.generate("r", 1000, 150000)
    reader = cc.ContentReader("r", 150000, start=1000)
    assert len(reader) == 150000
    assert reader.read() == data
    assert reader.read(10) == b""
    reader.seek(70000)
    assert reader.read(5) == data[70000:70005]
    assert reader.seek(-3, io.SEEK_END) == 149997
    assert reader.read() == data[-3:]
    buffered = io.BufferedReader(cc.ContentReader("r", 150000, start=1000))
    assert buffered.read() == data


def test_object_seeds_are_distinct():
    run = cc.new_seed()
    assert len(run) == 16
    assert cc.object_seed(run, 0) != cc.object_seed(run, 1)
