"""Dock ingest: copy each clip into the station's store while hashing it, then commit.

The order of durable steps is what makes a crash at any line harmless:

1. copy + hash + seal each new clip to ``tmp/<clip_id>.part``, then fsync them all (one batch);
2. check the camera's own hash where it gave one (mismatch: the folder is bad, nothing kept);
3. rename every copy to ``clips/<clip_id>.sealed`` and fsync the folder;
4. record the docking and its clips, with each clip's wrapped data key, in one SQLite
   transaction                                                  ← the commit point
5. write ``INGESTED.json`` atomically;
6. wipe the clip files from the dock folder.

Before 4 a restart copies again (renames overwrite, nothing is recorded twice); after 4 the
database knows every clip, so a restart skips the copy and finishes steps 5 and 6. A sealed
copy renamed but not recorded (a crash between 3 and 4) is unreadable, its data key never
written anywhere, and the redo overwrites it with a fresh key. A copy
that fails (a full disk) is removed at once, and one left by a process that died mid-copy
at the next start; a database that cannot be written fails step 4, so the camera keeps its
clips until a later scan records them.

Clips are sealed as they are copied (fleet/cipher.py, docs/at-rest.md): AES-256-GCM in
segments under a fresh data key per clip, wrapped by the station key, so no byte of footage
reaches the station's disk in clear; the SHA-256 is still the camera's bytes'.

The camera folder is read, written and wiped only through ``dock.CameraFolder`` (no link
followed, no special file opened), so nothing outside it is ever read or deleted.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import msgspec

from fleet.cipher import Sealer, new_data_key
from fleet.clock import utc_now
from fleet.errors import ConfigError, DockFolderError
from fleet.hashing import CopyResult, copy_hash_and_seal, fsync_dir, fsync_file
from fleet.logs import Repeats
from fleet.protocol import IngestedEntry, IngestedFile
from station import dock
from station.store import StationStore
from station.store.queue import KnownClip, NewClip

log = logging.getLogger(__name__)

TRANSIENT_RETRY = timedelta(seconds=60)

WIPE_THREADS = 4
"""Camera files removed at once by the wipe (see ``Ingestor._wipe``)."""

KEPT_IN_RESERVE = "kept in reserve"
"""Ends the reason of a folder held back so the disk keeps its reserve: no write failed."""


@dataclass
class IngestReport:
    ingested_folders: list[str] = field(default_factory=list)
    new_clips: int = 0
    new_bytes: int = 0
    bad_folders: list[str] = field(default_factory=list)


class Ingestor:
    """Scans the dock folder and ingests every complete camera folder, one at a time."""

    def __init__(
        self,
        store: StationStore,
        station_id: str,
        dock_dir: str | Path,
        on_new_clips: Callable[[], None] = lambda: None,
        progress: Callable[[int], None] | None = None,
        chunk_bytes: int | None = None,
        chunk_algorithm: str = "crc32c",
        reserve_bytes: int = 0,
    ) -> None:
        if store.keys is None:
            raise ConfigError("no station key: clips are never stored unencrypted, so nothing can be ingested")
        self.store = store
        self.reserve_bytes = reserve_bytes
        """Free space a folder may not cut into: the database must always be able to record."""
        self.chunk_bytes = chunk_bytes
        self.chunk_algorithm = chunk_algorithm
        self.station_id = station_id
        self.dock_dir = Path(dock_dir)
        self.on_new_clips = on_new_clips
        self.progress = progress
        self._done: dict[str, tuple[int, int]] = {}
        """Folders seen fully ingested, by name, with their ``dock.stamp``: skipped until they change."""
        self._unrecorded: dict[str, object] = {}
        """Folders that failed when the database could not record it either: name → when, for the pause."""
        self._repeats = Repeats(log)
        self.remove_partial_copies()

    def remove_partial_copies(self) -> int:
        """Copies left in ``tmp/`` by a process that died mid-copy: never recorded, so never needed."""
        removed = 0
        for part in self.store.tmp_dir.glob("*.part"):
            part.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("removed %d partial copies left by an interrupted ingest", removed)
        return removed

    def scan(self) -> IngestReport:
        """One pass over the dock folder. A bad folder is reported and never blocks the others.

        Never raises for a condition of the disk or the database: it is logged once a minute
        and shown by ``fleet station status``, and the next scan tries again."""
        report = IngestReport()
        try:
            self._scan(report)
        except sqlite3.Error as exc:
            self._repeats.warning("database", "dock not scanned: %s", _db_reason(exc))
        except OSError as exc:
            self._repeats.warning("dock", "dock not scanned: %s", _os_reason(exc))
        return report

    def _scan(self, report: IngestReport) -> None:
        bad = self.store.queue.bad_folder_signatures()
        folders = dock.docked_folders(self.dock_dir)
        for folder in folders:
            try:
                if self._is_done(folder) or self._skip_bad(folder, bad.get(_name(folder))):
                    continue
                added, size = self.ingest_folder(folder)
            except (DockFolderError, OSError, sqlite3.Error) as exc:
                if not dock.still_docked(folder):
                    continue  # taken out of the dock while this scan ran: gone, not bad (the next scan forgets it)
                self._report_bad(folder, dock.folder_signature(folder), exc)
                report.bad_folders.append(_name(folder))
            except Exception as exc:
                # A fault this code did not foresee, met in one camera's folder: that folder is
                # bad (with the traceback logged once: a bad folder waits for a change), the
                # others are still ingested.
                if not dock.still_docked(folder):
                    continue
                log.exception("dock folder %s: unexpected error", _name(folder))
                self._report_bad(
                    folder,
                    dock.folder_signature(folder),
                    DockFolderError(_name(folder), f"unexpected error: {type(exc).__name__}: {exc}"),
                )
                report.bad_folders.append(_name(folder))
            else:
                self._unrecorded.pop(_name(folder), None)
                self._repeats.clear(_name(folder))
                report.ingested_folders.append(_name(folder))
                report.new_clips += added
                report.new_bytes += size
                if added:
                    self.on_new_clips()
        docked = {_name(f) for f in folders}
        self.store.queue.forget_bad_folders(docked)
        self._done = {name: stamp for name, stamp in self._done.items() if name in docked}
        self._unrecorded = {name: when for name, when in self._unrecorded.items() if name in docked}

    def _report_bad(self, folder: Path, signature: str, exc: DockFolderError | OSError | sqlite3.Error) -> None:
        """One log line per folder and reason (repeated at most once a minute), and the status row."""
        transient = not isinstance(exc, DockFolderError)
        if isinstance(exc, DockFolderError):
            reason = exc.reason
        elif isinstance(exc, sqlite3.Error):
            reason = f"{_db_reason(exc)}: clips left on the camera, will retry"
        else:
            reason = _os_reason(exc, self.store.data_dir)
        self._repeats.warning(
            _name(folder),
            "dock folder %s not ingested%s: %s",
            _name(folder),
            ", will retry" if transient and "will retry" not in reason else "",
            reason,
        )
        try:
            self.store.queue.record_bad_folder(_name(folder), reason, signature, transient=transient)
        except sqlite3.Error:
            # The database cannot say "retry later" either: this process remembers it, so an
            # unwritable database does not mean copying the whole folder again at every scan.
            self._unrecorded[_name(folder)] = utc_now()
        else:
            self._unrecorded.pop(_name(folder), None)

    def ingest_folder(self, folder: Path) -> tuple[int, int]:
        """Ingest one docked folder; return (new clips, new bytes)."""
        with dock.CameraFolder(folder) as opened:
            return self._ingest(opened)

    def _ingest(self, opened: dock.CameraFolder) -> tuple[int, int]:
        folder = opened.path
        self._finish_interrupted_wipe(opened)
        camera = dock.read_docked_camera(opened)
        known = self.store.queue.known_clips(str(c.sidecar.clip_id) for c in camera.clips)
        for clip in camera.clips:
            self._check_against_known(opened, clip, known.get(str(clip.sidecar.clip_id)))

        self._check_room(sum(c.size for c in camera.clips if str(c.sidecar.clip_id) not in known))
        keys = self.store.keys
        assert keys is not None  # checked when this ingestor was made
        copied: list[tuple[dock.DockedClip, Path, CopyResult, tuple[str, bytes]]] = []
        parts: list[Path] = []
        try:
            for clip in camera.clips:
                clip_id = str(clip.sidecar.clip_id)
                if clip_id in known:
                    continue
                part = self.store.tmp_dir / f"{clip_id}.part"
                parts.append(part)  # before the copy: a copy that fails half way is removed too
                source = opened.open_file(f"{dock.CLIPS_DIR}/{clip.video.name}")
                data_key = new_data_key()
                try:
                    result = copy_hash_and_seal(
                        source,
                        part,
                        Sealer(data_key, clip_id, clip.size),
                        clip.size,
                        self.chunk_bytes,
                        chunk_algorithm=self.chunk_algorithm,
                        fsync=False,
                    )
                finally:
                    os.close(source)
                copied.append((clip, part, result, keys.wrap(data_key)))
                size, sha256 = result.size, result.sha256
                if self.progress:
                    self.progress(size)
                if clip.sidecar.sha256 and clip.sidecar.sha256 != sha256:
                    raise DockFolderError(
                        _name(folder),
                        f"clips/{clip.video.name}: SHA-256 {sha256[:12]}… does not match the camera's "
                        f"{clip.sidecar.sha256[:12]}… (copy not kept; camera footage left in place)",
                    )
                if size != clip.size:
                    raise DockFolderError(_name(folder), f"clips/{clip.video.name} changed size while copied")
            for _, part, _, _ in copied:
                fsync_file(part)
        except BaseException:
            for part in parts:
                part.unlink(missing_ok=True)
            raise

        new_clips = []
        for clip, part, result, (wrapped_by, wrapped_key) in copied:
            clip_id = str(clip.sidecar.clip_id)
            final = self.store.clips_dir / f"{clip_id}.sealed"
            os.replace(part, final)
            new_clips.append(
                NewClip(
                    clip_id=clip_id,
                    sha256=result.sha256,
                    size=result.size,
                    device_serial=camera.device.serial,
                    recorded_at=clip.sidecar.recorded_at,
                    filename=clip.video.name,
                    duration_s=clip.sidecar.duration_s,
                    pre_record_s=clip.sidecar.pre_record_s,
                    tags=list(clip.sidecar.tags),
                    evidential=clip.sidecar.evidential,
                    local_path=str(final.relative_to(self.store.data_dir)),
                    chunk_bytes=self.chunk_bytes if self.chunk_bytes else None,
                    chunk_algorithm=self.chunk_algorithm if self.chunk_bytes else None,
                    chunk_checksums=[base64.b64encode(d).decode() for d in result.chunk_digests]
                    if self.chunk_bytes
                    else None,
                    wrapped_by=wrapped_by,
                    wrapped_key=wrapped_key,
                )
            )
        if new_clips:
            fsync_dir(self.store.clips_dir)
        self.store.queue.record_ingest(_name(folder), camera.device, camera.device_json, new_clips)

        entries = self._ingested_entries(camera, known, new_clips)
        self._write_ingested(opened, entries)
        self._wipe(opened, [c.name for c in camera.clips])
        log.info("ingested %s: %d new clips, %d bytes", _name(folder), len(new_clips), sum(c.size for c in new_clips))
        return len(new_clips), sum(c.size for c in new_clips)

    # -- steps -----------------------------------------------------------------------------

    def _check_room(self, new_bytes: int) -> None:
        """Refuse (as a full disk: transient, footage left on the camera) what would cut into the reserve."""
        if not self.reserve_bytes or not new_bytes:
            return
        free = shutil.disk_usage(self.store.data_dir).free
        if free - new_bytes < self.reserve_bytes:
            raise OSError(
                errno.ENOSPC,
                f"{new_bytes} bytes to copy, {free} free, {self.reserve_bytes} {KEPT_IN_RESERVE}",
                str(self.store.data_dir),
            )

    def _check_against_known(self, opened: dock.CameraFolder, clip: dock.DockedClip, known: KnownClip | None) -> None:
        """A clip_id seen before must be the same recording; anything else is not ours to overwrite.

        The same bytes, not only the same size: a clip found known is wiped from the camera
        without a copy, so where the camera gave no SHA-256 of its own its file is hashed."""
        if known is None:
            return
        same = known.size == clip.size and (clip.sidecar.sha256 or self._sha256_of(opened, clip)) == known.sha256
        if not same:
            raise DockFolderError(
                opened.name,
                f"clips/{clip.video.name}: clip_id {known.clip_id} was already ingested with different content",
            )

    @staticmethod
    def _sha256_of(opened: dock.CameraFolder, clip: dock.DockedClip) -> str:
        digest = hashlib.sha256()
        fd = opened.open_file(f"{dock.CLIPS_DIR}/{clip.video.name}")
        try:
            while piece := os.read(fd, 1 << 20):
                digest.update(piece)
        finally:
            os.close(fd)
        return digest.hexdigest()

    def _ingested_entries(
        self, camera: dock.DockedCamera, known: dict[str, KnownClip], new_clips: list[NewClip]
    ) -> list[IngestedEntry]:
        entries = {e.clip_id: e for e in (camera.ingested.clips if camera.ingested else [])}
        names = {str(c.sidecar.clip_id): c.name for c in camera.clips}
        for k in known.values():
            entries[k.clip_id] = IngestedEntry(
                clip_id=k.clip_id, size=k.size, sha256=k.sha256, name=names.get(k.clip_id, "")
            )
        for c in new_clips:
            entries[c.clip_id] = IngestedEntry(clip_id=c.clip_id, size=c.size, sha256=c.sha256, name=names[c.clip_id])
        return sorted(entries.values(), key=lambda e: e.name or e.clip_id)

    def _write_ingested(self, opened: dock.CameraFolder, entries: list[IngestedEntry]) -> None:
        record = IngestedFile(station_id=self.station_id, ingested_at=utc_now(), clips=entries)
        opened.write_atomic(dock.INGESTED_FILE, msgspec.json.format(msgspec.json.encode(record)))

    def _wipe(self, opened: dock.CameraFolder, stems: list[str]) -> None:
        """The "wipe camera" step: only ever after INGESTED.json is durable, and only names in ``clips/``.

        Every video goes before any sidecar: a sidecar left alone is recognised through
        INGESTED.json on restart. The videos go several at once: where the dock's filesystem is
        mounted with ``discard``, removing a file waits for the device to discard its blocks
        (a 128 MiB clip about 30 ms here), and the device takes several discards at once."""
        videos = [f"{stem}{dock.VIDEO_SUFFIX}" for stem in stems]
        if len(videos) > 1:
            with ThreadPoolExecutor(min(WIPE_THREADS, len(videos)), thread_name_prefix="wipe") as pool:
                list(pool.map(opened.remove_clip_file, videos))
        else:
            for video in videos:
                opened.remove_clip_file(video)
        for stem in stems:
            opened.remove_clip_file(f"{stem}{dock.SIDECAR_SUFFIX}")
        if stems:
            opened.sync_clips()

    def _finish_interrupted_wipe(self, opened: dock.CameraFolder) -> None:
        """Files an earlier ingest already accounted for in INGESTED.json are wiped before parsing."""
        ingested = dock.read_ingested(opened)
        if ingested is None:
            return
        recorded = self.store.queue.known_clips(e.clip_id for e in ingested.clips)
        stems = [e.name for e in ingested.clips if e.name and e.clip_id in recorded]
        present = set(opened.clip_names())
        leftovers = [s for s in stems if f"{s}{dock.VIDEO_SUFFIX}" in present or f"{s}{dock.SIDECAR_SUFFIX}" in present]
        if leftovers:
            self._wipe(opened, leftovers)

    def _is_done(self, folder: Path) -> bool:
        """Ingested and wiped. A camera stays docked for hours: most folders of a scan are these, and
        one unchanged since it was last seen done costs two stats, not a listing."""
        stamp = dock.stamp(folder)
        if self._done.get(_name(folder)) == stamp:
            return True
        try:
            with dock.CameraFolder(folder) as opened:
                done = opened.lstat(dock.INGESTED_FILE) is not None and not opened.clip_names()
        except (DockFolderError, OSError):
            return False  # the ingest that follows says what is wrong
        if done:
            self._done[_name(folder)] = stamp
        return done

    def _skip_bad(self, folder: Path, previous: tuple[str, bool, object] | None) -> bool:
        """Retry a bad folder only when the camera rewrote it, or after a pause for I/O errors."""
        unrecorded = self._unrecorded.get(_name(folder))
        if unrecorded is not None and utc_now() - unrecorded < TRANSIENT_RETRY:  # type: ignore[operator]
            return True
        if previous is None:
            return False
        signature, transient, last_seen = previous
        if transient:
            return utc_now() - last_seen < TRANSIENT_RETRY  # type: ignore[operator]
        return dock.folder_signature(folder) == signature


def _name(folder: Path) -> str:
    """How a camera folder is named in the database, the log and the status (``dock.display_name``)."""
    return dock.display_name(folder.name)


def _os_reason(exc: OSError, store_dir: Path | None = None) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        detail = exc.strerror or "no space left on device"
        where = exc.filename or store_dir
        return (
            f"disk full: {detail[:1].lower()}{detail[1:]}{f' in {where}' if where else ''}; "
            "clips left on the camera, will retry"
        )
    return f"{exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})".strip()


def _db_reason(exc: sqlite3.Error) -> str:
    return f"station database cannot be written: {exc}"
