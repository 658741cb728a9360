"""The digest's rule and its routing, on plain values: new, worse, resolved once, a reminder, no flood."""

from datetime import UTC, datetime, timedelta

import pytest

from central.alerts.digest import Told, news
from central.alerts.routing import wants
from fleet.config import AlertDestination

T = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
EVERYTHING = AlertDestination(webhook_url="https://x.invalid/hook")
CAMDEN_LOST = AlertDestination(email_to=["duty@camden.invalid"], boroughs=["Camden"], kinds=["lost"])


@pytest.mark.parametrize(
    ("destination", "kind", "borough", "wanted"),
    [
        (EVERYTHING, "lost", "Camden", True),
        (EVERYTHING, "audit_chain", "", True),
        (CAMDEN_LOST, "lost", "Camden", True),
        (CAMDEN_LOST, "lost", "Barnet", False),
        (CAMDEN_LOST, "stale", "Camden", False),
        (AlertDestination(email_to=["a@b.invalid"], boroughs=["Camden"]), "audit_chain", "", False),
    ],
)
def test_routing_by_borough_and_kind(destination, kind, borough, wanted):
    assert wants(destination, kind, borough) is wanted


def test_what_became_active_is_new_and_only_what_the_destination_wants():
    current = {("lost", "Camden"): 2, ("lost", "Barnet"): 1, ("stale", "Camden"): 5, ("conflicts", "Camden"): 0}
    assert [(n.kind, n.borough, n.change) for n in news(EVERYTHING, current, {}, T, DAY)] == [
        ("lost", "Barnet", "new"),
        ("lost", "Camden", "new"),
        ("stale", "Camden", "new"),
    ]
    assert [(n.kind, n.borough, n.number) for n in news(CAMDEN_LOST, current, {}, T, DAY)] == [("lost", "Camden", 2)]


def test_told_once_nothing_again_until_worse_resolved_or_the_reminder():
    told = {("lost", "Camden"): Told(2, T)}
    assert news(EVERYTHING, {("lost", "Camden"): 2}, told, T + timedelta(hours=1), DAY) == []
    assert news(EVERYTHING, {("lost", "Camden"): 1}, told, T + timedelta(hours=1), DAY) == []  # fewer: no message
    worse = news(EVERYTHING, {("lost", "Camden"): 3}, told, T + timedelta(hours=1), DAY)
    assert [(n.change, n.number, n.previous) for n in worse] == [("worse", 3, 2)]
    resolved = news(EVERYTHING, {("lost", "Camden"): 0}, told, T + timedelta(hours=1), DAY)
    assert [(n.change, n.number, n.previous) for n in resolved] == [("resolved", 0, 2)]
    # told it was resolved: nothing more while it stays at 0
    assert news(EVERYTHING, {("lost", "Camden"): 0}, {("lost", "Camden"): Told(0, T)}, T + DAY * 3, DAY) == []


def test_a_reminder_due_brings_every_active_alert_together():
    told = {("lost", "Camden"): Told(2, T), ("stale", "Barnet"): Told(4, T + timedelta(hours=20))}
    current = {("lost", "Camden"): 2, ("stale", "Barnet"): 4, ("conflicts", "Barnet"): 1}
    found = news(EVERYTHING, current, told, T + DAY, DAY)
    assert [(n.kind, n.change) for n in found] == [("conflicts", "new"), ("lost", "reminder"), ("stale", "reminder")]


def test_an_alert_not_judged_now_is_not_resolved():
    """The audit chain before this process checked it: absent from what is counted, nothing said."""
    assert news(EVERYTHING, {}, {("audit_chain", ""): Told(1, T)}, T + DAY * 2, DAY) == []
