"""``python -m simulation.screenshots``: the README's pictures of the dashboard, from a force-sized central.

Builds (or reuses) the Monday-morning force of ``simulation.force.monday``, starts central on it
(``fleet central serve`` under uvicorn, on a free port), signs in as the fleet manager in Debian's
Chromium (Playwright) and saves each page a newcomer opens on a Monday at 1280×800. A page that
answers with an error, or sends the browser back to the login form, stops the run (exit 1).

    python -m simulation.screenshots                 # docs/screenshots/ from the force (minutes the first time)
    python -m simulation.screenshots --fresh         # build the force again
    python -m simulation.screenshots --quick --out DIR --state DIR   # a small force, in seconds (the test)
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from fleet.errors import FleetError
from simulation.force import monday

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""No background connections: this machine's network is closed (see the toolchain notes)."""
WIDTH, HEIGHT = 1280, 800
"""A laptop's window: the size of every picture."""


class Shot(NamedTuple):
    name: str
    """The file: ``<name>.png``."""
    path: Callable[[monday.Built], str]
    anchor: str = ""
    """An element to bring near the top before the picture (a CSS selector); where a version of the
    page has none, the picture is of the page's top."""


SHOTS = (
    Shot("overview", lambda b: "/"),
    Shot("devices", lambda b: "/devices?flag=short_shift"),
    Shot("device", lambda b: f"/devices/{b.worn_serial}", anchor="#battery-chart"),
    Shot("officers", lambda b: "/officers"),
    Shot("stations", lambda b: "/stations"),
    Shot("rollout", lambda b: "/rollout"),
    Shot("clips", lambda b: "/clips"),
    Shot("clip", lambda b: f"/clips/{b.held_clip}"),
    Shot("audit", lambda b: "/audit"),
    Shot("alerts", lambda b: "/devices?flag=replace_soon"),
)
"""What a fleet manager opens on a Monday, in that order. The overview's alert cards each lead to
a filtered list: ``devices`` is the cameras that won't last a shift, ``alerts`` the batteries to
replace within 30 days."""


def take(url: str, built: monday.Built, out: Path, log=print) -> list[Path]:
    """Sign in and save every page of ``SHOTS`` under ``out``; FleetError on an error page."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise FleetError("Debian's chromium is missing: `make browser` installs it")
    out.mkdir(parents=True, exist_ok=True)
    # localhost, not 127.0.0.1: a secure context to the browser, so the session's Secure cookie is kept
    base = url.replace("127.0.0.1", "localhost")
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.goto(base + "/login")
            page.get_by_label("User name").fill(monday.USER)
            page.get_by_label("Password").fill(monday.PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(re.compile(r"/$"))
            for shot in SHOTS:
                path = shot.path(built)
                response = page.goto(base + path, wait_until="networkidle")
                if response is None or response.status >= 400:
                    status = response.status if response is not None else "no answer"
                    said = " ".join(page.evaluate("document.body ? document.body.innerText : ''").split())
                    raise FleetError(f"{path} answered {status}: {said[-200:]!r}")
                if "/login" in page.url:
                    raise FleetError(f"{path} sent the browser back to the login form")
                if shot.anchor:
                    page.evaluate(
                        "a => { const e = document.querySelector(a); "
                        "if (e) window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 160); }",
                        shot.anchor,
                    )
                target = out / f"{shot.name}.png"
                page.screenshot(path=str(target))
                saved.append(target)
                log(f"  {target}  {path}")
        finally:
            browser.close()
    return saved


def run(out: Path, root: Path, size: monday.Size, *, fresh: bool = False, log=print) -> list[Path]:
    """Build or reuse the force, serve it, take the pictures, stop central."""
    from simulation.local_cluster import free_port, start_central

    with tempfile.TemporaryDirectory(prefix="fleet-screenshots-", dir=_fast_folder()) as work:
        built = monday.state(root, size, Path(work) / "month", fresh=fresh, log=log)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    central = start_central(monday.Built.config(root), root / "central" / "serve.log", url, timeout=120, port=port)
    try:
        log(f"central on {url}; saving the pages to {out}")
        return take(url, built, out, log=log)
    finally:
        central.stop()


def _fast_folder() -> str | None:
    """The month's scratch folder in memory where there is one (the stations' fsyncs cost nothing there)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulation.screenshots",
        description="Save the dashboard's pages, as a fleet manager sees them on a Monday, from a force-sized "
        "central (built with `fleet simulate`'s pipeline, kept and reused).",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where the PNGs go (default: docs/screenshots; needed with --quick)"
    )
    parser.add_argument(
        "--state", type=Path, default=monday.STATE_DIR, help=f"where the force is kept (default: {monday.STATE_DIR})"
    )
    parser.add_argument("--fresh", action="store_true", help="build the force again even if one is kept")
    parser.add_argument("--quick", action="store_true", help="a small force (60 cameras, 3 days): for the test")
    args = parser.parse_args(argv)
    if args.quick and (args.out is None or args.state == monday.STATE_DIR):
        parser.error("--quick needs --out and --state: the small force's pictures never replace the README's")
    out = args.out or monday.ROOT / "docs" / "screenshots"
    started = time.monotonic()
    try:
        saved = run(out.resolve(), args.state.resolve(), monday.QUICK if args.quick else monday.FORCE, fresh=args.fresh)
    except FleetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(saved)} pages saved in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
