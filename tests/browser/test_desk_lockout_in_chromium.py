"""The desk's lockout as a browser meets it: a page of another site, open in the sergeant's browser,
must not lock the desk's sign-in out (it can make the browser ask the desk, never with its code)."""

from __future__ import annotations

import http.server
import threading

from simulation.local_cluster import free_port
from simulation.screenshots import CHROMIUM, FLAGS
from station.access_code import FREE
from station.api import DeskServer
from station.store.database import StationStore
from tests.station.test_api import node

CODE = "desk-lockout-browser-code"  # a test value, not a secret


def test_a_page_of_another_site_does_not_lock_the_sergeant_out(tmp_path):
    from playwright.sync_api import sync_playwright

    (tmp_path / "dock").mkdir()
    store = StationStore(tmp_path / "data")
    port = free_port()
    desk = DeskServer(node(store, tmp_path / "dock", api_port=port, api_token=CODE), "127.0.0.1", port)
    images = "".join(f'<img src="http://127.0.0.1:{port}/status?{n}">' for n in range(3 * FREE)).encode()

    class OtherSite(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(images)

        def log_message(self, *_) -> None:
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), OtherSite)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    desk.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                page = browser.new_page()
                page.goto(f"http://localhost:{other.server_port}/")  # another origin than the desk's
                page.wait_for_function("Array.from(document.images).every(i => i.complete)")
                page.goto(f"http://127.0.0.1:{port}/desk/sign-in")
                page.get_by_label("The desk's access code").fill(CODE)
                with page.expect_navigation():
                    page.get_by_role("button", name="Sign in").click()
                said = " ".join(page.inner_text("body").split())
            finally:
                browser.close()
    finally:
        other.shutdown()
        other.server_close()
        desk.stop()
        store.close()
    assert "Sign out" in said and "too many wrong access codes" not in said, said[:300]
