"""``fleet station doctor`` against a real central over TLS: each thing that can go wrong at a
borough is found, and said with what to do."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta

import pytest

from fleet.config import StationSettings, settings_from_dict
from simulation.camera import SimClip, dock_camera
from station import doctor
from station.ingest import Ingestor
from tests.central.conftest import make_settings
from tests.central.serving import serving
from tests.station.conftest import RECORDED, key_file, station_store
from tests.support.pki import Pki


@pytest.fixture
def pki(tmp_path):
    return Pki.make(tmp_path / "pki")


@pytest.fixture
def central(tmp_path, pki):
    settings = make_settings(tmp_path / "central", tls=pki.server())
    with serving(settings) as port:
        yield port


def station(tmp_path, port: int, pki: Pki, **extra) -> StationSettings:
    (tmp_path / "dock").mkdir(exist_ok=True)
    (tmp_path / "dock").chmod(0o750)
    return settings_from_dict(
        {
            "station_id": "camden",
            "borough": "Camden",
            "central_url": f"https://127.0.0.1:{port}",
            "token": "camden-test-token",
            "data_dir": str(tmp_path / "station"),
            "dock_dir": str(tmp_path / "dock"),
            "min_free_bytes": 0,
            "tls": {"ca_bundle": pki.ca_bundle},
            "station_key": {"file": key_file(tmp_path)},
            **extra,
        },
        StationSettings,
    )


def verdicts(findings) -> dict[str, str]:
    return {f.check: f.verdict for f in findings}


def by_check(findings, check):
    [found] = [f for f in findings if f.check == check]
    return found


def test_a_healthy_station_is_all_ok(tmp_path, central, pki):
    settings = station(tmp_path, central, pki)
    store = station_store(settings.data_dir)
    findings = doctor.examine(settings, store)
    store.close()
    assert verdicts(findings) == {
        "disk": "ok",
        "disk trend": "ok",
        "database": "ok",
        "station key": "ok",
        "dock folder": "ok",
        "token": "ok",
        "TLS": "ok",
        "clock": "ok",
    }
    assert "central's certificate is trusted; it expires" in by_check(findings, "TLS").found


def test_each_problem_is_found_with_what_to_do(tmp_path, central, pki, monkeypatch):
    settings = station(tmp_path, central, pki, token="stolen-or-stale")
    store = station_store(settings.data_dir)
    dock_camera(settings.dock_dir, "BWV-1", [SimClip(300_000, RECORDED)], folder_name="cam")
    Ingestor(store, "camden", settings.dock_dir).scan()
    (tmp_path / "dock").chmod(0o777)
    room = 100_000  # bytes left above the reserve: at 300 kB ingested this week, gone in days
    real = doctor.shutil.disk_usage
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: real(p)._replace(free=settings.min_free_bytes + room))
    later = types.SimpleNamespace(time=lambda: __import__("time").time() + 300)  # five minutes fast
    monkeypatch.setattr(doctor, "time", later)
    findings = doctor.examine(settings, store)
    store.close()
    assert verdicts(findings) == {
        "disk": "ok",
        "disk trend": "warn",
        "database": "ok",
        "station key": "ok",
        "dock folder": "warn",
        "token": "fail",
        "TLS": "ok",
        "clock": "warn",
    }
    assert "the reserve is reached in about" in by_check(findings, "disk trend").found
    assert "writable by every user" in by_check(findings, "dock folder").found
    assert "central refuses this station's token (401)" in by_check(findings, "token").found
    assert re.search(r"\b(299|300|301) s ahead of central's", by_check(findings, "clock").found)  # whole seconds
    assert all(f.todo for f in findings if f.verdict != "ok")


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_a_central_it_cannot_trust_or_reach_and_a_certificate_near_its_end(tmp_path, pki):
    near_end = pki.ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=5))
    near = pki._write("near-end", near_end)
    for name, server, verdict, said in [
        ("other CA", pki.server("other", ca=pki.other_ca()), "fail", "not signed by a CA in [tls] ca_bundle"),
        ("near its end", near, "warn", "expires"),
    ]:
        settings = make_settings(tmp_path / name.replace(" ", "-"), tls=server)
        with serving(settings) as port:
            findings = doctor.examine(station(tmp_path, port, pki), None, "no station database yet")
        assert by_check(findings, "TLS").verdict == verdict, name
        assert said in by_check(findings, "TLS").found, name
        assert by_check(findings, "database").verdict == "fail"
    findings = doctor.examine(station(tmp_path, 9, pki), None, "no station database yet")  # nothing listens on 9
    assert by_check(findings, "central").verdict == "warn" and "keeps working" in by_check(findings, "central").todo


def test_a_missing_or_exposed_key_is_a_failure(tmp_path, pki):
    settings = station(tmp_path, 9, pki)
    exposed = tmp_path / "station.key"
    exposed.chmod(0o644)
    finding = by_check(doctor.examine(settings, None, "no database"), "station key")
    assert finding.verdict == "fail" and "open to group or others" in finding.found
    exposed.unlink()
    finding = by_check(doctor.examine(settings, None, "no database"), "station key")
    assert finding.verdict == "fail" and "not found" in finding.found and "key escrow" in finding.todo


def test_the_command_exits_1_on_a_failure(tmp_path, pki):
    config = tmp_path / "station.toml"
    config.write_text(
        'station_id = "camden"\nborough = "Camden"\ncentral_url = "http://127.0.0.1:9"\ntoken = "t"\n'
        f'data_dir = "{tmp_path / "data"}"\ndock_dir = "{tmp_path / "no-such-dock"}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "station", "doctor", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert '"check": "dock folder"' in done.stdout and "does not exist" in done.stdout
    assert not (tmp_path / "data").exists()  # the doctor looks, never creates
