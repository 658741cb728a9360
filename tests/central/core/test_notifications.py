"""A commit on one replica reaches the others: PostgreSQL's LISTEN/NOTIFY."""

import queue

import psycopg
import pytest

from central.core.notifications import CHANGES, EVENTS, Listener, notify

pytestmark = [pytest.mark.slow, pytest.mark.postgresql_only]


def listening(store):
    heard: queue.Queue = queue.Queue()
    listener = Listener(store.writer)
    listener.subscribe(CHANGES, lambda payload: heard.put((CHANGES, payload)))
    listener.subscribe(EVENTS, lambda payload: heard.put((EVENTS, payload)))
    listener.start()
    assert listener.listening.wait(30), "the listener never listened"
    return listener, heard


def test_a_commit_on_one_replica_is_heard_on_the_other_and_a_rollback_is_not(two_replicas):
    listener, heard = listening(two_replicas[1])
    try:
        with pytest.raises(RuntimeError), two_replicas[0].writer.write() as db:
            notify(db, CHANGES, "Camden")
            raise RuntimeError("rolled back")
        with two_replicas[0].writer.write() as db:
            notify(db, CHANGES, "Barnet")
            notify(db, CHANGES, "Barnet")  # folded into one
            notify(db, EVENTS, "camden")
        # Delivered in commit order: had the rolled-back one been sent, it would come first.
        assert heard.get(timeout=30) == (CHANGES, "Barnet")
        assert heard.get(timeout=30) == (EVENTS, "camden")
        with two_replicas[0].writer.write() as db:
            notify(db, EVENTS, "end")
        assert heard.get(timeout=30) == (EVENTS, "end")  # nothing else came between
    finally:
        listener.stop()


def test_a_listener_that_loses_its_connection_says_so_and_listens_again(two_replicas):
    listener, heard = listening(two_replicas[1])
    try:
        with psycopg.connect(two_replicas[1].url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'fleet-central-listen'"
            )
        assert heard.get(timeout=30) == (CHANGES, None)  # look for yourselves: something may be missed
        assert heard.get(timeout=30) == (EVENTS, None)
        assert listener.listening.wait(30)
        with two_replicas[0].writer.write() as db:
            notify(db, CHANGES, "Camden")
        assert heard.get(timeout=30) == (CHANGES, "Camden")
    finally:
        listener.stop()
