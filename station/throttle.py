"""A station-wide bandwidth cap shared by all concurrent uploads (a token bucket)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    """Blocks callers so that, together, they send at most ``bytes_per_s`` on average."""

    def __init__(
        self,
        bytes_per_s: float,
        *,
        burst_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if bytes_per_s <= 0:
            raise ValueError("bytes_per_s must be positive")
        self.rate = bytes_per_s
        self.capacity = bytes_per_s * burst_s
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def consume(self, n: int) -> None:
        """Take ``n`` bytes' worth of tokens, sleeping until the bucket allows it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            debt = -self._tokens
        if debt > 0:
            self._sleep(debt / self.rate)


def from_mbps(mbps: float) -> Throttle | None:
    """The configured cap (Mbit/s), or None when it is 0 (no cap)."""
    return Throttle(mbps * 1_000_000 / 8) if mbps > 0 else None
