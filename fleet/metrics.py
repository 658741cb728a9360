"""What central's and a station's ``/metrics`` share: one registry per process part, the text
format, the data directory's disk, and the rule that a scrape never fails for a figure.

Each central app and each station node has a ``CollectorRegistry`` of its own (never
prometheus-client's global one): a host running several stations, or a test running several
centrals, scrapes each apart. Counters live in memory and count what this process did;
gauges that describe the database are read at scrape time by a collector, so every replica
answers the same figures for them (docs/metrics.md).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4"
"""The text exposition format every Prometheus reads (the server adds ``charset=utf-8``)."""

# A ``*_created`` series beside every counter doubles what each scrape stores, for a start time
# Prometheus reads from the counter's resets anyway.
disable_created_metrics()  # type: ignore[no-untyped-call]


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def disk_gauges(prefix: str, path: str | Path) -> list[Metric]:
    """Free and total bytes of the filesystem holding ``path`` (a data directory)."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return []
    free = GaugeMetricFamily(f"{prefix}_data_dir_free_bytes", "Bytes free on the data directory's filesystem")
    free.add_metric([], usage.free)
    size = GaugeMetricFamily(f"{prefix}_data_dir_size_bytes", "Size of the data directory's filesystem in bytes")
    size.add_metric([], usage.total)
    return [free, size]


def guarded(prefix: str, read: Callable[[], Iterable[Metric]]) -> list[Metric]:
    """``read()``'s metrics, and ``<prefix>_metrics_database_up`` 1; a database that does not answer
    gives 0 and nothing else from it, never a failed scrape (a scrape that fails says "down",
    which is not what happened)."""
    up = GaugeMetricFamily(f"{prefix}_metrics_database_up", "1 if the database answered this scrape's queries")
    try:
        found = list(read())
    except Exception as exc:  # noqa: BLE001 - any database trouble: reported as the gauge, and logged
        log.warning("metrics: the database did not answer (%s)", exc)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    return [*found, up]


def gauge(name: str, documentation: str, labels: Iterable[str] = (), rows: Iterable[tuple[Any, ...]] = ()) -> Metric:
    """A gauge family from ``(label values..., value)`` rows."""
    labels = list(labels)
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for row in rows:
        family.add_metric([str(v) for v in row[: len(labels)]], float(row[len(labels)]))
    return family
