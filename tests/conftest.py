"""The whole suite's order: its longest tests first."""

import gc

import pytest

LONGEST_FIRST = ("tests/simulation/", "tests/faults/", "tests/e2e/", "tests/browser/")
"""The real-process tests (simulated forces, fault scenarios, clusters, Chromium), longest
folder first: up to a minute a test."""


SHARED_PER_MODULE = ("tests/browser/",)
"""Folders whose modules share one costly fixture (a cluster and a browser) among their tests:
each module's tests go to one worker, which starts it once, not once a worker that was handed
some of them."""


LONG_TWINS = (
    "tests/e2e/test_backup.py::test_central_restored_to_an_earlier_point_and_the_station_carries_on[postgresql]",
    "tests/central/evidence/test_retention.py::test_a_simulated_year[postgresql]",
    "tests/central/events/test_conflict_order.py::test_conflicts_and_attributions_do_not_depend_on_arrival_order[postgresql]",
    "tests/faults/test_cluster_scenarios.py::test_cluster_scenario_with_clips_staged_in_s3",
    "tests/faults/test_scenarios.py::test_scenario_loses_duplicates_and_corrupts_nothing[seed1]",
    "tests/faults/test_scenarios.py::test_scenario_loses_duplicates_and_corrupts_nothing[seed2]",
)
"""Runs of a minute or more whose twin on the other engine or store, or whose first seed, ``make
test`` keeps: ``make test-long`` runs these (the suite on two cores is held under 15 minutes)."""


def pytest_itemcollected(item):
    """``LONG_TWINS`` marked ``long``."""
    if item.nodeid.startswith(LONG_TWINS):
        item.add_marker(pytest.mark.long)


def pytest_xdist_make_scheduler(config, log):
    """Tests handed out one at a time as workers free up (the longest first, as sorted below),
    but a module of ``SHARED_PER_MODULE`` whole to one worker. (xdist's ``--dist loadgroup``
    would say so with marks, but under pytest 9.2 its renaming of node ids has no effect.)"""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class OneWorkerPerSharedModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid.split("::", 1)[0] if nodeid.startswith(SHARED_PER_MODULE) else nodeid

    return OneWorkerPerSharedModule(config, log)


def pytest_collection_modifyitems(items):
    """xdist hands tests out in this order: a long one handed out last kept one worker busy
    while the other had nothing left, so they start first (the rest keep their order)."""

    def rank(item) -> int:
        return next((i for i, folder in enumerate(LONGEST_FIRST) if item.nodeid.startswith(folder)), len(LONGEST_FIRST))

    items.sort(key=rank)


def pytest_collection_finish(session):
    """Everything alive once the tests are collected (the modules, the items, their marks) lives
    to the end: frozen out of the collector's sight. On this kind of host a full collection costs
    about a microsecond an object, and central's app alone is 130,000 of them: every few apps built,
    one or two seconds went to re-reading what can never be garbage."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
