"""The checker's judgement of central's bookkeeping (pure: no processes)."""

from collections import Counter

from tests.faults.checker import CreatedDock, History, Verdict, check_effects


def history() -> History:
    h = History()
    h.created_dock(CreatedDock("camden", "f1", "BWV-1", 50.0))
    h.created_dock(CreatedDock("barnet", "f2", "BWV-2", 60.0))
    return h


def judged(**changes) -> Verdict:
    verdict = Verdict()
    effects = {"behind": {}, "readings": Counter({"BWV-1": 1, "BWV-2": 1}), "chain": (True, "")} | changes
    check_effects(verdict, history(), **effects)
    return verdict


def test_bookkeeping_that_adds_up_is_valid():
    verdict = judged()
    assert verdict.valid and not verdict.violations


def test_events_acknowledged_and_never_applied_are_a_violation():
    verdict = judged(behind={"camden": (4, 7)})
    assert not verdict.valid
    assert verdict.violations == ["camden: events acknowledged up to 7 but applied only up to 4"]


def test_a_docking_applied_twice_or_never_is_a_violation():
    twice = judged(readings=Counter({"BWV-1": 2, "BWV-2": 1}))
    never = judged(readings=Counter({"BWV-1": 1}))
    assert not twice.valid and "more than once" in twice.violations[0]
    assert not never.valid and "never" in never.violations[0]


def test_a_broken_audit_chain_is_a_violation():
    verdict = judged(chain=(False, "at record 12: its hash does not match"))
    assert not verdict.valid and verdict.violations == ["audit chain broken: at record 12: its hash does not match"]
    assert verdict.as_dict()["violations"] == 1


def test_the_line_a_station_logs_when_central_takes_back_an_acknowledgement_is_the_one_looked_for():
    """``Runner.final_check`` reads the stations' logs for it: rewording it must not blind the suite."""
    import inspect
    import re

    from station.sync import events
    from tests.faults.scenario import FORGOTTEN_ACK

    source = re.sub(r'"\s*\n\s*"', "", inspect.getsource(events))  # adjacent literals joined
    assert FORGOTTEN_ACK in source


def test_a_retry_meeting_a_blob_stored_without_its_row_is_not_read_as_a_forgotten_acknowledgement():
    """A replica killed between storing a whole clip and committing it acknowledged nothing; the
    station's retry may be told 423 until its report is applied, and that line names a restore too."""
    import inspect

    from central.uploads import receiver
    from tests.faults.scenario import FORGOTTEN_ACK

    source = inspect.getsource(receiver)
    assert "restored from a backup?" in source
    assert FORGOTTEN_ACK not in source
