"""Size-limited disks for "disk full" faults: a tmpfs of a few MiB mounted over a data folder;
and read-only ones (the same tmpfs remounted read-only, or one file bound read-only over itself).

A real full filesystem, so every write the process makes (clip files, SQLite pages, the
WAL) meets a real ENOSPC at whatever point it happens to reach. Mounting needs root, which
the test machine and its CI run as; without it the fault cannot be staged and the test
says so rather than passing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class SmallDisk:
    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = Path(path)
        self.size_bytes = size_bytes
        self.mounted = False

    def mount(self) -> SmallDisk:
        if os.geteuid() != 0:
            raise AssertionError("the disk-full faults mount a small tmpfs, which needs root")
        self.path.mkdir(parents=True, exist_ok=True)
        self._run("mount", "-t", "tmpfs", "-o", f"size={self.size_bytes}", "tmpfs", str(self.path))
        self.mounted = True
        return self

    def resize(self, size_bytes: int) -> None:
        """Shrink it to what it holds and a little more (to fill it now), or, what an operator
        does when it is full, give it more room. The data stays."""
        self._run("mount", "-o", f"remount,size={size_bytes}", str(self.path))
        self.size_bytes = size_bytes

    def read_only(self) -> None:
        """What a file system with errors turns into (``errors=remount-ro``): everything stays
        readable, nothing can be written, not even by root."""
        self._run("mount", "-o", "remount,ro", str(self.path))

    def used_bytes(self) -> int:
        stat = os.statvfs(self.path)
        return (stat.f_blocks - stat.f_bfree) * stat.f_frsize

    def unmount(self) -> None:
        if self.mounted:
            self._run("umount", "-l", str(self.path))
            self.mounted = False

    @staticmethod
    def _run(*args: str) -> None:
        result = subprocess.run(args, capture_output=True, text=True, timeout=30)
        if result.returncode:
            raise AssertionError(f"{' '.join(args)} failed: {result.stderr.strip()}")


class ReadOnlyFile:
    """One file made read-only for every user, root included, by binding it read-only over
    itself (permission bits do not stop root). Its folder stays writable."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.mounted = False

    def mount(self) -> ReadOnlyFile:
        if os.geteuid() != 0:
            raise AssertionError("a read-only file is a read-only bind mount, which needs root")
        SmallDisk._run("mount", "--bind", str(self.path), str(self.path))
        self.mounted = True
        SmallDisk._run("mount", "-o", "remount,bind,ro", str(self.path))
        return self

    def unmount(self) -> None:
        if self.mounted:
            SmallDisk._run("umount", "-l", str(self.path))
            self.mounted = False
