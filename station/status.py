"""The station's status (docs/contracts.md §4), as JSON for scripts and as a table for people."""

from __future__ import annotations

import shutil

from fleet.clock import utc_now
from fleet.config import StationSettings
from fleet.protocol import ArtifactStatus, FailedFolder, FirmwareStatus, OfferStatus, StationStatus
from station.ingest import KEPT_IN_RESERVE
from station.store import StationStore
from station.sync.artifacts import artifact_path
from station.sync.link import plain_http_problem
from station.sync.window import UploadWindow


def station_status(settings: StationSettings, store: StationStore) -> StationStatus:
    summary = store.queue.summary()
    return StationStatus(
        station_id=settings.station_id,
        borough=settings.borough,
        **summary,
        pending_events=store.outbox.pending_count(),
        acked_event_seq=store.outbox.acked_seq(),
        checked_out=store.checkouts.open_count(),
        feed_cursor=store.mirror.cursor(),
        mirrored=store.mirror.counts(),
        problems=problems(settings, store, summary["failed_folders"]),
        upload_window=str(window) if (window := UploadWindow.of(settings)) else None,
        upload_window_open=window is None or window.is_open(utc_now()),
        bandwidth_limit_mbps=settings.bandwidth_limit_mbps,
        firmware=firmware_status(store),
    )


def firmware_status(store: StationStore) -> FirmwareStatus:
    """The offers not handed over yet and why, the artifacts kept or failing, the last failure."""
    artifacts = {a.sha256: a for a in store.updates.artifacts()}
    offers = []
    for offer, waiting in store.updates.offers():
        release = offer.release
        artifact = artifacts.get(release.sha256) if release else None
        if release is not None and artifact is not None and artifact.state == "failed":
            waiting = f"the artifact of release {release.id} failed (retried): {artifact.last_error}"
        elif release is not None and (artifact is None or not artifact_path(store, release.sha256).exists()):
            waiting = f"the artifact of release {release.id} is not downloaded yet"
        elif waiting is None or waiting.startswith("the artifact"):  # the camera's own reason stays
            waiting = "waiting for the camera to dock"
        if waiting.startswith("handed over"):
            continue
        offers.append(
            OfferStatus(
                serial=offer.serial,
                deployment_id=offer.deployment_id,
                attempt=offer.attempt,
                update=f"firmware {release.model} {release.version}" if release else "profile",
                waiting=waiting,
            )
        )
    failed = [a for a in artifacts.values() if a.last_error_at is not None]
    last = max(failed, key=lambda a: a.last_error_at or utc_now()) if failed else None
    return FirmwareStatus(
        offers=offers,
        artifacts=[
            ArtifactStatus(
                sha256=a.sha256,
                release_id=a.release_id,
                size=a.size,
                state="verified" if a.state == "verified" else "failed",
                verified_at=a.verified_at,
                failures=a.failures,
                last_error=a.last_error if a.state == "failed" else None,
                next_attempt_at=a.next_attempt_at,
                unused_since=a.unused_since,
            )
            for a in artifacts.values()
        ],
        last_failure=last.last_error if last else None,
        last_failure_at=last.last_error_at if last else None,
    )


def problems(settings: StationSettings, store: StationStore, failed_folders: list[FailedFolder]) -> list[str]:
    """Conditions that stop ingest, checked now: the running station cannot record a database
    it cannot write, so this asks the disk and the database itself.

    A disk is "full" only once a write failed for want of room; below the reserve, with every
    write still succeeding, it is "low" (ingest holds cameras back so the database can record)."""
    found = []
    waiting = [f for f in failed_folders if f.reason.startswith("disk full")]
    free = shutil.disk_usage(store.data_dir).free
    state = "disk full" if free == 0 or any(KEPT_IN_RESERVE not in f.reason for f in waiting) else "disk low"
    if free < settings.min_free_bytes or free == 0:
        found.append(
            f"{state}: {_size(free)} free in {store.data_dir}, below the reserve of "
            f"{_size(settings.min_free_bytes)} (min_free_bytes); docked cameras keep their clips until "
            "there is room"
        )
    if waiting:
        found.append(
            f"{state}: {len(waiting)} docked folder(s) wait for room: {', '.join(f.folder for f in waiting[:5])}"
        )
    if (db_problem := store.write_problem()) is not None:
        found.append(db_problem)
    if (tls_problem := store.central_tls_problem()) is not None:
        found.append(tls_problem)
    if (clear := plain_http_problem(settings.central_url)) is not None:
        found.append(clear)
    return found


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_status(status: StationStatus) -> None:
    from rich.table import Table
    from rich.text import Text

    from fleet.console import console as make_console

    # Folder names and reasons come from the dock, errors from central: shown as text, never
    # read as console markup (a folder named "[/]" stopped this command; others restyled it).
    console = make_console()
    for problem in status.problems:
        console.print(Text(problem, style="bold red"))
    table = Table(title=f"Station {status.station_id} ({status.borough})", show_header=False)
    table.add_row("pending clips", f"{status.pending_clips} ({_size(status.pending_bytes)})")
    table.add_row("verified at central", str(status.verified_clips))
    table.add_row("local copies kept", f"{status.local_copies} ({_size(status.local_bytes)})")
    table.add_row("by state", ", ".join(f"{k}: {v}" for k, v in sorted(status.clips_by_state.items())) or "-")
    table.add_row(
        "last contact with central", status.last_sync_ok_at.isoformat() if status.last_sync_ok_at else "never"
    )
    if status.oldest_pending_recorded_at:
        table.add_row("oldest pending recording", status.oldest_pending_recorded_at.isoformat())
    if status.upload_window:
        state = "open" if status.upload_window_open else "closed: only evidential and held clips go up"
        table.add_row("upload window", f"{status.upload_window} ({state})")
    else:
        table.add_row("upload window", "any time")
    cap = f"{status.bandwidth_limit_mbps:g} Mbit/s" if status.bandwidth_limit_mbps else "none"
    table.add_row("bandwidth cap", cap)
    table.add_row("events not yet at central", str(status.pending_events))
    table.add_row("cameras checked out", str(status.checked_out))
    table.add_row("mirrored from central", ", ".join(f"{k}: {v}" for k, v in status.mirrored.items()) or "-")
    console.print(table)
    _render_firmware(console, status.firmware)
    if status.failed_folders:
        bad = Table(title="Dock folders not ingested (left in place)")
        bad.add_column("folder")
        bad.add_column("reason")
        for f in status.failed_folders:
            bad.add_row(Text(f.folder), Text(f.reason))
        console.print(bad)
    for title, clips in (
        ("Clips refused by central (run `fleet station retry` after fixing)", status.failed_clips),
        ("Clips waiting to retry", status.waiting_clips),
    ):
        if clips:
            t = Table(title=title)
            for col in ("clip", "attempts", "next attempt", "last error"):
                t.add_column(col)
            for c in clips:
                t.add_row(
                    Text(c.clip_id),
                    str(c.attempts),
                    c.next_attempt_at.isoformat() if c.next_attempt_at else "-",
                    Text(c.last_error or ""),
                )
            console.print(t)


def _render_firmware(console, firmware: FirmwareStatus) -> None:
    from collections import Counter

    from rich.table import Table
    from rich.text import Text

    if not firmware.offers and not firmware.artifacts and firmware.last_failure is None:
        return
    table = Table(title="Updates for docked cameras (docs/firmware.md)", show_header=False)
    kept = [a for a in firmware.artifacts if a.state == "verified"]
    table.add_row("artifacts kept", f"{len(kept)} ({_size(sum(a.size for a in kept))})")
    for a in firmware.artifacts:
        if a.state == "failed":
            table.add_row(Text(f"release {a.release_id} failing"), Text(f"{a.failures}x: {a.last_error or ''}"))
    if firmware.last_failure:
        at = firmware.last_failure_at.isoformat() if firmware.last_failure_at else "-"
        table.add_row("last failure", Text(f"{at}: {firmware.last_failure}"))
    for why, count in Counter(o.waiting for o in firmware.offers).most_common(10):
        table.add_row(f"{count} offer(s) waiting", Text(why))
    console.print(table)
