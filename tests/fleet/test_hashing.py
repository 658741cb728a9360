import errno
import hashlib
import os
import zlib

import pytest

from fleet.hashing import COPY_BUFFER_BYTES, atomic_write_bytes, copy_and_hash, file_sha256, new_checksum


@pytest.fixture(params=["kernel copy", "through the process"])
def copy_path(request, monkeypatch):
    """Both ways of copying: copy_file_range, and the fallback when the kernel refuses it."""
    if request.param == "through the process":

        def refuse(*args):
            raise OSError(errno.EXDEV, "cross-device")

        monkeypatch.setattr(os, "copy_file_range", refuse)
    return request.param


def test_copy_and_hash_matches_hashlib_across_buffer_boundaries(tmp_path, copy_path):
    for size in (0, 1, COPY_BUFFER_BYTES - 1, COPY_BUFFER_BYTES, 2 * COPY_BUFFER_BYTES + 7):
        data = os.urandom(size)
        src, dst = tmp_path / f"s{size}", tmp_path / f"d{size}"
        src.write_bytes(data)
        result = copy_and_hash(src, dst)
        assert (result.size, result.sha256) == (size, hashlib.sha256(data).hexdigest())
        assert dst.read_bytes() == data
        assert file_sha256(dst) == hashlib.sha256(data).hexdigest()


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "INGESTED.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(os.listdir(tmp_path)) == ["INGESTED.json"]


def test_chunk_digests_match_slices_whatever_the_alignment(tmp_path, copy_path):
    data = os.urandom(3 * COPY_BUFFER_BYTES + 12345)
    src = tmp_path / "s"
    src.write_bytes(data)
    for chunk in (1000, COPY_BUFFER_BYTES, COPY_BUFFER_BYTES + 1, 5 * COPY_BUFFER_BYTES):
        result = copy_and_hash(src, tmp_path / f"d{chunk}", chunk_bytes=chunk)
        expected = [hashlib.sha256(data[i : i + chunk]).digest() for i in range(0, len(data), chunk)]
        assert result.chunk_digests == expected
        crc = copy_and_hash(src, tmp_path / f"c{chunk}", chunk_bytes=chunk, chunk_algorithm="crc32")
        assert crc.chunk_digests == [
            zlib.crc32(data[i : i + chunk]).to_bytes(4, "big") for i in range(0, len(data), chunk)
        ]
        crc32c = copy_and_hash(src, tmp_path / f"k{chunk}", chunk_bytes=chunk, chunk_algorithm="crc32c")
        assert [len(d) for d in crc32c.chunk_digests] == [4] * len(expected)
        assert crc32c.chunk_digests != crc.chunk_digests


@pytest.mark.parametrize(("algorithm", "check"), [("crc32", 0xCBF43926), ("crc32c", 0xE3069283)])
def test_crc_check_values_in_pieces(algorithm, check):
    """The catalogue check value of each CRC (of b"123456789"), fed in pieces of any type."""
    digest = new_checksum(algorithm)
    for piece in (b"12", memoryview(b"345"), bytearray(b"6789")):
        digest.update(piece)
    assert digest.digest() == check.to_bytes(4, "big")
