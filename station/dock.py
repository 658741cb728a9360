"""Reading the dock inbox (docs/contracts.md §3): one folder per docked camera.

Parsing is strict and complete before anything is copied, so a bad folder is reported
with one clear reason and nothing of it is half-ingested.

Whoever holds a camera writes its folder, so nothing below the dock folder is trusted. A
camera folder and its ``clips/`` are opened once without following links, and every file
in them is checked, opened, written and removed relative to those descriptors, never by a
path resolved again. A symbolic link, FIFO, device or socket where the contract has a file
or a folder makes the folder bad: a link would have the station read (and upload as
footage) or delete a file of its own host, and a FIFO would block the reader forever.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import overload

import msgspec

from fleet.errors import DockFolderError
from fleet.protocol import ClipSidecar, DeviceInfo, IngestedFile

DOCKED_MARKER = "DOCKED"
DEVICE_FILE = "device.json"
INGESTED_FILE = "INGESTED.json"
CLIPS_DIR = "clips"
VIDEO_SUFFIX = ".mp4"
SIDECAR_SUFFIX = ".json"
MAX_JSON_BYTES = 1 << 20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO (swapped in after the check) returns at once instead of waiting
# for a writer; on a regular file it changes nothing.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class DockedClip:
    name: str
    video: Path
    sidecar_path: Path
    sidecar: ClipSidecar
    size: int


@dataclass(frozen=True)
class DockedCamera:
    folder: Path
    device: DeviceInfo
    device_json: str
    clips: list[DockedClip]
    ingested: IngestedFile | None
    """What an earlier, possibly interrupted, ingest of this folder already wrote."""


def display_name(name: str) -> str:
    """A name from the dock as printable text: the camera's bytes need not be UTF-8 (they arrive
    as surrogates, which the database and the wire refuse) and may hold line breaks or terminal
    escapes (which would forge log lines). Printable names are kept as they are."""
    if name.isprintable():
        return name
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return name
    return "of an unknown type"


class CameraFolder:
    """One docked camera folder, opened without following links; files below it are reached only through it."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder)
        self.name = display_name(self.path.name)
        self.fd = self._open_dir(None, str(self.path), "the camera folder")
        try:
            self.clips_fd = self._open_dir(self.fd, CLIPS_DIR, CLIPS_DIR)
        except BaseException:
            os.close(self.fd)
            raise

    # The camera folder itself must exist; a folder below it may be missing.
    @overload
    def _open_dir(self, dir_fd: None, name: str, label: str) -> int: ...
    @overload
    def _open_dir(self, dir_fd: int, name: str, label: str) -> int | None: ...
    def _open_dir(self, dir_fd: int | None, name: str, label: str) -> int | None:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            if dir_fd is None:
                raise
            return None  # a camera with no clips folder has no clips
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            kind = _kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            raise DockFolderError(self.name, f"{label} is {kind}, not a folder (not followed)") from None

    def close(self) -> None:
        for fd in (self.clips_fd, self.fd):
            if fd is not None:
                os.close(fd)
        self.clips_fd = None

    def __enter__(self) -> CameraFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _where(self, relative: str) -> tuple[int | None, str]:
        parent, _, name = relative.rpartition("/")
        if parent == CLIPS_DIR:
            return self.clips_fd, name
        return self.fd, relative

    def lstat(self, relative: str) -> os.stat_result | None:
        """The entry itself (a link is not followed), or None if there is none."""
        dir_fd, name = self._where(relative)
        if dir_fd is None:
            return None
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def require_regular(self, relative: str, st: os.stat_result | None = None) -> os.stat_result:
        st = st if st is not None else self.lstat(relative)
        if st is None:
            raise DockFolderError(self.name, f"{relative} is missing")
        if not stat.S_ISREG(st.st_mode):
            follow = " (not followed)" if stat.S_ISLNK(st.st_mode) else ""
            raise DockFolderError(self.name, f"{relative} is {_kind(st.st_mode)}, not a regular file{follow}")
        if st.st_nlink > 1:  # a camera's FAT storage has none; a dock folder on the station's disk could name its files
            raise DockFolderError(
                self.name, f"{relative} has {st.st_nlink} names (a hard link): a camera's own files have one"
            )
        return st

    def open_file(self, relative: str) -> int:
        """A read-only descriptor of a regular file of this folder (never through a link, never a FIFO)."""
        checked = self.require_regular(relative)
        dir_fd, name = self._where(relative)
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise DockFolderError(
                self.name, f"{relative} is a symbolic link, not a regular file (not followed)"
            ) from None
        try:
            opened = self.require_regular(relative, os.fstat(fd))
            # The file checked must be the file opened: a hard link swapped in between and its dock
            # name removed again after the open has one name by the time it is looked at.
            if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
                raise DockFolderError(self.name, f"{relative} was replaced by another file while it was opened")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_bytes(self, relative: str, limit: int) -> bytes:
        fd = self.open_file(relative)
        try:
            if os.fstat(fd).st_size > limit:
                raise DockFolderError(self.name, f"{relative} is larger than {limit} bytes")
            chunks, total = [], 0
            while piece := os.read(fd, limit + 1 - total):
                chunks.append(piece)
                total += len(piece)
                if total > limit:
                    raise DockFolderError(self.name, f"{relative} is larger than {limit} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def clip_names(self) -> list[str]:
        """Names in ``clips/`` (hidden files are not the camera's)."""
        if self.clips_fd is None:
            return []
        return sorted(n for n in os.listdir(self.clips_fd) if not n.startswith("."))

    def remove_clip_file(self, name: str) -> None:
        """Remove a name from ``clips/`` (a link or hard link goes, never what it names)."""
        if self.clips_fd is not None:
            try:
                os.unlink(name, dir_fd=self.clips_fd)
            except FileNotFoundError:
                pass

    def sync_clips(self) -> None:
        if self.clips_fd is not None:
            os.fsync(self.clips_fd)

    def write_atomic(self, name: str, data: bytes) -> None:
        """Replace ``name`` in the folder durably (``write_atomic_at``)."""
        write_atomic_at(self.fd, name, data)


def write_atomic_at(dir_fd: int, name: str, data: bytes) -> None:
    """Replace ``name`` in the folder ``dir_fd`` durably: ``.<name>.tmp``, fsync, rename, fsync the
    folder. A link planted under the temporary name is removed, not written through; the rename
    replaces a link under ``name`` itself."""
    tmp = f".{name}.tmp"
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def docked_folders(dock_dir: Path) -> list[Path]:
    """Folders whose copy is complete (``DOCKED`` present), in name order, and every link in
    the dock folder: a link is never followed, so it is reported rather than left unexplained."""
    try:
        entries = sorted(os.scandir(dock_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    return [
        Path(e.path)
        for e in entries
        if not e.name.startswith(".")
        and (e.is_symlink() or (e.is_dir(follow_symlinks=False) and _lexists(os.path.join(e.path, DOCKED_MARKER))))
    ]


def still_docked(folder: Path) -> bool:
    """Whether the folder (or the link standing for one) is still in the dock."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return False
    return stat.S_ISLNK(st.st_mode) or (stat.S_ISDIR(st.st_mode) and _lexists(folder / DOCKED_MARKER))


def _lexists(path) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


def clip_files(folder: Path | CameraFolder) -> list[str]:
    """Names in ``clips/`` that are still to be ingested; none where the folder or ``clips/`` is not a real folder."""
    if isinstance(folder, CameraFolder):
        return folder.clip_names()
    try:
        with CameraFolder(folder) as camera:
            return camera.clip_names()
    except (DockFolderError, OSError):
        return []


def stamp(folder: Path) -> tuple[int, int]:
    """Modification times of the folder and its ``clips/``: both change when a file is added or removed."""
    times = []
    for path in (str(folder), os.path.join(folder, CLIPS_DIR)):
        try:
            st = os.lstat(path)
            times.append(st.st_mtime_ns if stat.S_ISDIR(st.st_mode) else -2)
        except (FileNotFoundError, NotADirectoryError):
            times.append(-1)
    return times[0], times[1]


def folder_signature(folder: Path) -> str:
    """Changes whenever the camera rewrites the folder, so a bad folder is retried only then."""
    parts = []
    for path in (folder, folder / DOCKED_MARKER, folder / DEVICE_FILE, folder / CLIPS_DIR):
        try:
            st = os.lstat(path)
            parts.append(f"{st.st_mode:o}:{st.st_mtime_ns}:{st.st_size}")
        except (FileNotFoundError, NotADirectoryError):
            parts.append("-")
    parts.extend(clip_files(folder))
    return hashlib.sha256(os.fsencode("|".join(parts))).hexdigest()[:32]  # names need not be UTF-8


def read_ingested(camera: CameraFolder) -> IngestedFile | None:
    if camera.lstat(INGESTED_FILE) is None:
        return None
    return _decode(camera, INGESTED_FILE, IngestedFile)[0]


def read_docked_camera(folder: Path | CameraFolder) -> DockedCamera:
    """Parse and validate a docked folder, or raise DockFolderError with the reason."""
    if not isinstance(folder, CameraFolder):
        with CameraFolder(folder) as camera:
            return read_docked_camera(camera)
    camera = folder
    if camera.lstat(DEVICE_FILE) is None:
        raise DockFolderError(camera.name, f"{DEVICE_FILE} is missing")
    device, raw_device = _decode(camera, DEVICE_FILE, DeviceInfo)
    _in_utc_range(camera, DEVICE_FILE, device.docked_at)
    device_json = raw_device.decode("utf-8", errors="replace")
    ingested = read_ingested(camera)

    names = camera.clip_names()
    if odd := [n for n in names if not n.isprintable()]:
        # The name is the clip's filename at the station and at central: it must be text.
        raise DockFolderError(
            camera.name,
            f"clips/{display_name(odd[0])} has a name that is not printable UTF-8 text (left in place: rename it)",
        )
    videos = {n[: -len(VIDEO_SUFFIX)] for n in names if n.endswith(VIDEO_SUFFIX)}
    sidecars = {n[: -len(SIDECAR_SUFFIX)] for n in names if n.endswith(SIDECAR_SUFFIX)}
    if orphans := sorted(sidecars - videos):
        raise DockFolderError(camera.name, f"sidecar without its video: clips/{orphans[0]}{SIDECAR_SUFFIX}")
    if orphans := sorted(videos - sidecars):
        raise DockFolderError(camera.name, f"video without its sidecar: clips/{orphans[0]}{VIDEO_SUFFIX}")

    clips: list[DockedClip] = []
    seen: dict[str, str] = {}
    for stem in sorted(videos):
        video = camera.path / CLIPS_DIR / f"{stem}{VIDEO_SUFFIX}"
        sidecar_path = camera.path / CLIPS_DIR / f"{stem}{SIDECAR_SUFFIX}"
        st = camera.require_regular(f"{CLIPS_DIR}/{video.name}")
        sidecar, _ = _decode(camera, f"{CLIPS_DIR}/{sidecar_path.name}", ClipSidecar)
        _in_utc_range(camera, f"{CLIPS_DIR}/{sidecar_path.name}", sidecar.recorded_at)
        clip_id = str(sidecar.clip_id)
        if clip_id in seen:
            raise DockFolderError(camera.name, f"clip_id {clip_id} used by both {seen[clip_id]} and {stem}")
        seen[clip_id] = stem
        clips.append(DockedClip(stem, video, sidecar_path, sidecar, st.st_size))
    return DockedCamera(camera.path, device, device_json, clips, ingested)


def _in_utc_range(camera: CameraFolder, relative: str, moment: datetime | None) -> None:
    """Times are kept in UTC: one a day from the ends of the calendar may have none."""
    if moment is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise DockFolderError(camera.name, f"{relative}: {moment.isoformat()} is out of range in UTC") from None


def _decode(camera: CameraFolder, relative: str, kind: type):
    """The decoded file and its bytes."""
    try:
        data = camera.read_bytes(relative, MAX_JSON_BYTES)
    except OSError as exc:
        raise DockFolderError(camera.name, f"cannot read {relative}: {exc.strerror}") from None
    try:
        return msgspec.json.decode(data, type=kind), data
    except msgspec.ValidationError as exc:
        raise DockFolderError(camera.name, f"{relative}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DockFolderError(camera.name, f"{relative} is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec's answer to nesting deeper than the interpreter's stack allows
        raise DockFolderError(camera.name, f"{relative} is JSON nested too deeply") from None
