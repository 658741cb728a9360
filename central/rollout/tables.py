"""Readable tables (rich) for ``fleet rollout``: what a planner reads at a terminal."""

from __future__ import annotations

from rich.table import Table

from central.rollout.plan import Plan
from central.rollout.scenario import Rollout
from central.rollout.storage import StorageForecast
from fleet.console import console as make_console


def print_plan(plan: Plan, storage: StorageForecast, rollout: Rollout, show: str) -> None:
    console = make_console()
    verdict = "[green]feasible[/]" if plan.feasible else "[red]not feasible[/]"
    finish = f"week {plan.finish_week}, by {plan.finish_date}" if plan.finish_week else "never (see below)"
    console.print(f"[bold]{plan.scenario}[/]")
    if rollout.note:
        console.print(f"[dim]{rollout.note}[/]")
    console.print(
        f"{plan.officers_in_scope:,} officers in scope, {plan.cameras_needed:,} cameras needed "
        f"(spares included) of {plan.units:,} bought"
    )
    console.print(f"start {plan.start}, deadline {plan.deadline} (week {plan.deadline_week}): {verdict}; done {finish}")
    if plan.binding:
        console.print(f"binding constraint: [bold]{plan.binding.replace('_', ' ')}[/]")
    for remedy in plan.remedies:
        console.print(f"  {'would fix it: ' if remedy.change else ''}{remedy.text}")
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if show in ("boroughs", "all"):
        table = Table(title="Boroughs, in roll-out order")
        for column in (
            "borough",
            "policy",
            "officers",
            "cameras",
            "spares",
            "docks needed",
            "dock slots",
            "start wk",
            "done wk",
        ):
            table.add_column(column, justify="left" if column in ("borough", "policy") else "right")
        for b in plan.boroughs:
            short = f"[red]{b.docks_needed}[/]" if b.dock_shortfall else str(b.docks_needed)
            table.add_row(
                b.borough,
                b.policy,
                f"{b.officers:,}",
                f"{b.cameras:,}",
                str(b.spares),
                short,
                str(b.dock_slots),
                str(b.start_week or "-"),
                str(b.finish_week or "-"),
            )
        console.print(table)
    if show in ("weeks", "all"):
        table = Table(title="Week by week (cumulative)")
        for column in ("week", "starts", "delivered", "in stock", "officers equipped", "cameras out", "boroughs busy"):
            table.add_column(column, justify="right")
        for w in plan.weeks:
            table.add_row(
                str(w.week),
                str(w.starts),
                f"{w.delivered:,}",
                f"{w.in_stock:,}",
                f"{w.officers_equipped:,}",
                f"{w.cameras_out:,}",
                str(w.boroughs_in_progress),
            )
        console.print(table)
    if show in ("stations", "all"):
        table = Table(title="Dock slots per station")
        for column in ("station", "borough", "officers", "docks needed", "dock slots", "short by"):
            table.add_column(column, justify="left" if column in ("station", "borough") else "right")
        for s in plan.stations:
            table.add_row(
                s.station_id,
                s.borough,
                str(s.officers),
                str(s.docks_needed),
                str(s.dock_slots),
                f"[red]{s.shortfall}[/]" if s.shortfall else "-",
            )
        console.print(table)
    if show in ("storage", "all"):
        table = Table(title="Storage forecast (TB, low–high)")
        for column in ("month", "starts", "officers", "clips", "recorded", "stored"):
            table.add_column(column, justify="right")
        for m in storage.months:
            table.add_row(
                str(m.month),
                str(m.starts),
                f"{m.officers_equipped:,}",
                f"{m.clips:,}",
                f"{m.recorded_tb_low:g}–{m.recorded_tb_high:g}",
                f"{m.stored_tb_low:g}–{m.stored_tb_high:g}",
            )
        console.print(table)
    console.print(
        f"at full strength: {storage.steady_recorded_tb_per_month_low:g}–"
        f"{storage.steady_recorded_tb_per_month_high:g} TB recorded a month; kept longer grows by "
        f"{storage.kept_longer_tb_per_year_low:g}–{storage.kept_longer_tb_per_year_high:g} TB a year"
    )


def print_proposal(proposal, items: bool = False) -> None:
    console = make_console()
    console.print(
        f"[bold]proposal {proposal.id}[/] ({proposal.state}) by {proposal.created_by}: {proposal.description}"
    )
    table = Table()
    for column in ("borough", "policy", "cameras", "officers left without"):
        table.add_column(column, justify="left" if column in ("borough", "policy") else "right")
    for b in proposal.boroughs:
        table.add_row(
            b.borough,
            b.mode,
            f"{b.cameras:,}",
            f"[red]{b.officers_left_without:,}[/]" if b.officers_left_without else "-",
        )
    console.print(table)
    if items:
        table = Table(title="Items")
        for column in ("device", "borough", "policy", "officer", "station"):
            table.add_column(column)
        for i in proposal.items:
            table.add_row(i.device_serial, i.borough, i.mode, i.officer_id or "-", i.station_id or "-")
        console.print(table)


def progress_lines(rows, current_week: int) -> list:
    """The weeks worth a line: each week something moved, the first, the last and the current
    one; a run of weeks where nothing moved becomes one ``int`` (how many weeks it hides), so a
    plan that started years ago does not print hundreds of identical rows (``--json`` and
    ``--csv`` keep every week)."""
    lines: list = []
    hidden = 0
    previous = None
    for index, row in enumerate(rows):
        figures = (row.planned, row.delivered, row.issued, row.in_service)
        if figures != previous or index == 0 or index == len(rows) - 1 or row.week == current_week:
            if hidden:
                lines.append(hidden)
                hidden = 0
            lines.append(row)
        else:
            hidden += 1
        previous = figures
    return lines


def print_progress(progress, borough: str) -> None:
    console = make_console()
    table = Table(
        title=f"Progress vs plan: {'the force' if borough == 'all' else borough} (cumulative; now week "
        f"{progress.current_week})"
    )
    for column in ("week", "starts", "planned", "delivered", "issued", "in service"):
        table.add_column(column, justify="right")
    rows = [row for row in progress.rows if row.borough == borough]
    for line in progress_lines(rows, progress.current_week):
        if isinstance(line, int):
            table.add_row("…", f"{line:,} week{'s' if line != 1 else ''} unchanged", "", "", "", "", style="dim")
            continue
        style = "bold" if line.week == progress.current_week else None
        table.add_row(
            str(line.week),
            str(line.starts),
            f"{line.planned:,}",
            f"{line.delivered:,}",
            f"{line.issued:,}",
            f"{line.in_service:,}",
            style=style,
        )
    console.print(table)
