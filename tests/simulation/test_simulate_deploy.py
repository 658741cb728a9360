"""``fleet simulate --deploy`` at small scale: a signed release deployed in phases to every camera of
the small force during the month (an outage in it), nothing lost; and a failure rate over the
threshold, which pauses the deployment by itself before its next phase."""

import pytest

from tests.simulation.small_force import assert_nothing_lost, simulate

pytestmark = [pytest.mark.slow, pytest.mark.long]

EVERY_DAY = ("--shifts-per-week", "7")
"""Every camera docks every day: the release reaches it at one dock and its report at the next."""


def test_a_release_reaches_the_force_phase_after_phase_and_nothing_is_lost(tmp_path):
    summary, printed = simulate(
        tmp_path,
        *("--days", "5", *EVERY_DAY),
        *("--deploy", "--deploy-phases", "10,100", "--deploy-failure-rate", "0"),
        timeout=360,
    )
    assert_nothing_lost(summary)
    deploy = summary["deploy"]
    assert deploy["cameras"] == 300 and deploy["version"] == "1.5.0-sim"
    first, second = deploy["phases"]
    assert (first["cameras"], second["cameras"]) == (30, 270)
    # The canary phase's results (90 % of it at least) opened the next: the deployment moved on by
    # itself. The canary itself may stay open for a straggler that has not docked again.
    assert first["state"] in ("open", "done") and first["updated"] >= 27
    assert second["state"] in ("open", "done") and second["updated"] > 0
    assert deploy["state"] in ("running", "completed") and deploy["figures"]["failed"] == 0

    # The cameras' own account, day by day: never going back, past the canary by the end.
    days = deploy["by_day"]
    assert [d["day"] for d in days] == [1, 2, 3, 4, 5]
    updated = [d["updated"] for d in days]
    assert updated == sorted(updated) and updated[-1] > 30
    assert days[-1]["updated_pct"] == round(100 * updated[-1] / 300, 1)
    assert all(d["failed_attempts"] == 0 for d in days)
    assert any(d["central"] is not None for d in days)  # central's view, sampled through the month
    assert summary["latency_s"]["clip_dock_to_verified"]["p95"] is not None
    assert "updated by day" in printed and "deployment phases" in printed


def test_failures_over_the_threshold_pause_the_deployment_before_its_next_phase(tmp_path):
    summary, printed = simulate(
        tmp_path,
        *("--days", "3", *EVERY_DAY),
        *("--deploy", "--deploy-phases", "10,100", "--deploy-failure-rate", "0.5"),
        *("--deploy-max-failure-pct", "5", "--deploy-min-results", "3"),
        timeout=300,
    )
    assert_nothing_lost(summary)  # the updates' failures cost no clip
    deploy = summary["deploy"]
    assert deploy["state"] == "paused" and "by itself" in deploy["decision"], deploy["decision"]
    first, second = deploy["phases"]
    assert first["failed"] >= 1 and second["state"] == "waiting" and second["updated"] == 0
    assert deploy["by_day"][-1]["failed_attempts"] >= 1
    assert "paused" in printed
