"""``fleet central`` commands straight on central's database: a database kept busy is one line (``fleet.cli``)."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager

import pytest

from central.core import services
from fleet.cli import main
from tests.central.conftest import config_file

pytestmark = pytest.mark.sqlite_only  # SQLite's own write lock


def _failing(message: str):
    @contextmanager
    def open_services(settings):
        raise sqlite3.OperationalError(message)
        yield

    return open_services


def test_a_database_another_process_keeps_locked_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    """SQLite's write lock held past the command's wait (central's own long transaction, a backup)."""
    monkeypatch.setattr(services, "open_services", _failing("database is locked"))
    assert main(["central", "users", "--config", config_file(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fleet: error: the database is busy (database is locked): nothing was changed")
    assert "Traceback" not in err


def test_another_database_error_is_not_taken_for_a_busy_one(tmp_path, monkeypatch):
    monkeypatch.setattr(services, "open_services", _failing("no such table: users"))
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        main(["central", "users", "--config", config_file(tmp_path)])
