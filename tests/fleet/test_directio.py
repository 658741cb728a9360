"""PartWriter and DirectAppender: bytes land byte for byte at their offsets, whichever path each part took."""

import errno
import fcntl
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet import directio
from fleet.directio import BLOCK, DIRECT_MIN_BYTES, DirectAppender, PartWriter, preallocate, take_buffer
from tests.support.directio import direct_io_works

MiB = 1 << 20


def _pieces(rng: random.Random, total: int) -> list[bytes]:
    pieces, left = [], total
    while left:
        n = min(left, rng.choice([1, 17, 4095, 4096, 65536, 100_000]))
        pieces.append(rng.randbytes(n))
        left -= n
    return pieces


class _Counting:
    """Which descriptor each os.pwrite went to (the kernel does the writing)."""

    def __init__(self, monkeypatch, refuse_direct: bool = False) -> None:
        self.calls: list[tuple[int, int, int]] = []
        real = os.pwrite
        self.direct_fds: set[int] = set()

        def pwrite(fd, data, offset):
            if refuse_direct and fd in self.direct_fds:
                raise OSError(errno.EINVAL, "Invalid argument")
            self.calls.append((fd, len(data), offset))
            return real(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", pwrite)


def _open(tmp_path, writer: PartWriter, counting: _Counting | None = None):
    part = tmp_path / "x.part"
    part.touch()
    fd = os.open(part, os.O_RDWR)
    direct = writer.open_direct(part)
    if counting is not None and direct is not None:
        counting.direct_fds.add(direct)
    return part, fd, direct


def _open_direct(tmp_path, writer: PartWriter, counting: _Counting):
    """As ``_open``, for a test that is about direct writes: there must be a direct descriptor."""
    part, fd, direct = _open(tmp_path, writer, counting)
    if direct is None:
        pytest.fail(f"this test needs a filesystem with O_DIRECT (tmp_path {tmp_path})")
    return part, fd, direct


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(0, 3 * BLOCK),
    sizes=st.lists(
        st.sampled_from([0, 1, 5000, DIRECT_MIN_BYTES - 1, DIRECT_MIN_BYTES, 3 * MiB + 123]), min_size=1, max_size=4
    ),
    seed=st.integers(0, 1000),
)
def test_batches_land_at_their_offsets_byte_for_byte(tmp_path_factory, start, sizes, seed):
    tmp_path = tmp_path_factory.mktemp("part")
    rng = random.Random(seed)
    writer = PartWriter(capacity=8 * MiB)
    part, fd, direct = _open(tmp_path, writer)
    expected = bytearray(rng.randbytes(start))
    os.pwrite(fd, bytes(expected), 0)
    try:
        offset = start
        for size in sizes:
            pieces = _pieces(rng, size)
            written = writer.write(fd, direct, pieces, offset)
            assert b"".join(written) == b"".join(pieces)  # what the caller hashes is what was written
            expected += b"".join(pieces)
            offset += size
        os.fsync(fd)
    finally:
        os.close(fd)
        if direct is not None:
            os.close(direct)
    assert part.read_bytes() == bytes(expected)


def test_the_aligned_middle_of_a_big_batch_goes_direct_and_the_edges_through_the_cache(tmp_path, monkeypatch):
    counting = _Counting(monkeypatch)
    writer = PartWriter(capacity=8 * MiB)
    part, fd, direct = _open_direct(tmp_path, writer, counting)
    data = random.Random(1).randbytes(2 * MiB)
    try:
        os.pwrite(fd, b"x" * 100, 0)
        writer.write(fd, direct, [data[:MiB], data[MiB:]], 100)
    finally:
        os.close(fd)
        os.close(direct)
    head, body, tail = counting.calls[1:]
    assert head == (fd, BLOCK - 100, 100)
    assert body[0] == direct and body[2] == BLOCK and body[1] % BLOCK == 0
    assert tail[0] == fd and tail[1] < BLOCK and tail[2] == BLOCK + body[1]
    assert part.read_bytes() == b"x" * 100 + data


def test_a_small_clips_whole_blocks_go_direct_too(tmp_path, monkeypatch):
    counting = _Counting(monkeypatch)
    writer = PartWriter(capacity=8 * MiB)
    part, fd, direct = _open_direct(tmp_path, writer, counting)
    data = random.Random(3).randbytes(64 * 1024 + 10)
    try:
        writer.write(fd, direct, [data], 0)
    finally:
        os.close(fd)
        os.close(direct)
    assert counting.calls[0] == (direct, 64 * 1024, 0)  # no head: the file starts on a block
    assert counting.calls[1] == (fd, 10, 64 * 1024)
    assert part.read_bytes() == data


def test_a_batch_with_no_whole_block_is_written_through_the_cache(tmp_path, monkeypatch):
    counting = _Counting(monkeypatch)
    writer = PartWriter(capacity=8 * MiB)
    part, fd, direct = _open(tmp_path, writer, counting)
    try:
        pieces = [b"a" * 1000, b"b" * 2000]
        assert writer.write(fd, direct, pieces, 0) == pieces
    finally:
        os.close(fd)
        if direct is not None:
            os.close(direct)
    assert not counting.calls  # one pwritev on the buffered descriptor
    assert part.read_bytes() == b"a" * 1000 + b"b" * 2000


def test_a_refused_direct_write_is_written_through_the_cache_and_direct_io_is_given_up(tmp_path, monkeypatch):
    counting = _Counting(monkeypatch, refuse_direct=True)
    writer = PartWriter(capacity=8 * MiB)
    part, fd, direct = _open_direct(tmp_path, writer, counting)
    data = random.Random(2).randbytes(2 * MiB + 7)
    try:
        writer.write(fd, direct, [data], 0)
        assert not writer.direct
        assert writer.open_direct(part) is None
        writer.write(fd, direct, [data], len(data))
    finally:
        os.close(fd)
        os.close(direct)
    assert all(call[0] == fd for call in counting.calls)
    assert part.read_bytes() == data + data


class _WritesByKind:
    """Every os.pwrite as (direct?, length, offset), direct told by the descriptor's flags."""

    def __init__(self, monkeypatch, refuse_direct: bool = False) -> None:
        self.calls: list[tuple[bool, int, int]] = []
        real = os.pwrite

        def pwrite(fd, data, offset):
            direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
            if refuse_direct and direct:
                raise OSError(errno.EINVAL, "Invalid argument")
            self.calls.append((direct, len(data), offset))
            return real(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", pwrite)


def _append(path, blocks: list[bytes], head: bytes = b"", writers: int = 2) -> None:
    with open(path, "w+b", buffering=0) as f, DirectAppender(f.fileno(), path, 4 * MiB, writers=writers) as out:
        out.carry(head)
        for block in blocks:
            out.reserve(len(block))[:] = block
            out.commit(len(block))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    head=st.binary(max_size=40),
    sizes=st.lists(st.sampled_from([0, 1, 100, BLOCK - 1, BLOCK, 4 * MiB - 7, 4 * MiB]), max_size=5),
    writers=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_an_appended_stream_lands_byte_for_byte_every_direct_write_on_whole_pages(
    tmp_path_factory, monkeypatch, head, sizes, writers, seed
):
    tmp_path = tmp_path_factory.mktemp("append")
    rng = random.Random(seed)
    blocks = [rng.randbytes(n) for n in sizes]
    with monkeypatch.context() as patched:
        writes = _WritesByKind(patched)
        _append(tmp_path / "x.part", blocks, head, writers)
    expected = head + b"".join(blocks)
    assert (tmp_path / "x.part").read_bytes() == expected
    buffered = [(n, at) for direct, n, at in writes.calls if not direct]
    assert all(n % BLOCK == 0 and at % BLOCK == 0 for direct, n, at in writes.calls if direct)
    if direct_io_works(tmp_path):  # only the last partial page goes through the page cache
        assert buffered == ([(len(expected) % BLOCK, len(expected) // BLOCK * BLOCK)] if len(expected) % BLOCK else [])


def test_an_appended_stream_is_the_same_where_direct_writes_are_refused(tmp_path, monkeypatch):
    if not direct_io_works(tmp_path):
        pytest.skip("this filesystem refuses O_DIRECT")
    rng = random.Random(5)
    blocks = [rng.randbytes(4 * MiB - 3) for _ in range(3)]
    with monkeypatch.context() as patched:
        writes = _WritesByKind(patched, refuse_direct=True)
        _append(tmp_path / "x.part", blocks, b"header")
    assert (tmp_path / "x.part").read_bytes() == b"header" + b"".join(blocks)
    assert writes.calls and not any(direct for direct, _, _ in writes.calls)


def test_a_failed_write_is_raised_and_the_buffers_are_kept_for_the_next_stream(tmp_path, monkeypatch):
    def failing(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(directio, "_spare", {})
    with monkeypatch.context() as patched:
        patched.setattr(os, "pwrite", failing)
        with pytest.raises(OSError, match="No space"):
            _append(tmp_path / "x.part", [b"x" * (4 * MiB)] * 4, writers=2)
    (size, kept), *others = directio._spare.items()
    assert not others and size % BLOCK == 0 and len(kept) == 3  # two in flight and the one being made
    last = kept[-1]
    assert take_buffer(size) is last


def test_preallocated_space_reads_as_zeros_and_the_file_has_its_length(tmp_path):
    with open(tmp_path / "x.part", "w+b", buffering=0) as f:
        if not preallocate(f.fileno(), 3 * BLOCK + 5):
            pytest.skip("this filesystem cannot preallocate")
        assert os.fstat(f.fileno()).st_size == 3 * BLOCK + 5
        assert os.fstat(f.fileno()).st_blocks * 512 >= 3 * BLOCK + 5  # the space is taken now
    assert (tmp_path / "x.part").read_bytes() == bytes(3 * BLOCK + 5)
