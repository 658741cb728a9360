"""The sealed clip format (fleet/cipher.py): round trips, reads from any offset, and every kind of
damage refused with a clear error before a byte of the damaged segment is returned."""

import errno
import fcntl
import hashlib
import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet import hashing
from fleet.cipher import (
    HEADER_BYTES,
    SEGMENT_BYTES,
    TAG_BYTES,
    Keyring,
    SealedReader,
    Sealer,
    key_id,
    new_data_key,
    parse_key,
    sealed_size,
)
from fleet.directio import BLOCK, PartWriter
from fleet.errors import ConfigError, DamagedCopyError
from fleet.hashing import copy_hash_and_seal
from tests.support.directio import direct_io_works

SEG = 4096  # small segments, so that "several segments" stays small
CLIP = "6a1b2c3d-0000-4000-8000-000000000001"
OTHER = "6a1b2c3d-0000-4000-8000-000000000002"


def seal(tmp_path, data: bytes, clip_id: str = CLIP, segment_bytes: int = SEG, name: str = "sealed"):
    key = new_data_key()
    src, dst = tmp_path / f"{name}.src", tmp_path / name
    src.write_bytes(data)
    result = copy_hash_and_seal(
        src, dst, Sealer(key, clip_id, len(data), segment_bytes), len(data), 1000, chunk_algorithm="crc32c"
    )
    assert (result.size, result.sha256) == (len(data), hashlib.sha256(data).hexdigest())  # the camera's bytes
    assert len(result.chunk_digests) == -(-len(data) // 1000)
    return dst, key


def read_all(path, key, size, clip_id=CLIP, at=0, piece=777):
    with SealedReader(path, key, clip_id, size) as reader:
        return b"".join(reader.read_range(at, size - at, piece))


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 5 * SEG + 17, 6 * SEG])
def test_round_trip_of_every_boundary_size(tmp_path, size):
    data = os.urandom(size)
    path, key = seal(tmp_path, data)
    assert path.stat().st_size == sealed_size(size, SEG) == HEADER_BYTES + size + TAG_BYTES * max(1, -(-size // SEG))
    assert read_all(path, key, size) == data


def test_the_default_segment_size_round_trips_a_clip_of_several_blocks(tmp_path):
    data = os.urandom(9 * SEGMENT_BYTES + 5)  # more than two copy blocks of 4 MiB
    path, key = seal(tmp_path, data, segment_bytes=SEGMENT_BYTES)
    assert read_all(path, key, len(data), piece=1 << 20) == data


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_read_from_any_offset_returns_exactly_that_range(tmp_path_factory, data):
    size = data.draw(st.integers(0, 5 * SEG + 100))
    content = os.urandom(size)
    path, key = seal(tmp_path_factory.mktemp("any"), content)
    at = data.draw(st.integers(0, size))
    length = data.draw(st.integers(0, size - at))
    piece = data.draw(st.integers(1, 2 * SEG))
    with SealedReader(path, key, CLIP, size) as reader:
        pieces = list(reader.read_range(at, length, piece))
    assert b"".join(pieces) == content[at : at + length]
    assert all(0 < len(p) <= piece for p in pieces)


def test_no_plaintext_in_the_sealed_file(tmp_path):
    marker = b"MARKER-PLAINTEXT-7f3a" * 50
    data = os.urandom(SEG) + marker + os.urandom(3 * SEG)
    path, _ = seal(tmp_path, data)
    assert b"MARKER-PLAINTEXT-7f3a" not in path.read_bytes()


def damaged(tmp_path, change, size=4 * SEG + 10):
    tmp_path.mkdir(exist_ok=True)
    data = os.urandom(size)
    path, key = seal(tmp_path, data)
    change(path)
    with pytest.raises(DamagedCopyError) as raised:
        read_all(path, key, size)
    assert raised.value.clip_id == CLIP and f"clip {CLIP} is damaged at the station" in str(raised.value)
    return raised.value


def flip(at):
    def change(path):
        raw = bytearray(path.read_bytes())
        raw[at] ^= 0x01
        path.write_bytes(bytes(raw))

    return change


def test_a_flipped_bit_anywhere_is_refused(tmp_path):
    assert "segment 2 failed authentication" in str(damaged(tmp_path, flip(HEADER_BYTES + 2 * (SEG + TAG_BYTES) + 5)))
    assert "failed authentication" in str(damaged(tmp_path / "tag", flip(-1)))  # the last tag
    assert "failed authentication" in str(damaged(tmp_path / "hdr", flip(HEADER_BYTES - 1)))  # the nonce prefix


def test_a_truncated_or_extended_file_is_refused(tmp_path):
    def cut(n):
        return lambda path: path.write_bytes(path.read_bytes()[:n])

    assert "truncated or extended" in str(damaged(tmp_path, cut(-1)))
    # Cut at a segment boundary: the file as long as a shorter clip's. Its size is checked, and
    # the last segment left was not sealed as final either.
    assert "truncated or extended" in str(damaged(tmp_path / "b", cut(HEADER_BYTES + 3 * (SEG + TAG_BYTES))))
    assert "truncated or extended" in str(damaged(tmp_path / "c", lambda p: p.write_bytes(p.read_bytes() + b"\0")))
    assert "header" in str(damaged(tmp_path / "d", cut(5)))


def test_the_final_flag_is_bound_even_when_the_size_is_lied_about(tmp_path):
    """Drop the last segment and claim the shorter size: the new last segment was not sealed final."""
    size = 4 * SEG
    data = os.urandom(size)
    path, key = seal(tmp_path, data)
    path.write_bytes(path.read_bytes()[: HEADER_BYTES + 3 * (SEG + TAG_BYTES)])
    with pytest.raises(DamagedCopyError, match="segment 2 failed authentication"):
        read_all(path, key, 3 * SEG)


def test_swapped_segments_are_refused(tmp_path):
    def swap(path):
        raw = path.read_bytes()
        step = SEG + TAG_BYTES
        one, two = raw[HEADER_BYTES : HEADER_BYTES + step], raw[HEADER_BYTES + step : HEADER_BYTES + 2 * step]
        path.write_bytes(raw[:HEADER_BYTES] + two + one + raw[HEADER_BYTES + 2 * step :])

    assert "segment 0 failed authentication" in str(damaged(tmp_path, swap))


def test_a_segment_from_another_clip_is_refused_even_under_the_same_key(tmp_path):
    size = 3 * SEG
    data = os.urandom(size)
    key = new_data_key()
    paths = {}
    for clip_id in (CLIP, OTHER):
        (tmp_path / clip_id).write_bytes(data)
        paths[clip_id] = tmp_path / f"{clip_id}.sealed"
        copy_hash_and_seal(tmp_path / clip_id, paths[clip_id], Sealer(key, clip_id, size, SEG), size)
    # The other clip's whole file (same key, same bytes): its clip id is bound into every segment.
    with pytest.raises(DamagedCopyError, match="segment 0 failed authentication"):
        read_all(paths[OTHER], key, size, clip_id=CLIP)
    # One segment moved across, header kept: the nonce prefix differs too.
    mine, theirs = paths[CLIP].read_bytes(), paths[OTHER].read_bytes()
    step = SEG + TAG_BYTES
    at = HEADER_BYTES + step
    paths[CLIP].write_bytes(mine[:at] + theirs[at : at + step] + mine[at + step :])
    with SealedReader(paths[CLIP], key, CLIP, size) as reader:
        assert reader.segment(0) == data[:SEG]  # before the damage: genuine bytes
        with pytest.raises(DamagedCopyError, match="segment 1 failed authentication"):
            reader.segment(1)


@pytest.mark.parametrize(("at", "piece"), [(100, 1000), (0, SEG), (0, 3 * SEG)])
def test_a_read_stops_at_the_damaged_segment_having_returned_only_genuine_bytes(tmp_path, at, piece):
    """Segments are read ahead on a helper thread; the damaged one still ends the read in its turn."""
    size = 6 * SEG
    data = os.urandom(size)
    path, key = seal(tmp_path, data)
    flip(HEADER_BYTES + 2 * (SEG + TAG_BYTES) + 1)(path)
    got = []
    with SealedReader(path, key, CLIP, size) as reader, pytest.raises(DamagedCopyError, match="segment 2"):
        for p in reader.read_range(at, size - at, piece):
            got.append(p)
    assert b"".join(got) == data[at : 2 * SEG]


def test_a_read_left_early_stops_reading_ahead(tmp_path):
    size = 40 * SEG
    data = os.urandom(size)
    path, key = seal(tmp_path, data)
    with SealedReader(path, key, CLIP, size) as reader:
        pieces = reader.read_range(0, size, SEG)
        assert next(pieces) == data[:SEG]
        assert any(t.name.startswith("segments-ahead") for t in threading.enumerate())
        pieces.close()  # as an upload cut short closes its body
        assert not any(t.name.startswith("segments-ahead") for t in threading.enumerate())


def test_the_wrong_data_key_is_refused(tmp_path):
    path, _ = seal(tmp_path, b"x" * 100)
    with pytest.raises(DamagedCopyError, match="segment 0 failed authentication"):
        read_all(path, new_data_key(), 100)


def test_a_source_that_changed_size_is_reported_in_the_result(tmp_path):
    key = new_data_key()
    (tmp_path / "src").write_bytes(b"a" * 100)
    assert copy_hash_and_seal(tmp_path / "src", tmp_path / "a", Sealer(key, CLIP, 150), 150).size == 100
    assert copy_hash_and_seal(tmp_path / "src", tmp_path / "b", Sealer(key, CLIP, 50), 50).size == 51


def test_keyring_wraps_under_the_current_key_and_unwraps_under_any_it_holds():
    old, new = os.urandom(32), os.urandom(32)
    data_key = new_data_key()
    old_id, wrapped = Keyring(old).wrap(data_key)
    ring = Keyring(new, [old])
    assert old_id == key_id(old) != ring.current_id == key_id(new) and ring.ids == {old_id, key_id(new)}
    assert ring.unwrap(old_id, wrapped, CLIP) == data_key
    assert ring.wrap(data_key)[0] == key_id(new)
    with pytest.raises(ConfigError, match="not given"):
        Keyring(new).unwrap(old_id, wrapped, CLIP)
    with pytest.raises(DamagedCopyError, match="wrapped data key does not unwrap"):
        ring.unwrap(old_id, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), CLIP)


@pytest.mark.parametrize("text", ["", "abc", "7e" * 31, "7e" * 33, "zz" * 32])
def test_a_malformed_key_is_refused(text):
    with pytest.raises(ConfigError, match="64 hex digits"):
        parse_key(text, "key")


def test_a_key_parses_with_surrounding_space():
    assert parse_key("  " + "ab" * 32 + "\n", "key") == bytes.fromhex("ab" * 32)


def test_a_sealed_copy_is_written_past_the_page_cache_where_the_filesystem_allows(tmp_path, monkeypatch):
    """The bulk of the sealed bytes goes through the direct descriptor, byte for byte."""
    (tmp_path / "probe").touch()
    probe = PartWriter(BLOCK).open_direct(tmp_path / "probe")
    if probe is None:
        pytest.skip("this filesystem refuses O_DIRECT")
    os.close(probe)
    direct_bytes = 0
    real_pwrite = os.pwrite

    def counting(fd, data, offset):
        nonlocal direct_bytes
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            direct_bytes += len(data)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", counting)
    data = os.urandom(9 * SEGMENT_BYTES + 5)
    path, key = seal(tmp_path, data, segment_bytes=SEGMENT_BYTES)
    assert direct_bytes > 8 * SEGMENT_BYTES
    assert read_all(path, key, len(data), piece=1 << 20) == data


def _round_trip_of_several_blocks(tmp_path, name: str = "sealed") -> None:
    data = os.urandom(9 * SEGMENT_BYTES + 5)
    path, key = seal(tmp_path, data, segment_bytes=SEGMENT_BYTES, name=name)
    assert path.stat().st_size == sealed_size(len(data), SEGMENT_BYTES)
    assert read_all(path, key, len(data), piece=1 << 20) == data


def test_a_sealed_copy_is_the_same_where_direct_io_is_refused(tmp_path, monkeypatch):
    real_open = os.open

    def refusing(path, flags, *args):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing)
    _round_trip_of_several_blocks(tmp_path)


def test_the_source_is_read_past_the_page_cache_where_the_filesystem_allows(tmp_path, monkeypatch):
    """Every byte of the camera's file is read once, through an O_DIRECT descriptor, at page-aligned offsets."""
    if not direct_io_works(tmp_path):
        pytest.skip("this filesystem refuses O_DIRECT")
    reads: list[tuple[bool, int]] = []
    real_preadv = os.preadv

    def counting(fd, buffers, offset):
        n = real_preadv(fd, buffers, offset)
        reads.append((bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT), offset))
        return n

    monkeypatch.setattr(os, "preadv", counting)
    data = os.urandom(9 * SEGMENT_BYTES + 5)
    path, key = seal(tmp_path, data, segment_bytes=SEGMENT_BYTES)
    assert reads and all(direct and offset % BLOCK == 0 for direct, offset in reads)
    assert sorted(offset for _, offset in reads) == list(range(0, len(data), 4 * SEGMENT_BYTES))  # once each
    assert read_all(path, key, len(data), piece=1 << 20) == data


def test_a_source_is_read_through_the_page_cache_where_direct_reads_are_refused(tmp_path, monkeypatch):
    real_fcntl, real_preadv = fcntl.fcntl, os.preadv

    def refusing_flags(fd, command, *args):
        if command == fcntl.F_SETFL and args and args[0] & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(fd, command, *args)

    monkeypatch.setattr(fcntl, "fcntl", refusing_flags)
    _round_trip_of_several_blocks(tmp_path)
    monkeypatch.setattr(fcntl, "fcntl", real_fcntl)

    refused = 0

    def refusing_reads(fd, buffers, offset):  # a filesystem that takes the flag, then refuses a read
        nonlocal refused
        if real_fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused += 1
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", refusing_reads)
    _round_trip_of_several_blocks(tmp_path, name="again")
    assert refused or not direct_io_works(tmp_path)  # where direct reads are taken, they were refused and redone


def test_a_descriptor_passed_in_is_left_open_with_its_flags(tmp_path):
    data = os.urandom(3 * SEGMENT_BYTES + 11)
    (tmp_path / "src").write_bytes(data)
    fd = os.open(tmp_path / "src", os.O_RDONLY | os.O_NOFOLLOW)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        key = new_data_key()
        result = copy_hash_and_seal(fd, tmp_path / "dst", Sealer(key, CLIP, len(data)), len(data))
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == flags
        assert os.fstat(fd)  # still open
    finally:
        os.close(fd)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert read_all(tmp_path / "dst", key, len(data)) == data


def test_a_sealed_copy_is_the_same_where_space_cannot_be_preallocated(tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "preallocate", lambda fd, length: False)
    _round_trip_of_several_blocks(tmp_path)
