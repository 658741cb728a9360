"""Browser tests: Playwright driving Debian's Chromium (``make test`` installs it when missing)
against a real central under uvicorn and a real station, all on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from fleet.clock import utc_now
from fleet.protocol import Battery
from simulation.camera import SimClip, dock_camera
from simulation.screenshots import CHROMIUM, FLAGS  # the one Chromium, launched alike
from tests.e2e.harness import Cluster, wait_until
from tests.test_cli import ROOT

PASSWORD = "browser test password"  # a test value, not a secret


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Central with a user per role we drive, one station docking a camera six times over a
    month (a falling battery), cameras and officers registered the way operators would."""
    cluster = Cluster(tmp_path_factory.mktemp("browser"), station_ids=("camden",))
    config = cluster.root / "central" / "central.toml"
    with config.open("a") as f:  # the reference roll-out, so the roll-out page has a plan to show
        f.write(
            f'[rollout]\nboroughs = "{ROOT / "config" / "boroughs.toml"}"\n'
            f'scenario = "{ROOT / "config" / "rollout.toml"}"\n'
            # the fleet health job every few seconds: a docking's battery forecast (replace by) shows at once
            "[fleet]\nhealth_check_minutes = 0.05\n"
        )
    for name, role in (("f.manager", "admin"), ("s.uper", "supervisor")):
        add_user(cluster, name, role)
    cluster.start_central()
    with cluster.admin() as admin:
        admin.post(
            "/api/v1/officers/",
            json=[{"officer_id": f"PC{i}", "borough": "Camden", "role": "response"} for i in (1, 2)],
        ).raise_for_status()
        admin.post(
            "/api/v1/devices/",
            json=[
                {"serial": f"BWV-00000{i}", "model": "Axon Body 2", "borough": "Camden", "assignment_mode": "personal"}
                for i in (1, 2, 3)
            ],
        ).raise_for_status()
    cluster.start_station("camden")
    now = utc_now()
    clip = SimClip(size=64_000, recorded_at=now - timedelta(hours=2), tags=["stop_and_search"])
    for day, full_mah in enumerate((2950, 2900, 2840, 2780, 2720, 2650)):
        dock_camera(
            cluster.dock_dir("camden"),
            "BWV-000001",
            [clip] if day == 5 else [],
            docked_at=now - timedelta(days=30 - 6 * day),
            battery=Battery(
                level_pct=40, temperature_c=30, cycle_count=100 + 40 * day, full_charge_mah=full_mah, design_mah=3000
            ),
        )
    wait_until(
        lambda: cluster.verified({clip.clip_id: None}), 60, "the clip verified at central", check=cluster.check_alive
    )
    with cluster.admin() as admin:
        wait_until(
            lambda: len(admin.get("/api/v1/devices/BWV-000001").json()["battery"]) == 6,
            30,
            "six dockings applied at central",
        )
    yield cluster, clip
    cluster.stop_all()


def add_user(cluster: Cluster, name: str, role: str, borough: str | None = None) -> None:
    """A dashboard user with PASSWORD, added as an operator does (``fleet central add-user``)."""
    added = subprocess.run(
        [sys.executable, "-m", "fleet.cli", "central", "add-user", name, "--role", role, "--password-stdin"]
        + (["--borough", borough] if borough else [])
        + ["--config", str(cluster.config_path)],
        input=PASSWORD + "\n",
        text=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert added.returncode == 0, added.stderr


class Task:
    """A user's task in the browser, counted in the steps the user takes: each call here (open a
    page, click, fill a field, choose from a list, download, print) is one step, written to
    ``log`` as the user would say it, so a test can pin how long a task is."""

    def __init__(self, page, base: str) -> None:
        self.page = page
        self.base = base
        self.log: list[str] = []

    @property
    def steps(self) -> int:
        return len(self.log)

    def __str__(self) -> str:
        return "\n".join(f"{n}. {step}" for n, step in enumerate(self.log, 1))

    def open(self, path: str) -> None:
        """Type an address (or follow a bookmark)."""
        self.log.append(f"open {path}")
        self.page.goto(self.base + path)

    def log_in(self, name: str) -> None:
        """Open the dashboard, fill the login form, send it: four steps."""
        self.open("/")
        self.fill("User name", name)
        self.fill("Password", PASSWORD)
        self.click("button", "Log in")
        self.page.wait_for_url(lambda url: "/login" not in url)

    def click(self, role: str, name, within=None) -> None:
        """Click the link or button with this accessible name (in ``within``, a part of the page)."""
        self.log.append(f"click the {role} {name!r}")
        (within or self.page).get_by_role(role, name=name).click()
        self.page.wait_for_load_state()

    def fill(self, label: str, text: str, within=None) -> None:
        self.log.append(f"fill {label!r} with {text!r}")
        (within or self.page).get_by_label(label, exact=True).fill(text)

    def choose(self, label: str, option: str, within=None) -> None:
        self.log.append(f"choose {option!r} in {label!r}")
        (within or self.page).get_by_label(label, exact=True).select_option(option)

    def download(self, role: str, name, within=None) -> Path:
        """Click what downloads a file; where the browser saved it."""
        self.log.append(f"download through the {role} {name!r}")
        with self.page.expect_download() as started:
            (within or self.page).get_by_role(role, name=name).click()
        return Path(started.value.path())

    def print(self) -> bytes:
        """Print the page (as PDF: what headless Chromium prints to); the page stays in print media."""
        self.log.append("print the page")
        self.page.emulate_media(media="print")
        return self.page.pdf()


class Watched:
    """The browser, every page it opens watched for Content-Security-Policy violations
    (Chromium reports each on the page's console)."""

    def __init__(self, browser) -> None:
        self.browser = browser
        self.violations: list[str] = []

    def new_page(self, **kwargs):
        page = self.browser.new_page(**kwargs)
        page.on(
            "console",
            lambda message: (
                self.violations.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )
        return page


@pytest.fixture(scope="module")
def browser_process():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it (make browser)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def chromium(browser_process):
    """Chromium; a test fails when a page it opened broke the Content-Security-Policy."""
    watched = Watched(browser_process)
    yield watched
    assert watched.violations == [], "Content-Security-Policy violations"
