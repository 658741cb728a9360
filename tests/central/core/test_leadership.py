"""One central process at a time leads the jobs that run once; another takes over when it goes."""

import time

import psycopg
import pytest

from central.core.leadership import LEAD_LOCK, Leadership, when_leading


def poll(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_exactly_one_of_two_replicas_leads_and_the_other_takes_over_when_it_stops(two_replicas):
    first = Leadership(two_replicas[0].writer, two_replicas[0].data_dir, check_s=0.05).start()
    second = Leadership(two_replicas[1].writer, two_replicas[1].data_dir, check_s=0.05).start()
    try:
        assert first.leading and not second.leading  # the first to try takes it at once
        time.sleep(0.2)  # several tries of the second: the lead stays where it is
        assert first.leading and not second.leading
        first.stop()
        assert poll(lambda: second.leading), "the second replica never took the lead"
        assert not first.leading
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
@pytest.mark.postgresql_only  # a PostgreSQL session; on SQLite the lead is the process's file lock
def test_a_leader_whose_session_is_cut_loses_the_lead_and_one_replica_takes_it(two_replicas):
    first = Leadership(two_replicas[0].writer, two_replicas[0].data_dir, check_s=0.05)
    second = Leadership(two_replicas[1].writer, two_replicas[1].data_dir, check_s=0.05)
    gains = []
    first.on_gain(lambda: gains.append("first"))
    second.on_gain(lambda: gains.append("second"))
    first.start()
    second.start()
    try:
        assert gains == ["first"]
        with psycopg.connect(two_replicas[0].url, autocommit=True) as admin:
            cut = admin.execute(  # the session holding the lead, as an operator would find it
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = %s AND objid = %s",
                [LEAD_LOCK >> 32, LEAD_LOCK & 0xFFFFFFFF],
            ).fetchall()
        assert cut == [(True,)]
        assert poll(lambda: len(gains) == 2), "nobody took the lead again"
        assert first.leading != second.leading  # one leader, whichever tried first
    finally:
        first.stop()
        second.stop()


def test_a_job_runs_only_where_its_process_leads(two_replicas):
    runs = []
    first = Leadership(two_replicas[0].writer, two_replicas[0].data_dir).start()
    second = Leadership(two_replicas[1].writer, two_replicas[1].data_dir).start()
    try:
        for leadership in (first, second):
            when_leading(leadership, lambda who=leadership: runs.append(who))()
        assert runs == [first]
    finally:
        first.stop()
        second.stop()


def test_health_says_whether_this_process_leads(client):
    assert client.get("/healthz").json()["leading"] is True
