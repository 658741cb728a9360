import gc
import os
import threading

import pytest
import sqlite_utils

from fleet.errors import FleetError
from fleet.sqlite import Writer, migrate, open_database

STEPS = ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y TEXT);\nCREATE INDEX b_y ON b (y);"]


def test_migrations_apply_once_and_in_order(tmp_path):
    db = open_database(tmp_path / "x.db")
    assert migrate(db, STEPS) == 2
    assert migrate(db, STEPS) == 2
    assert set(sqlite_utils.Database(db).table_names()) == {"a", "b"}
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_concurrent_openers_never_apply_a_step_twice(tmp_path):
    # Many new files: the openers of one race to switch it to WAL, and a loser is told
    # "database is locked" at once (a few files in a hundred) unless it tries again.
    errors = []

    def open_and_migrate(path):
        try:
            migrate(open_database(path), STEPS)
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    for n in range(40):
        threads = [threading.Thread(target=open_and_migrate, args=(tmp_path / f"x{n}.db",)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_newer_schema_is_refused(tmp_path):
    db = open_database(tmp_path / "x.db")
    migrate(db, STEPS)
    with pytest.raises(FleetError, match="newer than this program"):
        migrate(db, STEPS[:1])


def test_failed_write_rolls_back(tmp_path):
    db = open_database(tmp_path / "x.db")
    migrate(db, STEPS)
    writer = Writer(db)
    with pytest.raises(RuntimeError), writer.write() as w:
        w.execute("INSERT INTO a (x) VALUES (1)")
        raise RuntimeError("boom")
    assert db.execute("SELECT COUNT(*) FROM a").fetchone()[0] == 0


def test_a_write_that_is_not_durable_commits_without_syncing_and_the_next_one_syncs_again(tmp_path):
    db = open_database(tmp_path / "x.db")
    migrate(db, STEPS)
    writer = Writer(db)
    seen: list[str] = []
    db.set_trace_callback(seen.append)
    with writer.write(durable=False) as w:
        w.execute("INSERT INTO a (x) VALUES (1)")
    assert seen[0] == "PRAGMA synchronous=NORMAL" and seen[-1] == "PRAGMA synchronous=FULL"
    with pytest.raises(RuntimeError), writer.write(durable=False) as w:
        raise RuntimeError("boom")
    db.set_trace_callback(None)
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again, after a failure too
    with writer.write() as w, writer.write(durable=False) as inner:  # nested: the outer transaction decides
        assert inner.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert db.execute("SELECT x FROM a").fetchall() == [(1,)]


def test_close_waits_for_a_read_in_progress_on_a_reader_connection(tmp_path):
    """Closing a connection under a running query crashes SQLite (a segfault seen at central's shutdown)."""
    db = open_database(tmp_path / "x.db")
    migrate(db, STEPS)
    writer = Writer(db, readers=tmp_path / "x.db")
    reading, finish, rows = threading.Event(), threading.Event(), []

    def read():
        with writer.read() as r:
            reading.set()
            finish.wait(10)
            rows.append(r.execute("SELECT COUNT(*) FROM a").fetchone()[0])

    reader = threading.Thread(target=read)
    reader.start()
    assert reading.wait(10)
    closer = threading.Thread(target=writer.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive(), "close did not wait for the read"
    finish.set()
    reader.join(10)
    closer.join(10)
    assert rows == [0] and not closer.is_alive()


def test_no_read_starts_once_close_has_begun(tmp_path):
    """The race behind the shutdown segfault: a read that began after close's wait, under its close."""
    db = open_database(tmp_path / "x.db")
    migrate(db, STEPS)
    writer = Writer(db, readers=tmp_path / "x.db")
    with writer.read() as r:  # this thread's reader connection exists
        r.execute("SELECT 1")
    writer.close()
    with pytest.raises(FleetError, match="closed"), writer.read():
        pass


def open_files(path) -> int:
    """How many descriptors this process has open on ``path`` (Linux's /proc)."""
    fds = "/proc/self/fd"
    return sum(1 for fd in os.listdir(fds) if os.path.realpath(os.path.join(fds, fd)) == os.path.realpath(path))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_a_threads_reader_connection_is_closed_when_the_thread_ends(tmp_path):
    """Worker pools retire idle threads (anyio's after 10 s) and start new ones, each reading on a
    connection of its own: kept after its thread ended, every burst of requests to central (an
    unauthenticated one with a session cookie does) left its connections open until it ran out
    of descriptors."""
    db = open_database(tmp_path / "x.db")
    migrate(db, STEPS)
    writer = Writer(db, readers=tmp_path / "x.db")
    before = open_files(tmp_path / "x.db")

    def read():
        with writer.read() as r:
            r.execute("SELECT COUNT(*) FROM a").fetchone()

    for _ in range(20):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join(10)
    gc.collect()
    assert open_files(tmp_path / "x.db") <= before + 1
    with writer.read() as r:  # this thread's own connection works, and close closes everything
        r.execute("SELECT 1")
    writer.close()
    assert open_files(tmp_path / "x.db") == 0


def test_a_grouped_durable_write_returns_only_after_a_wal_fsync_that_saw_its_commit(tmp_path, monkeypatch):
    """Group commit: several writers may share one fsync, but none returns before an fsync of
    the WAL begun once its row was committed (what a power cut could otherwise take back)."""
    path = tmp_path / "x.db"
    db = open_database(path)
    migrate(db, STEPS)
    writer = Writer(db, group_commit=True)
    watcher = open_database(path)
    real_fsync = os.fsync
    seen_at_fsync: list[set[int]] = []
    lock = threading.Lock()

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("x.db-wal"):
            with lock:
                seen_at_fsync.append({x for (x,) in watcher.execute("SELECT x FROM a")})
        real_fsync(fd)

    monkeypatch.setattr("fleet.sqlite.os.fsync", fsync)
    returned: list[tuple[int, int]] = []

    def write(n):
        with writer.write() as w:
            w.execute("INSERT INTO a (x) VALUES (?)", [n])
        with lock:
            returned.append((n, len(seen_at_fsync)))

    threads = [threading.Thread(target=lambda k=k: [write(k * 100 + i) for i in range(25)]) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(returned) == 150
    for n, fsyncs_by_then in returned:
        assert any(n in seen for seen in seen_at_fsync[:fsyncs_by_then]), n
    assert 1 <= len(seen_at_fsync) <= 150
    # NORMAL for good once writes began (two statements fewer in each): every durable write
    # waits for its WAL sync instead, as checked above.
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1
    watcher.close()
    writer.close()
