from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from tenacity.wait import wait_none

from fleet.errors import PermanentTransferError, TransientTransferError, transfer_error_for_status
from fleet.retry import RetryPolicy, as_transfer_error, is_transient, parse_retry_after


def test_retry_after_seconds_and_dates():
    assert parse_retry_after("7") == 7.0
    soon = datetime.now(UTC) + timedelta(seconds=60)
    waited = parse_retry_after(format_datetime(soon, usegmt=True))
    assert waited is not None and 50 < waited <= 60
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "status, transient",
    [
        (503, True),
        (429, True),
        (423, True),
        (460, True),
        (507, True),
        (400, False),
        (403, False),
        (409, False),
        (413, False),
    ],
)
def test_status_classification(status, transient):
    assert is_transient(transfer_error_for_status(status, "x")) is transient


def test_network_errors_are_transient_and_others_permanent():
    assert is_transient(httpx.ConnectError("refused"))
    assert is_transient(httpx.ReadTimeout("slow"))
    assert isinstance(as_transfer_error(httpx.RemoteProtocolError("reset")), TransientTransferError)
    assert isinstance(as_transfer_error(ValueError("bug")), PermanentTransferError)
    assert isinstance(as_transfer_error(OSError(22, "Invalid argument")), TransientTransferError)  # local I/O


def test_backoff_is_full_jitter_capped_and_honours_retry_after():
    policy = RetryPolicy(initial_s=1.0, max_s=30.0)
    delays = [policy.backoff_delay(n, TransientTransferError("x")) for n in range(1, 40) for _ in range(5)]
    assert all(0 <= d <= 30.0 for d in delays)
    assert max(delays) > 10  # it does grow
    assert policy.backoff_delay(1, TransientTransferError("x", retry_after=120.0)) == 120.0


def test_quick_retries_stop_on_permanent_and_give_up_after_n():
    calls = []
    policy = RetryPolicy(quick_attempts=3, quick_wait=wait_none(), sleep=lambda s: None)

    def flaky():
        calls.append(1)
        raise TransientTransferError("down")

    with pytest.raises(TransientTransferError):
        for attempt in policy.retrying():
            with attempt:
                flaky()
    assert len(calls) == 3

    calls.clear()
    with pytest.raises(PermanentTransferError):
        for attempt in policy.retrying():
            with attempt:
                calls.append(1)
                raise PermanentTransferError("no")
    assert len(calls) == 1


def test_a_long_retry_after_ends_the_quick_retries_and_is_left_to_the_persisted_backoff():
    slept: list[float] = []
    policy = RetryPolicy(quick_attempts=5, quick_max_s=2.0, sleep=slept.append)

    def retry_all(asked):
        calls = []
        with pytest.raises(TransientTransferError):
            for attempt in policy.retrying():
                with attempt:
                    calls.append(1)
                    raise TransientTransferError("507 full", retry_after=asked)
        return len(calls)

    assert retry_all(60.0) == 1 and slept == []  # never sleeps a minute inside the transfer
    assert policy.backoff_delay(1, TransientTransferError("507 full", retry_after=60.0)) == 60.0
    assert retry_all(1.0) == 5 and slept == [1.0] * 4  # short waits are still honoured in place
