"""Reading the dock inbox (contract §3): one folder per docked camera.

Parsing is strict and complete before anything is copied, so a bad folder is reported
with one clear reason and nothing of it is half-ingested.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

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


def docked_folders(dock_dir: Path) -> list[Path]:
    """Folders whose copy is complete (``DOCKED`` present), in name order."""
    try:
        entries = sorted(os.scandir(dock_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    return [
        Path(e.path) for e in entries
        if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
        and os.path.exists(os.path.join(e.path, DOCKED_MARKER))
    ]


def clip_files(folder: Path) -> list[str]:
    """Names in ``clips/`` that are still to be ingested (hidden files are not the camera's)."""
    try:
        return sorted(n for n in os.listdir(folder / CLIPS_DIR) if not n.startswith("."))
    except FileNotFoundError:
        return []


def stamp(folder: Path) -> tuple[int, int]:
    """Modification times of the folder and its ``clips/``: both change when a file is added or removed."""
    times = []
    for path in (str(folder), os.path.join(folder, CLIPS_DIR)):
        try:
            times.append(os.stat(path).st_mtime_ns)
        except FileNotFoundError:
            times.append(-1)
    return times[0], times[1]


def folder_signature(folder: Path) -> str:
    """Changes whenever the camera rewrites the folder, so a bad folder is retried only then."""
    parts = []
    for path in (folder, folder / DOCKED_MARKER, folder / DEVICE_FILE, folder / CLIPS_DIR):
        try:
            st = path.stat()
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except FileNotFoundError:
            parts.append("-")
    parts.extend(clip_files(folder))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def read_ingested(folder: Path) -> IngestedFile | None:
    path = folder / INGESTED_FILE
    if not path.exists():
        return None
    return _decode(path, IngestedFile, folder)


def read_docked_camera(folder: Path) -> DockedCamera:
    """Parse and validate a docked folder, or raise DockFolderError with the reason."""
    device_path = folder / DEVICE_FILE
    if not device_path.is_file():
        raise DockFolderError(folder.name, f"{DEVICE_FILE} is missing")
    device = _decode(device_path, DeviceInfo, folder)
    device_json = device_path.read_text(encoding="utf-8", errors="replace")
    ingested = read_ingested(folder)

    names = clip_files(folder)
    videos = {n[: -len(VIDEO_SUFFIX)] for n in names if n.endswith(VIDEO_SUFFIX)}
    sidecars = {n[: -len(SIDECAR_SUFFIX)] for n in names if n.endswith(SIDECAR_SUFFIX)}
    if orphans := sorted(sidecars - videos):
        raise DockFolderError(folder.name, f"sidecar without its video: clips/{orphans[0]}{SIDECAR_SUFFIX}")
    if orphans := sorted(videos - sidecars):
        raise DockFolderError(folder.name, f"video without its sidecar: clips/{orphans[0]}{VIDEO_SUFFIX}")

    clips: list[DockedClip] = []
    seen: dict[str, str] = {}
    for stem in sorted(videos):
        video = folder / CLIPS_DIR / f"{stem}{VIDEO_SUFFIX}"
        sidecar_path = folder / CLIPS_DIR / f"{stem}{SIDECAR_SUFFIX}"
        if not video.is_file():
            raise DockFolderError(folder.name, f"clips/{video.name} is not a regular file")
        sidecar = _decode(sidecar_path, ClipSidecar, folder)
        clip_id = str(sidecar.clip_id)
        if clip_id in seen:
            raise DockFolderError(folder.name, f"clip_id {clip_id} used by both {seen[clip_id]} and {stem}")
        seen[clip_id] = stem
        clips.append(DockedClip(stem, video, sidecar_path, sidecar, video.stat().st_size))
    return DockedCamera(folder, device, device_json, clips, ingested)


def _decode(path: Path, kind: type, folder: Path):
    relative = path.relative_to(folder)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise DockFolderError(folder.name, f"{relative} is larger than {MAX_JSON_BYTES} bytes")
        return msgspec.json.decode(path.read_bytes(), type=kind)
    except msgspec.ValidationError as exc:
        raise DockFolderError(folder.name, f"{relative}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DockFolderError(folder.name, f"{relative} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise DockFolderError(folder.name, f"cannot read {relative}: {exc.strerror}") from None
