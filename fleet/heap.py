"""A long-running process's heap once it has started (central's server)."""

from __future__ import annotations

import gc


def settle() -> None:
    """Keep what start-up made out of the cyclic garbage collector's sight (``gc.freeze``).

    The modules, the app and its routes, the schemas and the caches start-up filled live as long
    as the process, yet every full collection scanned them all again; a server makes thousands
    of objects a request, some long-lived enough (a batch of events applied) to bring full
    collections often. Measured on central, events over HTTP on PostgreSQL: 14 % less of
    central's CPU an event, acknowledged 1.15× (``docs/benchmarks-history.md``). Start-up's own
    garbage is collected first, not kept for ever. Objects made later are collected as before."""
    gc.collect()
    gc.freeze()
