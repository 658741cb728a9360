"""The station's upload window: the hours when routine clips may use the borough's link.

Evidential and held clips go up at any time; the rest wait for the window (say 19:00–07:00,
when the link is quiet). The window is in the station's own time zone, so it follows
the clocks' changes in spring and autumn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from fleet.config import StationSettings


@dataclass(frozen=True)
class UploadWindow:
    opens: time
    closes: time
    zone: ZoneInfo

    @classmethod
    def of(cls, settings: StationSettings) -> UploadWindow | None:
        """The configured window (checked when the config loaded), or None: any time."""
        if settings.upload_window is None:
            return None
        opens, _, closes = settings.upload_window.partition("-")
        return cls(time.fromisoformat(opens), time.fromisoformat(closes), ZoneInfo(settings.timezone))

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(self.zone).time()
        if self.opens < self.closes:
            return self.opens <= local < self.closes
        return local >= self.opens or local < self.closes  # across midnight

    def __str__(self) -> str:
        return f"{self.opens:%H:%M}-{self.closes:%H:%M} {self.zone.key}"
