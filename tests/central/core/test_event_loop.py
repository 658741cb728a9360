"""No database work on the event loop while central serves (the rule in central.core.providers).

Every read and write goes through the store's database (``central.core.database``, on either
engine): here each one notes whether its thread is running the event loop, while every route
is called by every kind of caller (the role matrix's routes: an admin, a station, a borough's
supervisor, a user's API token, a browser session). The upload receiver too: it reads an
upload's row on a worker thread even under its per-upload asyncio locks (on PostgreSQL a read
on the loop that waited for the database, down or restarting, stalled every request of the
process, health checks included)."""

from __future__ import annotations

import asyncio
import re
import traceback
from pathlib import Path

from central.core.providers import services
from tests.central.access.test_role_matrix import POLICY, QUERY, SAMPLE
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, CAMDEN, create, make_settings, patch
from tests.central.fleetdata import batch, docked

CENTRAL = Path(__file__).parents[3] / "central"
PASSWORD = "correct horse battery"  # a test value, not a secret


def on_the_loop(monkeypatch, app) -> list[list[str]]:
    """From now on, where central opens a transaction or a read on the event loop's thread: its frames in central/."""
    seen: list[list[str]] = []
    database = type(services(app).store.writer)
    for name in ("read", "write"):
        original = getattr(database, name)

        def noted(self, *args, _original=original, **kwargs):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # a worker thread
            else:
                seen.append(
                    [
                        f"{frame.filename}:{frame.name}"
                        for frame in traceback.extract_stack()
                        if frame.filename.startswith(str(CENTRAL))
                    ]
                )
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(database, name, noted)
    return seen


def test_no_route_reads_or_writes_the_database_on_the_event_loop(tmp_path, monkeypatch):
    with central_client(
        make_settings(tmp_path / "central"), base_url="https://central.test", raise_server_exceptions=False
    ) as client:
        users = services(client.app).users
        users.add("s.camden", "supervisor", "test", borough="Camden")
        users.add("v.iewer", "viewer", "test", password=PASSWORD)
        supervisor = {"Authorization": f"Bearer {users.create_token('s.camden', 'loop', 'test').token}"}
        # Start-up is done: it may work on the loop, before anything is served.
        seen = on_the_loop(monkeypatch, client.app)

        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        client.post("/login", data={"name": "v.iewer", "password": PASSWORD, "next": "/", "csrf_token": token})
        assert client.cookies.get("bwv_session")
        assert client.post("/api/v1/events/", content=batch([docked("BWV-1")]), headers=CAMDEN).status_code == 200
        upload = create(client, b"x" * 100, length=200)
        assert patch(client, upload.headers["location"], 0, b"x" * 100).status_code == 204
        for route in sorted(POLICY):
            method, template = route.split(" ", 1)
            path = re.sub(r"\{(\w+):\w+\}", lambda m: SAMPLE[m.group(1)], template) + QUERY.get(template, "")
            for headers in (ADMIN, CAMDEN, supervisor, {}):  # {}: the browser's session
                client.request(
                    method,
                    path,
                    headers=headers,
                    json={} if method in ("POST", "PATCH") else None,
                    follow_redirects=False,
                )

        assert seen == [], "database work on the event loop (see central.core.providers)"

        async def read_on_the_loop() -> None:
            with services(client.app).store.writer.read() as db:
                db.execute("SELECT 1")

        with client.portal() as portal:  # the check itself notices a read on the loop
            portal.call(read_on_the_loop)
        assert len(seen) == 1, seen


def test_the_upload_receiver_never_writes_on_the_event_loop(tmp_path, monkeypatch):
    """The receiver never commits on the event loop (nor reads there: above): a commit waits for
    the writer's lock (the projection's batches, a retention run) and syncs the disk, and every
    upload of every station would wait with it."""
    writes: list[list[str]] = []

    def noted(self, *args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            writes.append(
                [f"{f.filename}:{f.name}" for f in traceback.extract_stack() if f.filename.startswith(str(CENTRAL))]
            )
        return original(self, *args, **kwargs)

    with central_client(make_settings(tmp_path / "central"), raise_server_exceptions=False) as client:
        database = type(services(client.app).store.writer)
        original = database.write
        monkeypatch.setattr(database, "write", noted)
        upload = create(client, b"x" * 100, length=200)
        location = upload.headers["location"]
        assert patch(client, location, 0, b"x" * 100).status_code == 204
        assert client.delete(location, headers={**CAMDEN, "Tus-Resumable": "1.0.0"}).status_code == 204
        assert client.head(location, headers={**CAMDEN, "Tus-Resumable": "1.0.0"}).status_code == 404
    assert writes == []
