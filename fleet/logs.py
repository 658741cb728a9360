"""Logging set up once per process: one line per event on stderr, quiet libraries."""

from __future__ import annotations

import logging

from fleet.errors import ConfigError

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"log_level {level!r} is not one of debug, info, warning, error")
    logging.basicConfig(level=numeric, format=FORMAT, force=True)
    for noisy in ("apscheduler", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
