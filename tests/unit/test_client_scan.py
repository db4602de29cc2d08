"""Unit tests of the at-rest plaintext scan (pure: temp files, generated content)."""

from __future__ import annotations

import os

import pytest

from sealstore.client import content as client_content
from sealstore.client.scan import scan_dir, scan_seed

SEED = "unit-seed"


def _noise(n: int, tag: str = "noise") -> bytearray:
    return bytearray(client_content.generate(f"{SEED}-{tag}", 0, n))


def _plant(buf: bytearray, at: int, run: bytes, plain: bytes, plain_at: int) -> None:
    """Write ``run`` at ``at`` and make sure the neighbours do NOT extend the match."""
    buf[at : at + len(run)] = run
    if at > 0 and plain_at > 0:
        buf[at - 1] = plain[plain_at - 1] ^ 0xFF
    end = at + len(run)
    if end < len(buf) and plain_at + len(run) < len(plain):
        buf[end] = plain[plain_at + len(run)] ^ 0xFF


@pytest.mark.parametrize("plain_at", [0, 3, 8, 1001, 65533])
@pytest.mark.parametrize("file_at", [0, 5, 4093, 9000])
def test_planted_16_byte_run_is_found(tmp_path, plain_at, file_at):
    size = 70000
    plain = client_content.generate(SEED, 0, size)
    buf = _noise(12000)
    _plant(buf, file_at, plain[plain_at : plain_at + 16], plain, plain_at)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "blob").write_bytes(bytes(buf))
    (tmp_path / "clean").write_bytes(bytes(_noise(5000, "other")))
    result = scan_seed(str(tmp_path), SEED, size, chunk=4096)
    assert not result.ok
    assert len(result.leaks) == 1
    leak = result.leaks[0]
    assert leak.path.endswith("blob")
    assert leak.file_offset == file_at
    assert leak.plain_offset == plain_at
    assert result.files == 2
    assert result.bytes == 17000


@pytest.mark.parametrize("plain_at", [0, 3, 8, 1001])
@pytest.mark.parametrize("file_at", [0, 5, 4090])
def test_planted_15_byte_run_is_not_a_leak(tmp_path, plain_at, file_at):
    size = 70000
    plain = client_content.generate(SEED, 0, size)
    buf = _noise(9000)
    _plant(buf, file_at, plain[plain_at : plain_at + 15], plain, plain_at)
    (tmp_path / "blob").write_bytes(bytes(buf))
    result = scan_seed(str(tmp_path), SEED, size, chunk=4096)
    assert result.ok, result.leaks
    assert result.files == 1 and result.bytes == 9000


def test_leak_at_end_of_plaintext_and_file(tmp_path):
    size = 1000
    plain = client_content.generate(SEED, 0, size)
    buf = _noise(3000)
    buf[-16:] = plain[-16:]
    buf[-17] = plain[-17] ^ 0xFF
    (tmp_path / "tail").write_bytes(bytes(buf))
    result = scan_seed(str(tmp_path), SEED, size, chunk=1000)
    assert [(leak.file_offset, leak.plain_offset) for leak in result.leaks] == [(2984, 984)]


def test_multiple_index_passes_cover_the_whole_plaintext(tmp_path):
    size = 50000
    plain = client_content.generate(SEED, 0, size)
    buf = _noise(4000)
    # Straddles the boundary between the first two index slices (4096).
    _plant(buf, 100, plain[4090:4106], plain, 4090)
    (tmp_path / "blob").write_bytes(bytes(buf))
    result = scan_seed(str(tmp_path), SEED, size, index_bytes=4096, chunk=512)
    assert result.passes == 13  # slices start at 0, 4096, ..., 49152
    assert [(leak.file_offset, leak.plain_offset) for leak in result.leaks] == [(100, 4090)]


def test_whole_plaintext_file_is_reported_once(tmp_path):
    size = 300000
    (tmp_path / "plain").write_bytes(client_content.generate(SEED, 0, size))
    result = scan_seed(str(tmp_path), SEED, size, chunk=65536)
    assert len(result.leaks) == 1
    assert result.leaks[0].file_offset == 0


def test_ciphertext_like_directory_is_clean_and_counted(tmp_path):
    for i in range(3):
        (tmp_path / f"f{i}").write_bytes(bytes(_noise(20000 + i, f"c{i}")))
    os.symlink(tmp_path / "f0", tmp_path / "link")
    result = scan_seed(str(tmp_path), SEED, 100000)
    assert result.ok
    assert result.files == 3
    assert result.bytes == 60003


def test_tiny_object_has_nothing_to_leak(tmp_path):
    (tmp_path / "f").write_bytes(client_content.generate(SEED, 0, 15))
    result = scan_seed(str(tmp_path), SEED, 15)
    assert result.ok and result.files == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a mode-000 file")
def test_unreadable_file_fails_the_scan(tmp_path):
    bad = tmp_path / "secret"
    bad.write_bytes(b"x")
    bad.chmod(0)
    result = scan_seed(str(tmp_path), SEED, 100)
    assert not result.ok and result.unreadable


def test_missing_directory_raises(tmp_path):
    with pytest.raises(NotADirectoryError):
        scan_dir(str(tmp_path / "nope"), lambda o, n: b"", 10)


@pytest.mark.parametrize("jobs", [1, 2])
def test_file_ranges_and_parallel_workers_miss_nothing(tmp_path, jobs):
    """Runs straddling the boundaries of the per-file ranges are found, in every process."""
    size = 40000
    plain = client_content.generate(SEED, 0, size)
    split = 4096
    cases = {  # file name -> (file offset, plaintext offset)
        "a": (split - 8, 17),  # window starts in range 0, run ends in range 1
        "b": (split - 1, 800),
        "c": (split, 8),
        "d": (3 * split - 15, 39984),  # last 16 plaintext bytes
        "e": (5 * split + 3, 20001),
    }
    for name, (at, plain_at) in cases.items():
        buf = _noise(6 * split, name)
        _plant(buf, at, plain[plain_at : plain_at + 16], plain, plain_at)
        (tmp_path / name).write_bytes(bytes(buf))
    clean = _noise(6 * split, "clean")
    _plant(clean, split - 7, plain[100:115], plain, 100)  # 15 bytes across a boundary
    (tmp_path / "clean").write_bytes(bytes(clean))
    result = scan_seed(str(tmp_path), SEED, size, chunk=1024, split=split, jobs=jobs)
    found = {
        leak.path.rsplit("/", 1)[1]: (leak.file_offset, leak.plain_offset) for leak in result.leaks
    }
    assert found == cases
    assert result.files == 6 and result.bytes == 6 * 6 * split


def test_earliest_leak_of_a_file_is_reported(tmp_path):
    size = 30000
    plain = client_content.generate(SEED, 0, size)
    buf = _noise(20000)
    _plant(buf, 15000, plain[500:516], plain, 500)
    _plant(buf, 100, plain[9000:9016], plain, 9000)
    (tmp_path / "f").write_bytes(bytes(buf))
    result = scan_seed(str(tmp_path), SEED, size, chunk=1024, split=2048, jobs=2)
    assert [(leak.file_offset, leak.plain_offset) for leak in result.leaks] == [(100, 9000)]


@pytest.mark.parametrize("index_bytes", [1 << 20, 4096, 1000])
def test_several_targets_in_shared_passes(tmp_path, index_bytes):
    """Targets packed into one index (or split over many passes) are told apart."""
    from sealstore.client.scan import scan_targets, seed_target

    sizes = {"t1": 5000, "t2": 12000, "t3": 800, "tiny": 10}
    targets = [seed_target(f"seed-{n}", sz, n) for n, sz in sizes.items()]
    p1 = client_content.generate("seed-t1", 0, 5000)
    p2 = client_content.generate("seed-t2", 0, 12000)
    a = _noise(8000, "a")
    _plant(a, 7000, p2[11000:11016], p2, 11000)
    _plant(a, 10, p1[4984:5000], p1, 4984)
    (tmp_path / "a").write_bytes(bytes(a))
    b = _noise(3000, "b")
    _plant(b, 1500, p1[64:80], p1, 64)
    (tmp_path / "b").write_bytes(bytes(b))
    result = scan_targets(str(tmp_path), targets, index_bytes=index_bytes, chunk=1024, split=2048)
    got = sorted(
        (leak.target, leak.path.rsplit("/", 1)[1], leak.file_offset, leak.plain_offset)
        for leak in result.leaks
    )
    assert got == [("t1", "a", 10, 4984), ("t1", "b", 1500, 64), ("t2", "a", 7000, 11000)]
