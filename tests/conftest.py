"""The whole suite's order: its longest tests first."""

LONGEST_FIRST = ("tests/simulation/", "tests/faults/", "tests/e2e/", "tests/browser/")
"""The real-process tests (simulated forces, fault scenarios, clusters, Chromium), longest
folder first: up to a minute a test."""


def pytest_collection_modifyitems(items):
    """xdist hands tests out in this order: a long one handed out last kept one worker busy
    while the other had nothing left, so they start first (the rest keep their order)."""

    def rank(item) -> int:
        return next((i for i, folder in enumerate(LONGEST_FIRST) if item.nodeid.startswith(folder)), len(LONGEST_FIRST))

    items.sort(key=rank)
