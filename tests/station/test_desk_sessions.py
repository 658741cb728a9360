"""Browsers signed in to the desk page: idle ones end, ended ones stay ended, and only digests are kept."""

from datetime import timedelta

from station.web.sessions import MOST, DeskSessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lives_while_used_and_ends_when_idle_or_signed_out():
    clock = Clock()
    sessions = DeskSessions(idle=timedelta(hours=12), clock=clock)
    kept, idle, ended = sessions.start(), sessions.start(), sessions.start()
    clock.now += 11 * 3600
    assert sessions.valid(kept)  # used within the idle time: kept alive from now
    sessions.end(ended)
    clock.now += 2 * 3600
    assert sessions.valid(kept) and not sessions.valid(idle) and not sessions.valid(ended)
    assert not sessions.valid("") and not sessions.valid(None) and not sessions.valid("made-up")


def test_only_digests_are_kept_and_the_oldest_goes_first():
    sessions = DeskSessions()
    first = sessions.start()
    assert first.encode() not in b"".join(sessions._last_used)
    latest = [sessions.start() for _ in range(MOST)]
    assert not sessions.valid(first) and all(sessions.valid(s) for s in latest)
