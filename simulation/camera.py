"""A camera simulator: writes docked-camera folders in the dock inbox format (docs/contracts.md §3).

Used by the demo, the tests and the benchmarks, so every one of them docks cameras the
same way a real dock would: clips and sidecars first, ``DOCKED`` last.

A ``SimCamera`` also keeps what a camera carries between docks (its firmware, its settings) and
takes the update a station leaves in its folder (docs/firmware.md): when it is taken out of the
dock it reads ``update/`` if ``manifest.json`` is there, checks the artifact, applies it (failing
as often as ``UpdateFailures`` says for its model, deterministically), removes ``update/``, and
reports the outcome and its version in its next ``device.json``.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from fleet.clock import utc_now
from fleet.profiles import settings_sha256
from fleet.protocol import UPDATE_FORMAT, Battery, ClipSidecar, DeviceInfo, UpdateManifest, UpdateReport

TAGS = ["stop_and_search", "domestic_abuse", "public_order", "use_of_force", "traffic", "arrest"]


@dataclass
class SimClip:
    size: int
    recorded_at: datetime
    clip_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    tags: list[str] = field(default_factory=list)
    evidential: bool = False
    duration_s: float = 60.0
    include_sha256: bool = True
    seed: int | None = None

    def content(self) -> bytes:
        """Deterministic pseudo-random bytes for clips small enough to build in memory."""
        return random.Random(self.seed if self.seed is not None else self.clip_id).randbytes(self.size)


def write_clip_file(path: Path, clip: SimClip, block: int = 1 << 20) -> str:
    """Write the clip's bytes in blocks (bounded memory for GiB clips); return their SHA-256."""
    digest = hashlib.sha256()
    rng = random.Random(clip.seed if clip.seed is not None else clip.clip_id)
    with open(path, "wb") as f:
        remaining = clip.size
        while remaining:
            piece = rng.randbytes(min(block, remaining))
            digest.update(piece)
            f.write(piece)
            remaining -= len(piece)
    return digest.hexdigest()


def dock_camera(
    dock_dir: str | Path,
    serial: str,
    clips: list[SimClip],
    *,
    folder_name: str | None = None,
    docked_at: datetime | None = None,
    battery_pct: float = 35.0,
    marker: bool = True,
    battery: Battery | None = None,
    model: str = "Axon Body 2",
    firmware: str = "1.4.2",
    update: UpdateReport | None = None,
    profile_sha256: str | None = None,
) -> Path:
    """Write one camera's folder; ``DOCKED`` is written last (omit it with marker=False)."""
    docked_at = docked_at or utc_now()
    folder = Path(dock_dir) / (folder_name or f"{serial}-{docked_at.strftime('%Y%m%dT%H%M%S%f')}")
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    for index, clip in enumerate(clips):
        stem = f"{clip.recorded_at.strftime('%Y%m%d_%H%M%S')}_{index:03d}"
        sha256 = write_clip_file(folder / "clips" / f"{stem}.mp4", clip)
        sidecar = ClipSidecar(
            clip_id=uuid.UUID(clip.clip_id),
            recorded_at=clip.recorded_at,
            duration_s=clip.duration_s,
            pre_record_s=30,
            tags=clip.tags,
            evidential=clip.evidential,
            sha256=sha256 if clip.include_sha256 else None,
        )
        (folder / "clips" / f"{stem}.json").write_bytes(msgspec.json.encode(sidecar))
    device = DeviceInfo(
        serial=serial,
        model=model,
        firmware=firmware,
        docked_at=docked_at,
        battery=battery
        or Battery(
            level_pct=battery_pct,
            voltage_mv=3710,
            temperature_c=29.5,
            cycle_count=212,
            full_charge_mah=2710,
            design_mah=3000,
        ),
        storage_used_bytes=sum(c.size for c in clips),
        update=update,
        profile_sha256=profile_sha256,
    )
    (folder / "device.json").write_bytes(msgspec.json.encode(device))
    if marker:
        (folder / "DOCKED").touch()
    return folder


def random_shift(
    rng: random.Random,
    count: int,
    *,
    min_size: int,
    max_size: int,
    evidential_share: float = 0.05,
    now: datetime | None = None,
) -> list[SimClip]:
    """A shift's worth of clips of varied sizes, some tagged, a few evidential."""
    now = now or utc_now()
    clips = []
    for _ in range(count):
        tags = rng.sample(TAGS, k=rng.choice([0, 0, 1, 2]))
        clips.append(
            SimClip(
                size=rng.randint(min_size, max_size),
                recorded_at=now - timedelta(hours=rng.uniform(0.5, 10)),
                clip_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                tags=sorted(tags),
                evidential=rng.random() < evidential_share,
                duration_s=round(rng.uniform(20, 900), 1),
                seed=rng.getrandbits(32),
            )
        )
    return clips


def undock(folder: Path) -> None:
    """Undock: what a dock does when the camera is taken out (the folder goes away at once).

    The folder is first renamed to a hidden name, which the station ignores, so no scan ever
    sees it half removed (``DOCKED`` still there, ``device.json`` already gone)."""
    gone = folder.with_name(f".undocked-{folder.name}")
    os.rename(folder, gone)
    shutil.rmtree(gone)


UPDATE_DIR = "update"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class UpdateFailures:
    """How often a simulated camera's update fails, by model (``default`` for the others). The draw
    is a function of the seed, the camera and the attempt alone, so a run repeats exactly whatever
    order cameras dock in."""

    by_model: dict[str, float] = field(default_factory=dict)
    default: float = 0.0
    seed: int = 0

    def fails(self, serial: str, model: str, deployment_id: int, attempt: int) -> bool:
        rate = self.by_model.get(model, self.default)
        return random.Random(f"{self.seed}:{serial}:{deployment_id}:{attempt}").random() < rate


@dataclass
class SimCamera:
    """One camera across its docks: what it runs, what it carries, and its last update's outcome."""

    serial: str
    model: str = "Axon Body 2"
    firmware: str = "1.4.2"
    settings: dict | None = None
    """The profile it applied last (None: as it left the factory)."""
    report: UpdateReport | None = None
    """The outcome of its last update, reported in every ``device.json`` until the next update."""
    failures: UpdateFailures = field(default_factory=UpdateFailures)

    def dock(self, dock_dir: str | Path, clips: list[SimClip], **kwargs) -> Path:
        """``dock_camera`` with what this camera runs and reports."""
        return dock_camera(
            dock_dir,
            self.serial,
            clips,
            model=self.model,
            firmware=self.firmware,
            update=self.report,
            profile_sha256=self.profile_sha256(),
            **kwargs,
        )

    def profile_sha256(self) -> str | None:
        """What its ``device.json`` reports of the settings it carries (None: as it left the factory)."""
        return settings_sha256(self.settings) if self.settings is not None else None

    def take_update(self, folder: Path) -> UpdateReport | None:
        """Read and apply the update the station left in ``update/`` (only once ``manifest.json`` is
        there), then remove ``update/``; None when there was none."""
        manifest_path = folder / UPDATE_DIR / MANIFEST
        if not manifest_path.is_file():
            return None
        try:
            manifest = msgspec.json.decode(manifest_path.read_bytes(), type=UpdateManifest)
        except msgspec.DecodeError:
            shutil.rmtree(folder / UPDATE_DIR)
            return None  # no deployment to report against
        error = self._apply(folder / UPDATE_DIR, manifest)
        shutil.rmtree(folder / UPDATE_DIR)
        self.report = UpdateReport(
            deployment_id=manifest.deployment_id, attempt=manifest.attempt, ok=error is None, error=error
        )
        return self.report

    def _apply(self, update: Path, manifest: UpdateManifest) -> str | None:
        """Why the update failed, or None once applied."""
        if manifest.format != UPDATE_FORMAT:
            return f"a manifest of format {manifest.format!r}, this camera reads {UPDATE_FORMAT!r}"
        if manifest.serial != self.serial:
            return f"the manifest is for {manifest.serial}"
        if manifest.firmware is not None:
            if manifest.firmware.model != self.model:
                return f"firmware for {manifest.firmware.model}, this camera is a {self.model}"
            name = manifest.firmware.file
            if name in ("", ".", "..") or "/" in name or "\\" in name:
                return f"the manifest names {name!r}, not a file of update/"
            artifact = update / name
            if artifact.is_symlink() or not artifact.is_file() or artifact.stat().st_size != manifest.firmware.size:
                return "the artifact is missing, not a regular file, or of the wrong size"
            with open(artifact, "rb") as f:
                if hashlib.file_digest(f, "sha256").hexdigest() != manifest.firmware.sha256:
                    return "the artifact does not match its SHA-256"
        elif manifest.profile is None:
            return "the manifest holds neither firmware nor a profile"
        if self.failures.fails(self.serial, self.model, manifest.deployment_id, manifest.attempt):
            return "flash verify failed" if manifest.firmware is not None else "settings rejected"
        if manifest.firmware is not None:
            self.firmware = manifest.firmware.version
        else:
            self.settings = manifest.profile
        return None

    def undock(self, folder: Path) -> None:
        """Taken out of the dock: the update left for it is applied (it reboots into it), the folder goes."""
        self.take_update(folder)
        undock(folder)
