"""A job's failure is kept in ``job_runs`` for every replica and every backup: never with a password in it."""

from central.core import job_runs
from central.core.database import without_passwords
from tests.central.conftest import central_store


def test_a_failure_is_kept_without_the_password_a_driver_quoted(tmp_path):
    store = central_store(tmp_path / "central")
    try:
        job_runs.scheduled(store.writer, ["retention"])
        failure = RuntimeError("connection to postgresql://central:s3cret-pw@db:5432/central failed; password=hunter2")
        job_runs.ran(store.writer, "retention", failure, "replica-1")
        with store.writer.read() as db:
            [(error,)] = db.execute("SELECT last_error FROM job_runs WHERE task = 'retention'").fetchall()
    finally:
        store.close()
    assert "s3cret-pw" not in error and "hunter2" not in error
    assert error.startswith("RuntimeError: connection to postgresql://central:***@db:5432/central failed")


def test_what_is_taken_out_and_what_stays():
    assert without_passwords("https://hooks.example/x?token=abc&y=1") == "https://hooks.example/x?token=***&y=1"
    assert without_passwords("host=db password='a b' user=c") == "host=db password=*** user=c"
    assert without_passwords("[Errno 111] Connection refused") == "[Errno 111] Connection refused"
    assert without_passwords("ftp://anon@host/x") == "ftp://anon@host/x"
