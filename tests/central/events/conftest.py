"""Fixtures of the events tests."""

from __future__ import annotations

import threading

import pytest

from central.core.providers import services


@pytest.fixture
def applied_by_the_test(client, monkeypatch):
    """The client, its events applied only when the test says (``apply_pending`` from the test's own
    thread): the app's projection worker finds none to apply, so what the test applies in one call
    is one transaction."""
    events = services(client.app).events
    apply_pending = events.apply_pending

    def in_the_test_only(limit: int = 2000) -> int:
        return apply_pending(limit) if threading.current_thread() is threading.main_thread() else 0

    monkeypatch.setattr(events, "apply_pending", in_the_test_only)
    return client
