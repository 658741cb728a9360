"""``fleet station doctor``: what can go wrong at a borough, checked in one go, each with what to do.

Run by the person at the station (or its supervisor's timer) whether or not the station runs:
the disk and how fast it fills, the database, the dock folder, central's reach, certificate
and token, and the clock against central's. Each finding is ``ok``, ``warn`` (works now,
will not for long) or ``fail`` (something stops now); the exit status is 1 on any ``fail``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import ssl
import stat
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal

import httpx
import msgspec

from fleet import tls
from fleet.clock import utc_now
from fleet.config import StationSettings
from station.store import StationStore
from station.sync.link import build_client, plain_http_problem

Verdict = Literal["ok", "warn", "fail"]

CLOCK_WARN_S = 60.0
"""Skew beyond this is worth mending (central tolerates minutes, but attribution is by the camera's clock)."""
CERT_WARN_DAYS = 21
TREND_DAYS = 7
FULL_WARN_DAYS = 7


class Finding(msgspec.Struct, kw_only=True):
    check: str
    verdict: Verdict
    found: str
    todo: str = ""
    """What to do about it (empty when nothing is needed)."""


def examine(settings: StationSettings, store: StationStore | None, store_error: str | None = None) -> list[Finding]:
    """Every check, in the order a person would look (local first, then the link to central)."""
    findings = [*_disk(settings, store), _database(store, store_error), _key(settings, store), _dock(settings)]
    findings += _central(settings, store.mirror.cursor() if store is not None else 0)
    return findings


def _disk(settings: StationSettings, store: StationStore | None) -> list[Finding]:
    data = Path(settings.data_dir)
    try:
        free = shutil.disk_usage(data if data.exists() else data.parent).free
    except OSError as exc:
        return [Finding(check="disk", verdict="fail", found=f"cannot read {data}: {exc.strerror}", todo="mount it")]
    room = free - settings.min_free_bytes
    found = f"{_gib(free)} free in {data} (reserve {_gib(settings.min_free_bytes)})"
    if room <= 0:
        return [
            Finding(
                check="disk",
                verdict="fail",
                found=found,
                todo="below the reserve: cameras stay docked with their footage. Free space (other files), "
                "or check that clips reach central so verified copies are purged",
            )
        ]
    if store is None:
        return [Finding(check="disk", verdict="ok", found=found)]
    since = utc_now() - timedelta(days=TREND_DAYS)
    daily = store.queue.ingested_bytes_since(since) / TREND_DAYS
    pending = store.queue.summary()["pending_bytes"]
    trend = f"ingesting {_gib(daily)} a day over the last {TREND_DAYS} days, {_gib(pending)} waiting for central"
    if daily > 0 and room / daily < FULL_WARN_DAYS:
        return [
            Finding(check="disk", verdict="ok", found=found),
            Finding(
                check="disk trend",
                verdict="warn",
                found=f"{trend}: the reserve is reached in about {room / daily:.1f} days if nothing is purged",
                todo="check that uploads keep up (fleet station status); a bigger disk if they do",
            ),
        ]
    return [Finding(check="disk", verdict="ok", found=found), Finding(check="disk trend", verdict="ok", found=trend)]


def _database(store: StationStore | None, store_error: str | None) -> Finding:
    if store is None:
        return Finding(check="database", verdict="fail", found=store_error or "cannot open", todo="see the error")
    try:
        with store.writer.read() as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        verdict = str(exc)
    if verdict != "ok":
        return Finding(
            check="database",
            verdict="fail",
            found=f"{store.path}: {verdict}",
            todo="stop the station, copy the data folder aside, and restore the database from its backup",
        )
    if (problem := store.write_problem()) is not None:
        return Finding(
            check="database", verdict="fail", found=problem, todo="make the data folder writable by the station's user"
        )
    return Finding(check="database", verdict="ok", found=f"{store.path}: intact and writable")


def _key(settings: StationSettings, store: StationStore | None) -> Finding:
    """The station key readable as configured (never from the database), covering every sealed clip."""
    from fleet.errors import ConfigError
    from station.keys import check_keys_cover, load_keyring

    try:
        keyring = load_keyring(settings.station_key)
        if store is not None:
            check_keys_cover(store, keyring)
    except ConfigError as exc:
        return Finding(
            check="station key",
            verdict="fail",
            found=str(exc),
            todo="the station does not start without it: restore the key file (mode 600, the station's user) "
            "or its credential from the force's key escrow",
        )
    source = settings.station_key.file or settings.station_key.env or settings.station_key.credential
    return Finding(check="station key", verdict="ok", found=f"key {keyring.current_id} read from {source}")


def _dock(settings: StationSettings) -> Finding:
    dock = Path(settings.dock_dir)
    if not dock.is_dir():
        return Finding(
            check="dock folder", verdict="fail", found=f"{dock} does not exist", todo="create it, or mount the docks"
        )
    if not os.access(dock, os.R_OK | os.W_OK | os.X_OK):
        return Finding(
            check="dock folder",
            verdict="fail",
            found=f"{dock} is not readable and writable by this user",
            todo="give the station's user read, write and search rights (it removes folders once ingested)",
        )
    mode = dock.stat().st_mode
    if mode & stat.S_IWOTH:
        return Finding(
            check="dock folder",
            verdict="warn",
            found=f"{dock} is writable by every user of this machine (mode {stat.S_IMODE(mode):o})",
            todo="anyone logged in could plant camera folders: chmod o-w, write access for the docks' group only",
        )
    return Finding(check="dock folder", verdict="ok", found=f"{dock}: readable and writable")


def _central(settings: StationSettings, cursor: int) -> list[Finding]:
    findings = []
    if (clear := plain_http_problem(settings.central_url)) is not None:
        findings.append(
            Finding(check="TLS", verdict="warn", found=clear, todo="give central a certificate ([tls] in both files)")
        )
    try:
        with build_client(settings) as client:
            sent = time.time()
            with client.stream("GET", "/healthz") as health:
                peer = _peer_certificate(health)
            took = time.time() - sent
            feed = client.get("/api/v1/changes/", params={"since": cursor})  # wait=0: answers at once
    except httpx.TransportError as exc:
        why = tls.refusal(exc, settings.central_url, settings.tls)
        if why is not None:
            findings.append(
                Finding(
                    check="TLS",
                    verdict="fail",
                    found=why,
                    todo="renew central's certificate, or fix [tls] ca_bundle / pinned_certificate",
                )
            )
        else:
            findings.append(
                Finding(
                    check="central",
                    verdict="warn",
                    found=f"no answer from {settings.central_url}: {exc}",
                    todo="the station keeps working and queues; check the network or ask the central team",
                )
            )
        return findings
    findings.append(_token(feed))
    if peer is not None:
        findings.append(_certificate(peer))
    findings.append(_clock(health, took))
    return findings


def _peer_certificate(response: httpx.Response) -> dict | None:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    return ssl_object.getpeercert() if ssl_object is not None else None


def _token(feed: httpx.Response) -> Finding:
    if feed.status_code in (401, 403):
        return Finding(
            check="token",
            verdict="fail",
            found=f"central refuses this station's token ({feed.status_code}): {_message(feed)}",
            todo="check token / token_env against central's [stations] entry (a rotation half done?)",
        )
    if feed.status_code >= 400:
        return Finding(check="token", verdict="warn", found=f"central answered {feed.status_code}: {_message(feed)}")
    return Finding(check="token", verdict="ok", found="central accepts this station's token")


def _certificate(peer: dict) -> Finding:
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(peer["notAfter"]), UTC)
    days = (expires - utc_now()).total_seconds() / 86_400
    found = f"central's certificate is trusted; it expires {expires:%Y-%m-%d} ({days:.0f} days)"
    if days < CERT_WARN_DAYS:
        return Finding(check="TLS", verdict="warn", found=found, todo="ask the central team to renew it (SIGHUP)")
    return Finding(check="TLS", verdict="ok", found=found)


def _clock(health: httpx.Response, took: float) -> Finding:
    date = health.headers.get("date")
    if not date:
        return Finding(check="clock", verdict="warn", found="central sent no Date header to compare with")
    theirs = parsedate_to_datetime(date).timestamp() + took / 2
    skew = time.time() - theirs
    found = f"this station's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} central's"
    if abs(skew) > CLOCK_WARN_S + 1:  # the header has whole seconds
        return Finding(
            check="clock",
            verdict="warn",
            found=found,
            todo="turn on time sync (systemd-timesyncd or chrony): events too far out of time are held at central",
        )
    return Finding(check="clock", verdict="ok", found=found)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return response.text[:200]


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def render(findings: list[Finding]) -> None:
    from rich.table import Table
    from rich.text import Text

    from fleet.console import console

    table = Table(title="fleet station doctor", show_lines=True)
    for column in ("check", "", "found", "what to do"):
        table.add_column(column)
    style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for f in findings:
        table.add_row(f.check, Text(f.verdict, style=style[f.verdict]), Text(f.found), Text(f.todo))
    console().print(table)
