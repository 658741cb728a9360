"""The fault suite: `make test` runs the quick seeds; `make faults SEEDS=200 CLUSTER_SEEDS=20` runs seeds 0..N-1.

Each seed's outcome is appended as one JSON line to ``$FAULTS_RESULTS`` when it is set, for
``python -m tests.faults.report`` to turn into the table in BENCHMARKS.md and docs/benchmarks-history.md.
"""

import json
import os

import pytest

from tests.e2e.conftest import make_cluster  # noqa: F401  (the same real-process clusters)

QUICK_SEEDS = (0, 1, 2)
"""Together they cover every fault kind (see tests/faults/scenario.py)."""
QUICK_CLUSTER_SEEDS = (0,)
"""Each cluster plan has every cluster fault (see tests/faults/cluster.py)."""


def pytest_addoption(parser):
    parser.addoption(
        "--fault-seeds",
        type=int,
        default=None,
        help=f"run fault scenarios for seeds 0..N-1 (default: the quick set {QUICK_SEEDS})",
    )
    parser.addoption(
        "--cluster-seeds",
        type=int,
        default=None,
        help=f"run cluster fault scenarios for seeds 0..N-1 (default: the quick set {QUICK_CLUSTER_SEEDS})",
    )


def pytest_generate_tests(metafunc):
    if "seed" in metafunc.fixturenames:
        count = metafunc.config.getoption("--fault-seeds")
        seeds = range(count) if count else QUICK_SEEDS
        metafunc.parametrize("seed", list(seeds), ids=[f"seed{s}" for s in seeds])
    if "cluster_seed" in metafunc.fixturenames:
        count = metafunc.config.getoption("--cluster-seeds")
        cluster_seeds = list(range(count)) if count else list(QUICK_CLUSTER_SEEDS)
        metafunc.parametrize("cluster_seed", cluster_seeds, ids=[f"seed{s}" for s in cluster_seeds])


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def record_outcome():
    def record(outcome) -> None:
        path = os.environ.get("FAULTS_RESULTS")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(outcome.as_dict()) + "\n")

    return record
