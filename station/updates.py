"""Updates handed to docked cameras through the dock inbox (docs/firmware.md, docs/contracts.md §3).

Each pass looks at every docked folder the ingest has finished (``INGESTED.json`` written, no clip
left), and:

- records the outcome the camera's ``device.json`` reports for an update (``update``), with its
  ``camera_update_result`` event, once per (camera, deployment, attempt);
- hands over the camera's offer when it may be: the artifact verified here (or a profile), the
  camera's model the release's, its dock reading charged and cool enough by the offer's policy,
  and no report already in for this attempt (a retry is central's to offer, as attempt + 1);
- takes back an update it wrote that is no longer to be applied (its offer withdrawn, or the camera's
  reading no longer passing the gates), so ``update/`` holds only what this docking is handed now.

The order of durable steps of a hand-over (a crash at any point is harmless):

1. ``update/`` is emptied of what an earlier write left, ``manifest.json`` first (never followed: a link goes);
2. the artifact is copied to ``update/firmware.bin.part`` while hashed, fsynced, checked against
   the release, and renamed to ``firmware.bin``;
3. ``manifest.json`` is written the same way (``.manifest.json.tmp``, fsync, rename), **last**: a
   camera reads ``update/`` only once it is there;
4. the hand-over and its ``camera_update_offered`` event are recorded in one transaction: **the
   commit point**. A crash before it leaves an update the next pass writes again from step 1.

The camera folder is written only through its descriptors (``dock.CameraFolder``), never through a
path resolved again, so nothing outside it is touched.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import msgspec

from fleet.clock import to_iso, utc_now
from fleet.errors import DockFolderError
from fleet.events import CameraUpdate, CameraUpdateResult
from fleet.firmware import TrustedKey
from fleet.logs import Repeats
from fleet.profiles import CameraSettings, settings_sha256
from fleet.protocol import DeviceInfo, ManifestFirmware, UpdateManifest
from station import dock
from station.store import StationStore
from station.sync.artifacts import artifact_path, signature_refusal

log = logging.getLogger(__name__)

UPDATE_DIR = "update"
FIRMWARE_FILE = "firmware.bin"
MANIFEST_FILE = "manifest.json"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
PIECE = 1 << 20
CAMERA_ROOM_KEPT = 1 << 20
"""Room a hand-over leaves free on the camera beyond its update: the manifest, the camera's own writes."""


class StaleArtifact(Exception):
    """The station's kept artifact no longer hashes to its release (its disk): fetched again, never handed over."""


@dataclass
class UpdatesReport:
    handed_over: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)


class DockUpdates:
    """Hands offers to docked cameras and collects their reports."""

    def __init__(self, store: StationStore, dock_dir: str | Path, keys: list[TrustedKey]) -> None:
        self.store = store
        self.updates = store.updates
        self.dock_dir = Path(dock_dir)
        self.keys = keys
        self._settled: dict[str, _Settled] = {}
        """Folders looked at: skipped until the folder or what was decided on for its camera moves."""
        self._signatures: dict[tuple, str | None] = {}
        """Each release's signature judged once: the station's keys are read at start-up only."""
        self._hashed: dict[str, tuple[int, ...]] = {}
        """Kept artifacts hashed whole by this process: sha256 → the file's identity then (``_identity``)."""
        self._repeats = Repeats(log)

    def scan(self) -> UpdatesReport:
        """One pass over the docked folders; never raises for a folder, the disk or the database.

        A folder settled before is looked at again only when it changed (``dock.stamp``) or the
        offer of the camera found in it moved (its report, a new attempt, a withdrawal; an artifact
        verified or dropped moves them all): an offer reaching one camera no longer sends the pass
        through every docked folder. The marks are read before the folders are: a move during a
        visit is seen at the next pass."""
        report = UpdatesReport()
        try:
            marks = self.updates.marks()
            folders = dock.docked_folders(self.dock_dir)
        except (sqlite3.Error, OSError) as exc:
            self._repeats.warning("updates", "dock updates not looked at: %s", exc)
            return report
        for folder in folders:
            name = dock.display_name(folder.name)
            before = dock.stamp(folder)
            settled = self._settled.get(name)
            if settled is not None and settled.stamp == before and settled.marks == marks.of(settled.serial):
                continue
            try:
                serial = self.visit(folder, report)
                self._settled[name] = _Settled(dock.stamp(folder), serial, marks.of(serial))
                self._repeats.clear(name)
            except (DockFolderError, OSError, sqlite3.Error) as exc:
                if dock.still_docked(folder):
                    self._repeats.warning(name, "dock folder %s: update not handed over: %s", name, exc)
        docked = {dock.display_name(f.name) for f in folders}
        self._settled = {n: v for n, v in self._settled.items() if n in docked}
        return report

    def visit(self, folder: Path, report: UpdatesReport) -> str | None:
        """Record the camera's report, hand over its offer or take back what no longer stands; the
        camera's serial (None when the folder was not read: the ingest has not finished with it)."""
        with dock.CameraFolder(folder) as opened:
            if opened.lstat(dock.INGESTED_FILE) is None or opened.clip_names():
                return None  # the ingest has not finished with it: its rules come first
            raw = opened.read_bytes(dock.DEVICE_FILE, dock.MAX_JSON_BYTES)
            try:
                device = msgspec.json.decode(raw, type=DeviceInfo)
            except msgspec.DecodeError as exc:  # rewritten since it was ingested
                raise DockFolderError(opened.name, f"{dock.DEVICE_FILE}: {exc}") from None
            docking = docking_of(device, raw)
            if device.update is not None and self._record_result(opened.name, device):
                report.results.append(opened.name)
            offer = self.updates.offer(device.serial)
            if offer is None:
                self._take_back(opened, "no update is offered to this camera now")
                return device.serial
            if self.updates.handed_over(opened.name, docking, offer.deployment_id, offer.attempt):
                return device.serial
            why = self.waiting(offer, device)
            if why is None:
                try:
                    self._write(opened, offer)
                except DockFolderError as exc:
                    why = f"the update could not be written into {opened.name}: {exc.reason}"
                except StaleArtifact as exc:
                    assert offer.release is not None
                    self.updates.artifact_failed(offer.release, str(exc), 0.0)  # fetched again at once
                    why = str(exc)
                else:
                    self.updates.record_handover(opened.name, docking, offer)
                    log.info(
                        "update of deployment %d (attempt %d) handed to %s in %s",
                        offer.deployment_id,
                        offer.attempt,
                        device.serial,
                        opened.name,
                    )
                    report.handed_over.append(opened.name)
                    return device.serial
            why = self._take_back(opened, why) or why
            self.updates.set_waiting(offer.serial, offer.deployment_id, why)
            report.waiting[device.serial] = why
            return device.serial

    def _take_back(self, opened: dock.CameraFolder, why: str) -> str | None:
        """``update/`` holds only what this station hands this docking now: an update written before
        its offer was withdrawn (a deployment paused or aborted), or one left from an earlier dock that
        the camera's reading no longer passes, is taken out, so the camera never applies it at undock.
        Its hand-over is forgotten: the offer back (resumed), it is handed over again. Returns why it
        could not be taken out, if so."""
        try:
            if not _remove_update_dir(opened):
                return None
        except DockFolderError as exc:
            return f"{why}; the update in the camera's folder could not be taken out: {exc.reason}"
        self.updates.forget_handovers(opened.name)
        log.info("update taken out of %s: %s", opened.name, why)
        return None

    def _record_result(self, folder: str, device: DeviceInfo) -> bool:
        """The camera's report as an event, once; a report out of range is logged and ignored."""
        report = device.update
        assert report is not None
        if not (1 <= report.deployment_id <= 2**62 and 1 <= report.attempt <= 1000):
            self._repeats.warning(
                f"{folder}:report",
                "dock folder %s: update report out of range ignored (deployment %d, attempt %d)",
                folder,
                report.deployment_id,
                report.attempt,
            )
            return False
        ok, error = report.ok, report.error
        if ok and (contradiction := self._contradicted(device)) is not None:
            ok, error = False, contradiction
        # The camera's words go to the log, the status and central's pages: printable (no line break to
        # forge a log line, no terminal escape, no bidirectional override) and cut to the event's bounds.
        event = CameraUpdateResult(
            serial=device.serial,
            deployment_id=report.deployment_id,
            attempt=report.attempt,
            ok=ok,
            version=dock.display_name(device.firmware)[:64],
            error=None if error is None else dock.display_name(error[:500])[:500],
            at=utc_now(),
        )
        added = self.updates.record_result(folder, event)
        if added:
            outcome = "updated" if event.ok else f"failed: {event.error or 'no reason given'}"
            log.info(
                "camera %s reports deployment %d attempt %d %s (firmware %s)",
                device.serial,
                event.deployment_id,
                event.attempt,
                outcome,
                event.version or "-",
            )
        return added

    def _contradicted(self, device: DeviceInfo) -> str | None:
        """Why a reported success is not one, by the camera's own reading against the offer of that
        deployment (when the station holds it): central would count the camera updated and never offer
        the update again. Central gets the version, not the settings' hash: only the station can tell."""
        report = device.update
        offer = self.updates.offer(device.serial)
        if report is None or offer is None or offer.deployment_id != report.deployment_id:
            return None
        if offer.release is not None and device.firmware != offer.release.version:
            return (
                f"the camera reports success but runs {device.firmware!r}, not the release's {offer.release.version!r}"
            )
        if (
            offer.release is None
            and offer.profile is not None
            and device.profile_sha256 != settings_sha256(offer.profile)
        ):
            return "the camera reports success but its settings (profile_sha256) are not the profile's"
        return None

    def waiting(self, offer: CameraUpdate, device: DeviceInfo) -> str | None:
        """Why the offer is not handed to this docked camera now; None when it may be."""
        done = self.updates.result(offer.serial, offer.deployment_id, offer.attempt)
        if done is not None:
            outcome = "succeeded" if done.ok else f"failed ({done.error or 'no reason given'})"
            return f"attempt {offer.attempt} {outcome}: waiting for central's next word on this camera"
        release = offer.release
        if release is not None:
            if not device.model:  # a release signed for one model reaches only cameras that say they are of it
                return f"the camera's dock reading gives no model; the release is for {release.model!r}"
            if device.model != release.model:
                return f"the camera reports model {device.model!r}; the release is for {release.model!r}"
            if device.firmware == release.version:
                return f"the camera already runs {release.version}"
        elif offer.profile is not None:
            if (why := profile_refusal(offer.profile)) is not None:
                return why
            if device.profile_sha256 == settings_sha256(offer.profile):
                return "the camera already carries this profile"
        else:
            return "the offer holds neither a release nor a profile"
        battery = device.battery
        if battery is None:
            return "the camera's dock reading has no battery level"
        if battery.level_pct < offer.min_charge_pct:
            return f"charged {battery.level_pct:g}%, below the deployment's {offer.min_charge_pct:g}%"
        if battery.temperature_c is None:
            return "the camera's dock reading has no temperature"
        if battery.temperature_c > offer.max_temperature_c:
            return f"at {battery.temperature_c:g} °C, over the deployment's {offer.max_temperature_c:g} °C"
        if (holder := self.store.checkouts.holder(offer.serial)) is not None:
            return f"checked out to {holder}"
        if release is not None:
            artifact = self.updates.artifact(release.sha256)
            if artifact is not None and artifact.state == "failed":
                return f"the artifact of release {release.id} failed (retried): {artifact.last_error}"
            if artifact is None or not artifact_path(self.store, release.sha256).exists():
                return f"the artifact of release {release.id} is not downloaded yet"
            signed = msgspec.structs.astuple(release)
            if signed not in self._signatures:
                self._signatures[signed] = signature_refusal(release, self.keys)
            if (why := self._signatures[signed]) is not None:
                return why
        return None

    # -- writing the update folder --------------------------------------------------------

    def _write(self, opened: dock.CameraFolder, offer: CameraUpdate) -> None:
        """Steps 1 to 3; whatever fails part way is taken out again, so nothing of a failed write (a
        part filling the camera's storage) leaves the dock on the camera."""
        update_fd = _fresh_update_dir(opened)
        try:
            try:
                self._fill(opened, update_fd, offer)
            finally:
                os.close(update_fd)
        except Exception:
            with contextlib.suppress(OSError, DockFolderError):  # else the next pass empties it
                _remove_update_dir(opened)
            raise

    def _fill(self, opened: dock.CameraFolder, update_fd: int, offer: CameraUpdate) -> None:
        firmware = None
        if offer.release is not None:
            release = offer.release
            if (free := free_bytes(update_fd)) < release.size + CAMERA_ROOM_KEPT:
                raise DockFolderError(
                    opened.name,
                    f"no room on the camera: {free} bytes free, the update needs {release.size} "
                    f"and {CAMERA_ROOM_KEPT} are kept free",
                )
            self._copy_artifact(release.sha256, release.size, update_fd)
            firmware = ManifestFirmware(
                model=release.model,
                version=release.version,
                sha256=release.sha256,
                size=release.size,
                signature=release.signature,
                file=FIRMWARE_FILE,
            )
        manifest = UpdateManifest(
            deployment_id=offer.deployment_id,
            serial=offer.serial,
            attempt=offer.attempt,
            firmware=firmware,
            profile=offer.profile if offer.release is None else None,
        )
        dock.write_atomic_at(update_fd, MANIFEST_FILE, msgspec.json.encode(manifest))
        os.fsync(opened.fd)

    def _copy_artifact(self, sha256: str, size: int, update_fd: int) -> None:
        """The kept artifact into ``update/firmware.bin``: hashed as it is copied the first time this
        process hands it over (and again whenever the file is not the one hashed: replaced, rewritten,
        truncated), copied by the kernel after that. A release goes to hundreds of cameras at a
        station; its bytes were checked when downloaded, and the camera checks them itself."""
        with open(artifact_path(self.store, sha256), "rb") as source:
            identity = _identity(os.fstat(source.fileno()))
            hashed = self._hashed.get(sha256) == identity
            _copy_checked(source, update_fd, sha256, size, hash_it=not hashed)
            if not hashed:
                self._hashed[sha256] = identity


@dataclass(frozen=True)
class _Settled:
    stamp: tuple[int, int]
    serial: str | None
    """The camera found in the folder (None: not read yet)."""
    marks: tuple[int, int | None]
    """``Marks.of(serial)`` when it was looked at."""


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is replaced or written to (its inode, size, modification and change times)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def free_bytes(fd: int) -> int:
    """Room left (to an unprivileged writer) on the file system of the folder ``fd``: the camera's storage."""
    st = os.fstatvfs(fd)
    return st.f_bavail * st.f_frsize


def _remove_update_dir(opened: dock.CameraFolder) -> bool:
    """Take ``update/`` out of the camera's folder, ``manifest.json`` first (a link or a file standing
    for it goes, never followed); True if there was one."""
    st = opened.lstat(UPDATE_DIR)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        fd = _open_update_dir(opened)
        try:
            _empty(opened, fd)
        finally:
            os.close(fd)
        os.rmdir(UPDATE_DIR, dir_fd=opened.fd)
    else:
        os.unlink(UPDATE_DIR, dir_fd=opened.fd)
    os.fsync(opened.fd)
    return True


def profile_refusal(profile: dict) -> str | None:
    """Why a profile offer is not for a camera: a setting ``fleet.profiles`` does not know, or a value
    outside its bounds (central's word is not taken for what a camera is told to run)."""
    try:
        msgspec.convert(profile, CameraSettings)
    except msgspec.ValidationError as exc:
        return f"the profile offered is not one cameras take: {exc}"
    return None


def docking_of(device: DeviceInfo, raw: bytes) -> str:
    """What tells one docking of a camera from another in the same folder name (a dock may name its
    folders by slot): the camera and its ``docked_at``, or, without one, its ``device.json`` itself."""
    if device.docked_at is not None:
        return f"{device.serial} docked {to_iso(device.docked_at)}"
    return f"{device.serial} device.json {hashlib.sha256(raw).hexdigest()}"


def _fresh_update_dir(opened: dock.CameraFolder) -> int:
    """``update/``, emptied of whatever an earlier write or the camera left, as a descriptor. A link or
    a file standing for the folder is removed (never followed); a folder inside it is refused."""
    st = opened.lstat(UPDATE_DIR)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        os.unlink(UPDATE_DIR, dir_fd=opened.fd)
        st = None
    if st is None:
        os.mkdir(UPDATE_DIR, 0o755, dir_fd=opened.fd)
    fd = _open_update_dir(opened)
    try:
        _empty(opened, fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_update_dir(opened: dock.CameraFolder) -> int:
    try:
        return os.open(UPDATE_DIR, _DIR_FLAGS, dir_fd=opened.fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise DockFolderError(opened.name, "update/ was replaced while it was opened") from None
        raise


def _empty(opened: dock.CameraFolder, update_fd: int) -> None:
    """Remove what ``update/`` holds, ``manifest.json`` first and durably: a kill part way must never
    leave a manifest naming an artifact already removed (the camera would read it as an update)."""
    try:
        os.unlink(MANIFEST_FILE, dir_fd=update_fd)
        os.fsync(update_fd)
    except FileNotFoundError:
        pass
    for name in os.listdir(update_fd):
        if stat.S_ISDIR(os.stat(name, dir_fd=update_fd, follow_symlinks=False).st_mode):
            raise DockFolderError(opened.name, f"update/{dock.display_name(name)} is a folder; the station writes none")
        os.unlink(name, dir_fd=update_fd)
    os.fsync(update_fd)


def _copy_checked(source: BinaryIO, update_fd: int, sha256: str, size: int, *, hash_it: bool = True) -> None:
    """The artifact into ``update/firmware.bin`` (``.part``, fsync, rename); with ``hash_it``, hashed
    as it is copied: a station copy that no longer matches (its disk) is never handed over. Without,
    only its size is checked (the kernel copies it)."""
    part = f"{FIRMWARE_FILE}.part"
    digest = hashlib.sha256()
    written = 0
    out = os.open(part, _NEW_FILE, 0o644, dir_fd=update_fd)
    try:
        if hash_it:
            while piece := source.read(PIECE):
                digest.update(piece)
                written += len(piece)
                dock.write_all(out, piece)
        else:
            written = _copy_by_kernel(source, out)
        os.fsync(out)
    finally:
        os.close(out)
    if written != size or (hash_it and digest.hexdigest() != sha256):
        os.unlink(part, dir_fd=update_fd)
        raise StaleArtifact(f"the station's copy of artifact {sha256[:16]}… no longer matches its release")
    os.replace(part, FIRMWARE_FILE, src_dir_fd=update_fd, dst_dir_fd=update_fd)
    os.fsync(update_fd)


def _copy_by_kernel(source: BinaryIO, out: int) -> int:
    """Copy the whole of ``source`` into ``out`` without passing it through Python (``sendfile``; a
    plain read and write where the camera's file system refuses it). The bytes copied."""
    written = 0
    try:
        while copied := os.sendfile(out, source.fileno(), written, PIECE):
            written += copied
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        source.seek(written)
        while piece := source.read(PIECE):
            dock.write_all(out, piece)
            written += len(piece)
    return written
