"""Durable file operations: copy while hashing in one streaming pass, fsync, atomic writes.

Every function here leaves either the old state or the complete new state on disk, never a
half-written file under its final name, whatever moment the process dies.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COPY_BUFFER_BYTES = 4 << 20

# One helper thread per process hashes while the caller writes: hashlib releases the GIL
# on large buffers, so hashing hides behind I/O instead of adding to it.
_hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hasher")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def copy_and_hash(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` (which must not be its final name), fsync it; return (size, sha256).

    Reads once: each buffer is hashed on a helper thread while the previous one is written.
    Memory stays at two buffers whatever the file size.
    """
    digest = hashlib.sha256()
    size = 0
    buffers = [bytearray(COPY_BUFFER_BYTES), bytearray(COPY_BUFFER_BYTES)]
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        pending = None
        turn = 0
        while True:
            buf = buffers[turn]
            n = fin.readinto(buf)
            if pending is not None:
                pending.result()
            if not n:
                break
            view = memoryview(buf)[:n]
            pending = _hasher.submit(digest.update, view)
            _write_all(fout, view)
            size += n
            turn ^= 1
        os.fsync(fout.fileno())
    return size, digest.hexdigest()


def _write_all(f, view: memoryview) -> None:
    while view:
        written = f.write(view)
        view = view[written:]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` durably: write a temporary, fsync, rename, fsync the folder."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
