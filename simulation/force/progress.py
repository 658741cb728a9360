"""Progress while the month runs (it takes minutes): simulated days, dockings, backlog, central's state.

A bar on a terminal; elsewhere (a log, CI) one line every ``LINE_EVERY_S`` seconds.
"""

from __future__ import annotations

import time
from datetime import datetime

from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

LINE_EVERY_S = 15.0


class Progress:
    def __init__(self, console: Console, plan) -> None:
        self.plan = plan
        self.console = console
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[day]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
            disable=not console.is_terminal,
        )
        self._task = self._bar.add_task("month", total=plan.days * 24, day="", status="starting central and stations")
        self._started = time.monotonic()
        self._next_line = 0.0

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def update(self, simulation, now: datetime) -> None:
        hours = simulation.sim_hours(now)
        last = simulation.samples[-1] if simulation.samples else None
        outage = simulation.outage
        central = "central DOWN" if outage.stop_wall is not None and outage.back_wall is None else "central up"
        status = f"{len(simulation.records):,} dockings; {central}"
        if last:
            status += (
                f"; {last.verified_clips:,} clips verified; queued at stations: {last.pending_clips:,} clips, "
                f"{last.pending_events:,} events"
            )
        phase = "month" if hours < self.plan.days * 24 else "draining"
        day = f"day {min(int(hours // 24) + 1, self.plan.days)}/{self.plan.days}"
        self._bar.update(
            self._task, completed=min(hours, self.plan.days * 24), description=phase, day=day, status=status
        )
        if not self.console.is_terminal and time.monotonic() >= self._next_line:
            self._next_line = time.monotonic() + LINE_EVERY_S
            self.console.print(f"{time.monotonic() - self._started:5.0f} s  {phase}, {day}: {status}", soft_wrap=True)
