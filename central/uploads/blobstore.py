"""Where verified clips live: one small interface, a filesystem and an S3 backend (central/uploads/blobstore_s3.py).

A blob appears under its key only complete and durable: ``put`` returns only once the
bytes are stored and checked, and a failed ``put`` leaves nothing under the key. A blob is
never replaced: a ``put`` under a key that holds one succeeds only for the same bytes (a
retry, after which the blob counts as stored now), and raises ``BlobTaken`` for others (two
replicas storing one clip id at once: the first stored stands, as its record does). The
filesystem store links an fsynced file into place (a link, unlike a rename, never lands over
a file) and fsyncs the folder; the S3 store writes only if the key holds nothing
(``If-None-Match: *``). ``open_blob_store`` picks the backend from ``[blobs]`` in central's
config.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from fleet.config import CentralSettings
from fleet.errors import ConfigError, Conflict
from fleet.hashing import file_sha256, fsync_dir

log = logging.getLogger(__name__)

READ_PIECE = 1 << 20
PUT_ATTEMPTS = 3
"""A ``put`` meets a blob under its key, which is deleted before it is compared (the firmware
sweep): the put stores the bytes again, this many times at most."""


def check_key(key: str) -> str:
    """A blob key is one path segment (a clip id): nothing that could reach outside the store."""
    if not key or "/" in key or key.startswith("."):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobTaken(Conflict):
    """A ``put`` of other bytes under a key that holds a blob (409): blobs are never replaced."""


def same_bytes(key: str, stored_sha256: str | None, sha256: str | None) -> None:
    """A ``put`` under a key that holds a blob already: fine for the same bytes, else BlobTaken."""
    if stored_sha256 is None or stored_sha256 != sha256:
        log.error(
            "clip %s: the blob store holds other bytes (SHA-256 %s) than a new copy's (%s); it keeps them",
            key,
            stored_sha256,
            sha256,
        )
        raise BlobTaken(
            f"central holds other bytes for clip {key}, stored first: they are kept, and a person must look"
        )


class BlobStore(Protocol):
    def check(self) -> None:
        """At start-up: raise ConfigError if this store cannot be used, so central does not serve without it."""

    def put(self, source: Path, key: str, sha256: str | None = None) -> None:
        """Take ownership of the complete, fsynced ``source`` file and store it under ``key``.

        ``sha256`` is the clip's verified digest: a backend that re-reads the file checks it and
        keeps it with the blob. Raises (and stores nothing) when the store fails; BlobTaken when
        the key holds other bytes (never replaced)."""

    def exists(self, key: str) -> bool:
        """True only for a complete blob."""

    def size(self, key: str) -> int: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start``..``end`` (exclusive) in pieces of bounded size."""

    def delete(self, key: str) -> None: ...

    def delete_many(self, keys: list[str]) -> None:
        """Delete these blobs durably (the retention job's purge); missing ones are no error."""
        ...

    def keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, when it was stored, in POSIX seconds) of every complete blob whose key starts with
        ``prefix`` (two characters at least): what a sweep of one kind of blob walks."""
        ...

    def stored_at(self, key: str) -> float:
        """When the blob under ``key`` was stored (POSIX seconds); FileNotFoundError for none."""
        ...


class FilesystemBlobStore:
    """Blobs under ``root/<key[:2]>/<key>``: two-character fan-out keeps folders small."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)

    def _path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """The blob's path as a string: every upload asks twice, and pathlib cost more than the stat."""
        key = check_key(key)  # refuses a key that could leave the store
        return f"{self._root}/{key[:2]}/{key}"

    def check(self) -> None:
        """The folder was made by the constructor; a blob is linked into place (a rename would
        replace one), so a filesystem that cannot hard-link (FAT, some network shares) is refused
        here, not at every upload."""
        probe = self.root / f".link-check-{os.getpid()}"
        linked = probe.with_suffix(".linked")
        try:
            probe.touch()
            os.link(probe, linked)
        except OSError as exc:
            raise ConfigError(
                f"blob store {self.root}: its filesystem cannot hard-link files ({exc.strerror or exc}), "
                "which storing a clip needs: put central's data_dir on one that can (ext4, XFS, ZFS) or use S3"
            ) from None
        finally:
            linked.unlink(missing_ok=True)
            probe.unlink(missing_ok=True)

    def put(self, source: Path, key: str, sha256: str | None = None) -> None:
        target = self._file(key)
        folder = os.path.dirname(target)
        if not os.path.isdir(folder):  # a fan-out folder's first blob
            os.makedirs(folder, exist_ok=True)
            fsync_dir(self.root)
        for attempt in range(PUT_ATTEMPTS):
            try:
                os.link(source, target)  # never over a blob (a rename would replace it)
            except FileExistsError:
                try:
                    held = file_sha256(target) if os.stat(target).st_size == os.stat(source).st_size else None
                    same_bytes(key, held, sha256 or file_sha256(source))  # other sizes: other bytes, unread
                    os.utime(target)  # stored again, so stored now (the firmware sweep spares a fresh blob)
                except FileNotFoundError:
                    if attempt + 1 == PUT_ATTEMPTS or not source.exists():
                        raise
                    continue  # deleted since it was met (the firmware sweep): the key is free again
            else:
                # The target's folder only: should a power cut bring the source's name back, the
                # receiver's start-up removes .part files that no upload is receiving (or stores
                # the one an upload is, again: the same bytes).
                fsync_dir(folder)
            break
        os.unlink(source)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._file(key))

    def size(self, key: str) -> int:
        return os.stat(self._file(key)).st_size

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

    def keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        if len(prefix) < 2:
            raise ValueError("a blob prefix has two characters at least (the fan-out folder)")
        folder = self.root / check_key(prefix)[:2]
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(prefix):
                try:
                    yield entry.name, entry.stat().st_mtime
                except FileNotFoundError:
                    pass  # deleted since the folder was read

    def stored_at(self, key: str) -> float:
        return self._path(key).stat().st_mtime

    def delete_many(self, keys: list[str]) -> None:
        folders: set[str] = set()
        for key in keys:  # strings, not Paths: a purge deletes millions, and pathlib cost most of it
            target = self._file(key)
            try:
                os.unlink(target)
                folders.add(os.path.dirname(target))
            except FileNotFoundError:
                pass
        for folder in sorted(folders):  # one fsync per folder, so a purge stays done after a power cut
            fsync_dir(Path(folder))


def open_blob_store(settings: CentralSettings) -> BlobStore:
    """The blob store ``[blobs]`` asks for (no I/O beyond creating the filesystem store's folder)."""
    if settings.blobs.backend == "s3":
        from central.uploads.blobstore_s3 import S3BlobStore  # boto3 is slow to import: only when used

        return S3BlobStore(settings.blobs)
    return FilesystemBlobStore(Path(settings.data_dir) / "blobs")
