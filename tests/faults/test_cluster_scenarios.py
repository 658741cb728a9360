"""Seeded cluster fault scenarios: replicas SIGKILLed mid-upload, mid-event-batch, mid-long-poll
and while leading, PostgreSQL and the balancer restarted under load; every clip and every
dock's telemetry is at central exactly once and intact, every event applied once, the audit
chain intact."""

from tests.faults.cluster import CLUSTER_MENU, ClusterRunner, S3ClusterRunner, cluster_plan


def test_cluster_scenario_loses_duplicates_and_corrupts_nothing(cluster_seed, tmp_path, record_outcome):
    outcome = ClusterRunner(cluster_plan(cluster_seed), tmp_path / "cluster").run()
    record_outcome(outcome)
    print(outcome.as_dict())
    assert outcome.verdict.valid, "\n".join(outcome.verdict.problems)
    assert outcome.verdict.clips["recovered"] > 0, "no fault hit a clip in flight: the scenario tested nothing"


def test_cluster_scenario_with_clips_staged_in_s3_loses_duplicates_and_corrupts_nothing(
    cluster_seed, tmp_path, record_outcome
):
    """The same faults with the bytes in a bucket: a replica killed mid-upload leaves its upload
    staged there (a tail, parts), and the other replica resumes it from what was acknowledged."""
    outcome = S3ClusterRunner(cluster_plan(cluster_seed), tmp_path / "cluster").run()
    record_outcome(outcome)
    print(outcome.as_dict())
    assert outcome.verdict.valid, "\n".join(outcome.verdict.problems)
    assert outcome.verdict.clips["recovered"] > 0, "no fault hit a clip in flight: the scenario tested nothing"


def test_cluster_plans_are_reproducible_and_each_has_every_cluster_fault():
    assert cluster_plan(5) == cluster_plan(5)
    assert cluster_plan(5) != cluster_plan(6)
    for seed in range(10):
        assert sorted(cluster_plan(seed).kinds) == sorted(CLUSTER_MENU)
