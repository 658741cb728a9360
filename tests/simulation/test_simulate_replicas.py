"""``fleet simulate --database postgresql --replicas 2`` at small scale: two central replicas on
PostgreSQL behind HAProxy, the leading one SIGKILLed in the month, an outage of both; nothing lost."""

import pytest

from tests.simulation.small_force import assert_nothing_lost, simulate

pytestmark = [pytest.mark.slow, pytest.mark.long]


def test_a_small_force_on_two_replicas_loses_nothing_when_the_leader_is_killed(tmp_path):
    summary, printed = simulate(
        tmp_path,
        *("--database", "postgresql", "--replicas", "2"),
        # The leader killed at hour 8: before the outage (at hour 18), with night-shift dockings around it.
        *("--kill-replica-at", "8"),
        timeout=280,
    )
    assert (summary["plan"]["database"], summary["plan"]["replicas"]) == ("postgresql", 2)
    assert_nothing_lost(summary)

    # The leader was killed and came back, another replica led meanwhile; the outage stopped both.
    kill = summary["replica_kill"]
    assert kill["replica"] in (1, 2) and kill["another_leading_after_s"] is not None
    assert kill["killed_at_wall_s"] < kill["back_at_wall_s"] < summary["outage"]["central_stopped_at_wall_s"]
    assert summary["outage"]["central_down_wall_s"] > 0 and summary["outage"]["drain_wall_s"] is not None
    assert "replica SIGKILLed" in printed and "OK: nothing lost" in printed
    assert not (tmp_path / "sim" / "postgres").exists()  # the database went with the other state
    assert (tmp_path / "sim" / "logs" / "central1.log").exists() and (
        tmp_path / "sim" / "logs" / "central2.log"
    ).exists()
