"""Which destination wants which alert: its boroughs (or the whole force) and its kinds."""

from __future__ import annotations

from central.alerts.conditions import FORCE
from fleet.config import AlertDestination


def wants(destination: AlertDestination, kind: str, borough: str) -> bool:
    """A force-wide destination (no ``boroughs``) takes every borough's alerts and the force's own;
    a borough's destination only that borough's."""
    if destination.kinds is not None and kind not in destination.kinds:
        return False
    if destination.boroughs is None:
        return True
    return borough != FORCE and borough in destination.boroughs
