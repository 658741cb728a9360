"""Firmware artifacts down: each release an offer names, downloaded once and kept (docs/firmware.md).

An artifact is kept as ``<data_dir>/firmware/<sha256>`` only once the station itself has checked
it: the release's signature verifies under one of **its own** ``[firmware] release_keys`` (checked
before a byte is fetched: a release no key of ours signed is never downloaded), and the bytes
have the size and SHA-256 the signature covers. The order of durable steps:

1. the bytes go to ``<sha256>.part``, resumed with ``Range`` after a cut (a restart resumes too);
2. the part is fsynced, then hashed whole;
3. a part that does not match is deleted (the failure is recorded, shown by ``fleet station
   status``, and retried with backoff); one that matches is renamed to ``<sha256>`` and the
   folder fsynced;
4. the artifact is recorded verified: **the commit point**. A crash between 3 and 4 leaves the
   file, which the next pass checks again and records.

A download that would cut into the station's ``min_free_bytes`` waits (retried with backoff).
Artifacts no offer names for a day are deleted. Downloads go through the station's link and its
retry policy (quick retries inside a pass, a persisted backoff between passes); the upload
window does not apply: artifacts are small and come down.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx

from fleet.clock import utc_now
from fleet.errors import TransientTransferError
from fleet.events import CameraUpdateRelease
from fleet.firmware import TrustedKey, parse_signature, signed_by, statement_bytes
from fleet.hashing import fsync_dir
from fleet.retry import RetryPolicy, as_transfer_error
from station.store import StationStore
from station.sync.errors import error_from_response

log = logging.getLogger(__name__)

FIRMWARE_DIR = "firmware"
UNUSED_KEPT = timedelta(days=1)
"""An artifact no offer names is deleted after this long (a paused deployment may resume)."""
PIECE = 1 << 20
CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})")


def artifact_path(store: StationStore, sha256: str) -> Path:
    return store.data_dir / FIRMWARE_DIR / sha256


def signature_refusal(release: CameraUpdateRelease, keys: list[TrustedKey]) -> str | None:
    """Why this station will not hand this release to a camera, judged on its signature alone; None if
    the signature verifies under one of the station's release keys."""
    if not keys:
        return "this station has no [firmware] release_keys: it takes no release"
    try:
        signature = parse_signature(release.signature)
    except ValueError as exc:
        return f"release {release.id}: {exc}"
    statement = statement_bytes(model=release.model, version=release.version, sha256=release.sha256, size=release.size)
    if signed_by(statement, signature, [k.key for k in keys if k.may_sign(release.model)]) is None:
        return (
            f"release {release.id} ({release.model} {release.version}): its signature verifies under no key of "
            "this station's [firmware] release_keys for that model"
        )
    return None


class ArtifactRefused(Exception):
    """The artifact (or its signature) is not what the release says: what was fetched is deleted."""


class NoRoom(Exception):
    """The download would cut into the station's ``min_free_bytes``: it waits (retried with backoff)."""


@dataclass
class FetchReport:
    verified: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)


class ArtifactFetcher:
    """Downloads, checks and keeps the artifacts the station's offers name; deletes the unnamed."""

    def __init__(
        self,
        client: httpx.Client,
        store: StationStore,
        policy: RetryPolicy,
        keys: list[TrustedKey],
        reserve_bytes: int = 0,
    ) -> None:
        self.client = client
        self.reserve_bytes = reserve_bytes
        """The station's ``min_free_bytes``: a download never cuts into it (footage and the database come first)."""
        self.store = store
        self.updates = store.updates
        self.policy = policy
        self.keys = keys
        self.folder = store.data_dir / FIRMWARE_DIR
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def run_once(self, force: bool = False) -> FetchReport:
        """One pass: fetch what is wanted and due (``force``: due or not), then delete the unnamed. A
        failure is recorded and retried later, never raised (but a database that cannot be written)."""
        report = FetchReport()
        with self._lock:
            self.folder.mkdir(exist_ok=True)
            now = utc_now()
            for release in self.updates.wanted_releases():
                if self.stopping.is_set():
                    break
                known = self.updates.artifact(release.sha256)
                final = artifact_path(self.store, release.sha256)
                if known is not None and known.state == "verified" and final.exists():
                    continue
                if not force and known is not None and known.next_attempt_at and now < known.next_attempt_at:
                    continue
                try:
                    self.fetch(release)
                except Exception as exc:  # recorded, shown in the status, retried with backoff
                    error = f"{exc}" if isinstance(exc, ArtifactRefused | NoRoom) else f"{as_transfer_error(exc)}"
                    failures = (known.failures if known is not None and known.state == "failed" else 0) + 1
                    delay = self.policy.backoff_delay(failures, exc)
                    self.updates.artifact_failed(release, error, delay)
                    log.warning("firmware artifact of release %d: %s; retrying in %.0fs", release.id, error, delay)
                    report.failed[release.sha256] = error
                else:
                    self.updates.artifact_verified(release)
                    log.info("firmware artifact of release %d (%s) downloaded and verified", release.id, release.sha256)
                    report.verified.append(release.sha256)
            report.deleted = self.sweep()
        return report

    def fetch(self, release: CameraUpdateRelease) -> None:
        """Download (resuming a part) and check one artifact, then keep it under its hash."""
        if (why := signature_refusal(release, self.keys)) is not None:
            raise ArtifactRefused(why)
        final = artifact_path(self.store, release.sha256)
        part = final.with_name(f"{release.sha256}.part")
        candidate = final  # renamed before a crash that came before the record: checked again
        if not final.exists():
            self._check_room(release, part)
            try:
                for attempt in self.policy.retrying():
                    with attempt:
                        self._download(release, part)
            except ArtifactRefused:  # central sent what the release is not (another hash, too many bytes)
                part.unlink(missing_ok=True)
                raise
            candidate = part
        try:
            self._check(release, candidate)
        except ArtifactRefused:
            candidate.unlink(missing_ok=True)
            raise
        if candidate == part:
            os.replace(part, final)
            fsync_dir(self.folder)

    def _check_room(self, release: CameraUpdateRelease, part: Path) -> None:
        """Refuse (for now: retried with backoff) a download that would cut into the reserve."""
        have = part.stat().st_size if part.exists() else 0
        needed = max(0, release.size - have)
        free = shutil.disk_usage(self.folder).free
        if free - needed < self.reserve_bytes:
            raise NoRoom(
                f"no room for the {release.size}-byte artifact of release {release.id}: {free} bytes free, "
                f"{needed} to fetch, {self.reserve_bytes} kept in reserve (min_free_bytes)"
            )

    def _download(self, release: CameraUpdateRelease, part: Path) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have > release.size:
            part.unlink()
            have = 0
        if have == release.size and have:
            return  # whole already (a crash came after the download)
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = f"/api/v1/firmware/releases/{release.id}/artifact"
        with self.client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:  # the part is no prefix central knows: start again
                part.unlink(missing_ok=True)
                raise TransientTransferError("central refused the range of the partial download; starting again")
            if response.status_code not in (200, 206):
                response.read()
                raise error_from_response(response)
            served = response.headers.get("Fleet-Artifact-Sha256")
            if served is not None and served != release.sha256:
                raise ArtifactRefused(
                    f"central serves release {release.id} as sha256 {served[:16]}…, the offer says "
                    f"{release.sha256[:16]}…"
                )
            if response.status_code == 200:
                have = 0
            else:
                match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
                if match is None or int(match.group(1)) != have:
                    raise TransientTransferError(f"central answered another range than bytes={have}-")
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.ftruncate(fd, have)
                os.lseek(fd, have, os.SEEK_SET)
                written = have
                for piece in response.iter_bytes():  # as it comes: a cut loses nothing that arrived
                    written += len(piece)
                    if written > release.size:
                        raise ArtifactRefused(f"central sent more than the release's {release.size} bytes")
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(fd, view) :]
                    if self.stopping.is_set():
                        raise TransientTransferError("the station is stopping; the download resumes later")
                os.fsync(fd)
            finally:
                os.close(fd)
        if written < release.size:
            raise TransientTransferError(f"the download ended at {written} of {release.size} bytes")

    def _check(self, release: CameraUpdateRelease, path: Path) -> None:
        size = path.stat().st_size
        if size != release.size:
            raise ArtifactRefused(f"the artifact is {size} bytes, the signed release says {release.size}; deleted")
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        if digest != release.sha256:
            raise ArtifactRefused(
                f"the artifact's SHA-256 is {digest[:16]}…, the signed release says {release.sha256[:16]}…; deleted"
            )

    def sweep(self) -> list[str]:
        """Delete the artifacts no offer has named for a day, and files neither an offer nor a record
        names (a part of a download whose offer went)."""
        deleted = []
        for sha256 in self.updates.unused_artifacts(UNUSED_KEPT):
            for path in (artifact_path(self.store, sha256), self.folder / f"{sha256}.part"):
                path.unlink(missing_ok=True)
            self.updates.forget_artifact(sha256)
            deleted.append(sha256)
        named = {r.sha256 for r in self.updates.wanted_releases()} | {a.sha256 for a in self.updates.artifacts()}
        for path in self.folder.iterdir():
            if path.name.removesuffix(".part") not in named:
                path.unlink(missing_ok=True)
                deleted.append(path.name)
        if deleted:
            fsync_dir(self.folder)
            log.info("deleted %d firmware artifacts no offer named for %s", len(deleted), UNUSED_KEPT)
        return deleted
