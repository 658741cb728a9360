"""Logging set up once per process: one line per event on stderr, quiet libraries.

``log_format = "json"`` (or ``--log-format json``) writes one JSON object a line for a force's
log platform: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and ``fields``
(what the call passed as ``extra=``) and ``exception`` when there are any (docs/deploy.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fleet.errors import ConfigError

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
FORMATS = ("text", "json")
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a value JSON cannot hold is written as its ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES and not k.startswith("_")}
        if fields:
            entry["fields"] = fields
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", format: str = "text") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"log_level {level!r} is not one of debug, info, warning, error")
    if format not in FORMATS:
        raise ConfigError(f"log_format {format!r} is not one of {', '.join(FORMATS)}")
    logging.basicConfig(level=numeric, format=FORMAT, force=True)
    if format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
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
