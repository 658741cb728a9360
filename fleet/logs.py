"""Logging set up once per process: one line per event on stderr, quiet libraries."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fleet.errors import ConfigError

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"log_level {level!r} is not one of debug, info, warning, error")
    logging.basicConfig(level=numeric, format=FORMAT, force=True)
    for noisy in ("apscheduler", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


class Repeats:
    """Says a recurring condition once, then at most once per ``every_s`` while it lasts.

    A condition that persists (a full disk, a database that cannot be written) is met at every
    scan; one line per key and condition keeps the log readable and the disk it fills free."""

    def __init__(self, logger: logging.Logger, every_s: float = 60.0, clock: Callable[[], float] | None = None) -> None:
        import time

        self.logger = logger
        self.every_s = every_s
        self._clock = clock or time.monotonic
        self._said: dict[str, tuple[str, float]] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = self._clock()
        text = message % args if args else message
        said = self._said.get(key)
        if said is not None and said[0] == text and now - said[1] < self.every_s:
            return
        self._said[key] = (text, now)
        self.logger.warning("%s", text)

    def clear(self, key: str) -> None:
        self._said.pop(key, None)
