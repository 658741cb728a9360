"""The one retry policy for station→central traffic, built with tenacity.

Two layers use it. Inside one transfer, ``policy.retrying()`` retries quickly (a reset
connection, a chunk whose checksum failed) and resumes from central's offset. Between
transfers, ``policy.backoff_delay()`` says when a clip may be tried again; the station
persists that time, so a restart keeps the schedule and the attempt count.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import tenacity
from tenacity import RetryCallState, wait_random_exponential
from tenacity.wait import wait_base

from fleet.errors import PermanentTransferError, TransferError, TransientTransferError


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class wait_retry_after(wait_base):
    """Wait what central asked for in ``Retry-After``; otherwise the fallback's full jitter."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        asked = getattr(exc, "retry_after", None)
        if asked is not None:
            return float(asked)
        return self.fallback(retry_state)


class stop_if_asked_to_wait_over(tenacity.stop.stop_base):
    """Stop when the failure carries a ``Retry-After`` longer than ``limit_s``."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        return (getattr(exc, "retry_after", None) or 0.0) > self.limit_s


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: network failures, the statuses central uses for 'later', and local I/O errors.

    An operating-system error here (a disk hiccup, a signal-interrupted call) says nothing
    about the clip, so it is retried with backoff rather than failing the clip for good;
    what truly cannot succeed (a missing local copy) is raised as PermanentTransferError.
    """
    if isinstance(exc, TransientTransferError):
        return True
    if isinstance(exc, PermanentTransferError):
        return False
    return isinstance(exc, (httpx.TransportError, TimeoutError, OSError))


def as_transfer_error(exc: BaseException) -> TransferError:
    """Normalise any failure of a transfer into the TransferError tree, keeping its message."""
    if isinstance(exc, TransferError):
        return exc
    if is_transient(exc):
        return TransientTransferError(f"{type(exc).__name__}: {exc}".rstrip(": "))
    return PermanentTransferError(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class RetryPolicy:
    """How station→central requests are retried. Tests build one with zero waits."""

    initial_s: float = 1.0
    max_s: float = 300.0
    quick_attempts: int = 3
    quick_max_s: float = 2.0
    quick_wait: wait_base = field(default_factory=lambda: wait_random_exponential(multiplier=0.25, max=2.0))
    sleep: Callable[[float], None] = tenacity.nap.sleep

    @property
    def backoff_wait(self) -> wait_base:
        return wait_retry_after(wait_random_exponential(multiplier=self.initial_s, max=self.max_s))

    def retrying(self) -> tenacity.Retrying:
        """Quick in-transfer retries of transient failures; the last error is re-raised.

        When central asks for a longer wait than a quick retry may take, the transfer stops
        here and the persisted backoff honours the wait: a station never sleeps a minute
        inside a request loop, where a shutdown could not interrupt it.
        """
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.quick_attempts) | stop_if_asked_to_wait_over(self.quick_max_s),
            wait=wait_retry_after(self.quick_wait),
            retry=tenacity.retry_if_exception(is_transient),
            sleep=self.sleep,
            reraise=True,
        )

    def backoff_delay(self, attempt_number: int, exc: BaseException) -> float:
        """Seconds before persisted attempt ``attempt_number + 1``: full jitter, Retry-After honoured."""
        state = RetryCallState(retry_object=self.retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = max(1, attempt_number)
        state.set_exception((type(exc), exc, exc.__traceback__))
        return self.backoff_wait(state)
