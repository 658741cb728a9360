"""Appending bytes to a file, the bulk of them past the page cache (O_DIRECT).

Used by central's upload receiver (each PATCH's bytes into a ``.part`` file) and by the
station's sealed ingest (``fleet.hashing.copy_hash_and_seal``). Why: both write each clip once
and rarely read it soon after, and the fsync that follows must put the bytes on disk anyway.
Through the page cache each new byte is first copied into newly allocated cache pages; on
this machine (a VM whose free memory the host takes back) that copy cost 10-13 s of kernel
CPU per GiB, against under 1 s written direct (docs/benchmarks-history.md, "Where a buffered
write's time goes").

Direct I/O needs the file offset, the length and the memory address aligned to the device's
block. Two writers here:

- ``PartWriter`` (central's receiver): a batch is copied once into an aligned staging buffer,
  placed so that its first block boundary falls on a page; the aligned middle is written
  direct, the head and tail (under a block each) through the page cache. Not thread-safe:
  each writing thread (the receiver's pool thread, its event loop for small batches) owns its
  own instance.
- ``DirectAppender`` (the sealed ingest): the caller makes a whole file's bytes block by block
  in the appender's buffers; what a block leaves past its last whole page is carried to the
  front of the next, so every write is direct but the file's last partial page; the writes
  run on threads of their own.

A filesystem that refuses O_DIRECT, a batch with no whole block in it, or any refusal of a
direct write gets plain writes: the bytes on disk are the same, only the path there differs.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing these bytes to disk now, without waiting for them.

    The fsync that must follow then finds most of the data already written. (On Linux,
    POSIX_FADV_DONTNEED starts writeback of dirty pages and drops clean ones.) For the batches
    a ``PartWriter`` cannot write direct.
    """
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


BLOCK = 4096
"""Alignment of direct writes: a page, a multiple of every common logical block size."""
DIRECT_MIN_BYTES = BLOCK
"""A batch with no whole block in it is written through the page cache. Anything larger is
worth writing direct, even a small clip's one batch: every PATCH ends in an fsync, so the
device's wait comes either way, and on this machine a 64 KiB clip written through fresh cache
pages cost 1.6 ms of kernel CPU against 0.2 ms direct (docs/benchmarks-history.md, the peer benchmark)."""


def write_all(fd: int, pieces: list[bytes], offset: int) -> int:
    """Write every piece at ``offset`` with as few system calls as possible."""
    total = sum(len(p) for p in pieces)
    written = os.pwritev(fd, pieces, offset)
    if written < total:  # a partial write: finish the rest (a full disk raises here)
        _pwrite_all(fd, memoryview(b"".join(pieces))[written:], offset + written)
    return total


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


class PartWriter:
    """Writes batches of pieces into ``.part`` files; one instance per writing thread."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        """The largest batch written direct; larger ones (never made by the receiver) go buffered."""
        self._stage: mmap.mmap | None = None  # page-aligned; made on first use
        self.direct = hasattr(os, "O_DIRECT")
        """False once a filesystem refused direct I/O: from then on every write is buffered."""

    def open_direct(self, path: Path) -> int | None:
        """A second descriptor of ``path`` for direct writes, or None where there is none to have."""
        if not self.direct:
            return None
        try:
            return os.open(path, os.O_WRONLY | os.O_DIRECT)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._refused(path)
            return None

    def write(
        self,
        fd: int,
        direct_fd: int | None,
        pieces: list[bytes],
        offset: int,
        meanwhile: Callable[[list[bytes] | list[memoryview]], object] | None = None,
    ) -> list[bytes] | list[memoryview]:
        """Write the batch at ``offset``; return its bytes to hash (one contiguous piece where it was staged).

        ``meanwhile`` is given those bytes before they are written, for work that reads them
        while the write goes on (the receiver starts hashing them on another thread there); the
        caller must let it finish before this writer's next batch overwrites the staging buffer."""
        total = sum(len(p) for p in pieces)
        if not self._goes_direct(direct_fd, offset, total):
            if meanwhile is not None:
                meanwhile(pieces)
            write_all(fd, pieces, offset)
            start_writeback(fd, offset, total)
            return pieces
        batch = self.staged(offset, total)
        end = 0
        for piece in pieces:
            batch[end : end + len(piece)] = piece
            end += len(piece)
        if meanwhile is not None:
            meanwhile([batch])
        self.write_staged(fd, direct_fd, offset, total)
        return [batch]

    def staged(self, offset: int, length: int) -> memoryview:
        """The staging buffer's place for ``length`` (at most ``capacity``) bytes bound for ``offset``:
        a caller that makes the bytes there (the ingest's sealing) saves copying them in;
        ``write_staged`` writes them."""
        if length > self.capacity:
            raise ValueError(f"a staged batch is at most {self.capacity} bytes")
        phase = offset % BLOCK
        return self._staging()[phase : phase + length]

    def write_staged(self, fd: int, direct_fd: int | None, offset: int, length: int) -> None:
        """Write the ``length`` bytes put in ``staged(offset, length)``."""
        phase = offset % BLOCK
        stage = self._staging()
        batch = stage[phase : phase + length]
        if not self._goes_direct(direct_fd, offset, length):
            _pwrite_all(fd, batch, offset)
            start_writeback(fd, offset, length)
            return
        assert direct_fd is not None
        head = (BLOCK - phase) % BLOCK
        body = (length - head) // BLOCK * BLOCK
        if head:
            _pwrite_all(fd, batch[:head], offset)
        try:
            done = os.pwrite(direct_fd, stage[phase + head : phase + head + body], offset + head)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._refused(None)
            done = 0
        _pwrite_all(fd, batch[head + done :], offset + head + done)  # the tail, or what was not written direct

    def _goes_direct(self, direct_fd: int | None, offset: int, length: int) -> bool:
        head = (BLOCK - offset % BLOCK) % BLOCK
        body = max(length - head, 0) // BLOCK * BLOCK
        return direct_fd is not None and self.direct and body >= DIRECT_MIN_BYTES and length <= self.capacity

    def _staging(self) -> memoryview:
        if self._stage is None:
            self._stage = mmap.mmap(-1, self.capacity + BLOCK)
        return memoryview(self._stage)

    def _refused(self, path: Path | None) -> None:
        self.direct = False
        log.info("direct I/O refused%s; uploads are written through the page cache", f" for {path}" if path else "")


_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = getattr(_libc, "fallocate64", None) or getattr(_libc, "fallocate", None)
if _fallocate is not None:
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def preallocate(fd: int, length: int) -> bool:
    """Give the file ``length`` bytes of disk now (fallocate: read as zeros until written); False where
    the filesystem cannot. Not ``os.posix_fallocate``, which falls back to writing zeros."""
    if _fallocate is None or not length:
        return False
    if _fallocate(fd, 0, 0, length) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code))


_spare: dict[int, list[mmap.mmap]] = {}
_spare_lock = threading.Lock()
SPARE_BUFFERS = 8
"""Page-aligned buffers of each size kept for the next copy: on this VM, touching fresh memory
costs about 0.6 s of kernel CPU per GiB, so a sealed ingest reuses its few buffers clip after clip."""


def take_buffer(size: int) -> mmap.mmap:
    """A page-aligned buffer of ``size`` bytes (one kept from an earlier copy, else a new one)."""
    with _spare_lock:
        kept = _spare.get(size)
        if kept:
            return kept.pop()
    return mmap.mmap(-1, size)


def give_back(buffers: list[mmap.mmap]) -> None:
    """Keep these buffers for the next ``take_buffer`` (a few of each size; the rest are let go)."""
    with _spare_lock:
        for buffer in buffers:
            kept = _spare.setdefault(len(buffer), [])
            if len(kept) < SPARE_BUFFERS:
                kept.append(buffer)


class DirectAppender:
    """Writes a file from offset 0 as a stream of blocks made in place, every whole page of it direct.

    The caller makes each block straight into a page-aligned buffer (``reserve``, then
    ``commit``), and a writing thread writes it while the next is made. What a block leaves over
    past its last whole page (under a page) is carried to the front of the next buffer, so every
    write starts on a page boundary and goes direct whatever the blocks' lengths: only the
    stream's last partial page goes through the page cache (at ``close``). ``writers`` writes
    are in flight at once, so the device has the next one queued when one ends; each has its own
    buffer, plus the one being made. Where the filesystem refuses direct I/O the same bytes are
    written through the page cache."""

    def __init__(self, fd: int, path: Path, capacity: int, *, writers: int = 2, direct: bool = True) -> None:
        self._fd = fd
        self._size = -(-(capacity + BLOCK) // BLOCK) * BLOCK
        self._buffers = [take_buffer(self._size) for _ in range(writers + 1)]
        self._views = [memoryview(b) for b in self._buffers]
        self._direct_fd = PartWriter(0).open_direct(path) if direct else None
        self._direct = self._direct_fd is not None
        self._pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="direct-writer")
        self._writes: deque[Future[None]] = deque()
        self._writers = writers
        self._count = 0
        self._carry = b""
        self.offset = 0
        """Bytes handed to the writing threads so far (always a whole number of pages)."""

    def carry(self, data: bytes) -> None:
        """Put ``data`` (under a page, e.g. a file header) in front of the next block."""
        if len(self._carry) + len(data) >= BLOCK:
            raise ValueError("carried bytes must stay under a page")
        self._carry += data

    def reserve(self, length: int) -> memoryview:
        """A buffer for the next block of ``length`` bytes (at most the capacity): make them there, then ``commit``."""
        if len(self._carry) + length > self._size:
            raise ValueError(f"a block is at most {self._size - BLOCK} bytes")
        if len(self._writes) == self._writers:
            self._writes.popleft().result()  # the buffer this block goes into is written: free
        view = self._views[self._count % len(self._views)]
        view[: len(self._carry)] = self._carry
        return view[len(self._carry) : len(self._carry) + length]

    def commit(self, length: int) -> None:
        """Write the block made in the last ``reserve``'s buffer (its whole pages; the rest is carried)."""
        view = self._views[self._count % len(self._views)]
        end = len(self._carry) + length
        whole = end // BLOCK * BLOCK
        self._carry = bytes(view[whole:end])
        if whole:
            self._writes.append(self._pool.submit(self._write, view[:whole], self.offset))
            self.offset += whole
            self._count += 1

    def _write(self, view: memoryview, offset: int) -> None:
        done = 0
        if self._direct and self._direct_fd is not None:
            try:
                done = os.pwrite(self._direct_fd, view, offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                if self._direct:
                    log.info("direct I/O refused; this file is written through the page cache")
                self._direct = False
        if done < len(view):  # refused, or a short direct write: the rest through the page cache
            _pwrite_all(self._fd, view[done:], offset + done)
            start_writeback(self._fd, offset + done, len(view) - done)

    def close(self, *, complete: bool = True) -> int:
        """Wait for the writes; with ``complete``, write the carried tail. The stream's length."""
        try:
            while self._writes:
                self._writes.popleft().result()
            if complete and self._carry:
                _pwrite_all(self._fd, memoryview(self._carry), self.offset)
                self.offset += len(self._carry)
                self._carry = b""
            return self.offset
        finally:
            self._pool.shutdown(wait=True)
            if self._direct_fd is not None:
                os.close(self._direct_fd)
                self._direct_fd = None
            give_back(self._buffers)
            self._buffers, self._views = [], []

    def __enter__(self) -> DirectAppender:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(complete=exc_type is None)
