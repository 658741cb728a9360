"""Dashboard: the roll-out: plan against actual (burn-up), the verdict, proposals to commit."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from central.access.auth import Caller, user_with
from central.access.scope import FORCE_WIDE
from central.core.providers import Injected
from central.rollout.service import PLAN_FIGURES, RolloutService
from central.web import charts
from central.web.dashboard import FORM, DashboardPages, allowed, back, page
from fleet.clock import utc_now
from fleet.errors import BadRequest

WEEK = timedelta(days=7)


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _plan_window(start: date, weeks: int, now: datetime) -> tuple[datetime, datetime]:
    """What the burn-up shows: from the plan's first week to the end of its last, or to now when
    that is later (a plan under way or overrun); a plan of ten weeks is not drawn as a sliver
    of the years since the data began."""
    return _at(start), max(_at(start) + WEEK * max(weeks, 1), now)


def _cumulative(
    start: date, weekly: list[tuple[date, int]], now: datetime | None = None
) -> list[tuple[datetime, float]]:
    """Running totals as a line from nothing at the plan's start, each week's total at its end
    (the week under way: at ``now``)."""
    if not weekly:
        return []
    points: list[tuple[datetime, float]] = [(_at(start), 0)]
    for starts, total in weekly:
        end = _at(starts) + WEEK
        points.append((max(_at(start), min(end, now)) if now is not None else end, total))
    return points


class RolloutPages(DashboardPages):
    path = "/rollout"

    @get(
        "/",
        summary="Roll-out: plan against actual",
        guards=[user_with("viewer")],
        scope=PLAN_FIGURES,
        sync_to_thread=True,
    )
    def rollout_page(
        self,
        request: Request,
        principal: Caller,
        rollout: Injected[RolloutService],
        borough: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> Template:
        plan = rollout.plan()
        progress = rollout.progress(borough or None)
        scope = borough or "all"
        rows = [r for r in progress.rows if r.borough == scope]
        done = [r for r in rows if r.week <= progress.current_week]
        now = utc_now()
        planned = _cumulative(plan.start, [(r.starts, r.planned) for r in rows])
        chart = charts.time_chart(
            f"Roll-out burn-up: {borough or 'the whole force'}",
            [
                ("planned: officers equipped", planned, "dashed"),
                ("issued", _cumulative(plan.start, [(r.starts, r.issued) for r in done], now), "solid"),
            ],
            y_label="officers",
            y_min=0,
            x_range=_plan_window(plan.start, len(plan.weeks), now),
            description=f"week {progress.current_week}: {done[-1].issued if done else 0:,} issued against "
            f"{done[-1].planned if done else 0:,} planned",
        )
        latest = {r.borough: r for r in progress.rows if r.week == progress.current_week and r.borough != "all"}
        proposals = rollout.proposals("proposed", 20)
        committed = rollout.proposals("committed", 5)
        return page(
            request,
            "rollout.html",
            plan=plan,
            chart=chart,
            current=progress.current_week,
            latest=sorted(latest.values(), key=lambda r: r.borough),
            borough=borough or "",
            now=done[-1] if done else None,
            proposals=proposals,
            committed=committed,
            can_plan=allowed(request, "planner"),
        )

    @post(
        "/proposals/{proposal_id:int}/{decision:str}",
        summary="Commit or discard a proposal",
        guards=[user_with("planner")],
        opt=FORM,
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def decide(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        rollout: Injected[RolloutService],
        proposal_id: Annotated[int, PathParameter(ge=1, le=2**62)],
        decision: Annotated[str, PathParameter(max_length=16)],
    ) -> Redirect:
        act = {"commit": (rollout.commit, "committed"), "discard": (rollout.discard, "discarded")}.get(decision)
        if act is None:
            raise BadRequest(f"unknown decision {decision!r}")
        act[0](proposal_id, principal.name)
        return back("/rollout", done=act[1])
