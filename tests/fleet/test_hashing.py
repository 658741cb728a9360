import hashlib
import os

from fleet.hashing import COPY_BUFFER_BYTES, atomic_write_bytes, copy_and_hash, file_sha256


def test_copy_and_hash_matches_hashlib_across_buffer_boundaries(tmp_path):
    for size in (0, 1, COPY_BUFFER_BYTES - 1, COPY_BUFFER_BYTES, 2 * COPY_BUFFER_BYTES + 7):
        data = os.urandom(size)
        src, dst = tmp_path / f"s{size}", tmp_path / f"d{size}"
        src.write_bytes(data)
        assert copy_and_hash(src, dst) == (size, hashlib.sha256(data).hexdigest())
        assert dst.read_bytes() == data
        assert file_sha256(dst) == hashlib.sha256(data).hexdigest()


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "INGESTED.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(os.listdir(tmp_path)) == ["INGESTED.json"]
