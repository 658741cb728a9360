"""An exclusive claim on a file, held as long as the process (or its holder) lives.

An ``flock`` taken on an open file: the kernel lets go of it when the file is closed, which a
process's death does, so a crashed holder never leaves a stale claim behind (unlike a pid
file). The holder writes who it is into the file, so whoever is refused can say by whom.
Used by a station process (one per data folder) and by central's leader on SQLite.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class FileClaim:
    """``try_take()`` without waiting; ``let_go()`` (or the process's end) releases it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_take(self, holder: str = "") -> bool:
        """Claim the file now if no one else holds it; True while this claim holds it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if holder:
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode() + b"\n", 0)
        self._fd = fd
        return True

    def holder(self) -> str:
        """Who wrote themselves into the file last (the holder, while it is held)."""
        try:
            return self.path.read_text(errors="replace").strip()[:200]
        except OSError:
            return ""

    def let_go(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the flock goes with the file
            self._fd = None
