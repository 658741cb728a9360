"""Where verified clips live. A small interface so an S3 backend can follow the filesystem one.

A blob appears under its key only complete and durable: ``put`` moves an fsynced file
into place with an atomic rename and fsyncs the folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from fleet.hashing import fsync_dir

READ_PIECE = 1 << 20


class BlobStore(Protocol):
    def put(self, source: Path, key: str) -> None:
        """Take ownership of the complete, fsynced ``source`` file and store it under ``key``."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start``..``end`` (exclusive) in pieces of bounded size."""

    def delete(self, key: str) -> None: ...

    def delete_many(self, keys: list[str]) -> None:
        """Delete these blobs durably (the retention job's purge); missing ones are no error."""
        ...


class FilesystemBlobStore:
    """Blobs under ``root/<key[:2]>/<key>``: two-character fan-out keeps folders small."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key[:2] / key

    def put(self, source: Path, key: str) -> None:
        target = self._path(key)
        created = not target.parent.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        if created:
            fsync_dir(self.root)
        os.replace(source, target)
        fsync_dir(target.parent)
        fsync_dir(source.parent)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with open(self._path(key), "rb") as f:
            f.seek(start)
            remaining = (end if end is not None else self.size(key)) - start
            while remaining > 0:
                piece = f.read(min(READ_PIECE, remaining))
                if not piece:
                    break
                remaining -= len(piece)
                yield piece

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_many(self, keys: list[str]) -> None:
        folders: set[str] = set()
        root = str(self.root)
        for key in keys:
            self._path(key)  # refuses a key that could leave the store
            folder = f"{root}/{key[:2]}"
            try:
                os.unlink(f"{folder}/{key}")
                folders.add(folder)
            except FileNotFoundError:
                pass
        for folder in sorted(folders):  # one fsync per folder, so a purge stays done after a power cut
            fsync_dir(Path(folder))
