"""Seeded fault scenarios: after any mix of crashes, network faults, full disks, skewed clocks
and overload, every clip and every dock's telemetry is at central exactly once and intact."""

from tests.faults.conftest import QUICK_SEEDS
from tests.faults.scenario import MENU, Plan, Runner


def test_scenario_loses_duplicates_and_corrupts_nothing(seed, tmp_path, record_outcome):
    outcome = Runner(Plan.from_seed(seed), tmp_path / "cluster").run()
    record_outcome(outcome)
    print(outcome.as_dict())
    assert outcome.verdict.valid, "\n".join(outcome.verdict.problems)
    assert not outcome.skew_unseen, "a station meant to run with a wrong clock did not"
    assert outcome.verdict.clips["recovered"] > 0, "no fault hit a clip in flight: the scenario tested nothing"


def test_plans_are_reproducible_and_the_quick_seeds_cover_every_fault():
    assert Plan.from_seed(17) == Plan.from_seed(17)
    assert Plan.from_seed(17) != Plan.from_seed(18)
    covered = {kind for seed in QUICK_SEEDS for kind in Plan.from_seed(seed).kinds}
    assert covered == set(MENU)
