"""The public figures on the web: a page, and open data as CSV and JSON. No login.

Declared ``PUBLIC`` (``central.access.scope``): the routes take no caller, so what they answer
cannot depend on who asks, and their answers may be cached by browsers and proxies. A
month asked by name is final and kept a day; the latest month (no ``?month=``) an hour, as
the next month's publication changes what "latest" is. An ``ETag`` answers a repeat with 304.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import QueryParameter
from litestar.response import Template
from markupsafe import Markup

from central.access.scope import PUBLIC
from central.core.csvhttp import CSV
from central.core.openapi import errors
from central.core.providers import Injected
from central.web import charts
from central.web.dashboard import DashboardPages
from central.web.public_figures import (
    ALL,
    MEASURES,
    PUBLISH_AFTER,
    Figure,
    MonthFigures,
    OpenData,
    PublicFigures,
    month_start,
    next_month,
    previous_month,
)
from central.web.suppression import SHOWN, THRESHOLD
from fleet import csvio

Month = Annotated[
    str | None, QueryParameter(description="the month, YYYY-MM (default: the latest published)", max_length=7)
]
KEEP_MONTH_S = 86_400
KEEP_LATEST_S = 3_600


def _figures(figures: PublicFigures, month: str | None) -> tuple[MonthFigures, str, int]:
    """The month's figures, their ETag and how long they may be kept."""
    found, etag = figures.month(month or figures.latest())
    return found, etag, KEEP_MONTH_S if month else KEEP_LATEST_S


def _cached(request: Request, etag: str, keep_s: int, make) -> Response:
    headers = {"Cache-Control": f"public, max-age={keep_s}", "ETag": etag}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(b"", status_code=304, headers=headers)
    response = make()
    response.headers.update(headers)
    return response


class PublicData(Controller):
    path = "/public"
    tags = ["public"]

    @get(
        "/figures.json",
        summary="A month's public figures as JSON (open data; no login)",
        scope=PUBLIC,
        responses=errors(400, 404),
        sync_to_thread=True,
    )
    def as_json(self, request: Request, public_figures: Injected[PublicFigures], month: Month = None) -> Response:
        found, etag, keep = _figures(public_figures, month)
        body = OpenData(
            month=found.month,
            published_at=found.published_at,
            threshold=THRESHOLD,
            definitions={m.key: m.definition for m in MEASURES},
            figures=found.figures,
        )
        return _cached(request, etag, keep, lambda: Response(msgspec.json.encode(body), media_type="application/json"))

    @get(
        "/figures.csv",
        summary="A month's public figures as CSV (open data; no login)",
        scope=PUBLIC,
        responses=errors(400, 404),
        media_type=CSV,
        sync_to_thread=True,
    )
    def as_csv(self, request: Request, public_figures: Injected[PublicFigures], month: Month = None) -> Response:
        found, etag, keep = _figures(public_figures, month)
        return _cached(
            request,
            etag,
            keep,
            lambda: Response(
                csvio.write_csv(found.figures, Figure),
                media_type=CSV,
                headers={"Content-Disposition": f'attachment; filename="bwv-figures-{found.month}.csv"'},
            ),
        )


def _label(f: Figure | None) -> str:
    if f is None:
        return "-"
    if f.status != SHOWN or f.value is None:
        return f.status
    return f"{f.value:,.1f}" if f.unit in ("percent", "hours") else f"{f.value:,.0f}"


def _bar_name(f: Figure) -> str:
    """A bar's name: its borough, or for the requests' all-boroughs rows, the outcome."""
    return f.outcome if f.borough == ALL and f.outcome not in ("", "received") else f.borough


def _bars(title: str, rows: list[Figure], description: str) -> Markup:
    return charts.bar_chart(
        title,
        [(_bar_name(r), r.value or 0) for r in rows],
        labels=[_label(r) for r in rows],
        description=description,
    )


def _over_time(title: str, key: str, series: list[tuple[str, Figure | None]], y_label: str) -> Markup:
    points = [(month_start(m), float(f.value)) for m, f in series if f is not None and f.value is not None]
    hidden = [m for m, f in series if f is None or f.value is None]
    return charts.time_chart(
        title,
        [(y_label, points, "solid")],
        y_label=y_label,
        y_min=0,
        key=key,
        description=f"{len(points)} months shown"
        + (f"; not shown (small counts): {', '.join(hidden)}" if hidden else ""),
    )


class PublicPage(DashboardPages):
    path = "/public"

    @get("/figures", summary="The public figures page", scope=PUBLIC, sync_to_thread=True)
    def figures_page(self, request: Request, public_figures: Injected[PublicFigures], month: Month = None) -> Response:
        found, etag, keep = _figures(public_figures, month)
        return _cached(request, etag, keep, lambda: self._render(request, public_figures, found))

    def _render(self, request: Request, public: PublicFigures, found: MonthFigures) -> Template:
        rows = found.figures

        def of(key: str) -> list[Figure]:
            return [f for f in rows if f.measure == key]

        def boroughs(key: str) -> list[Figure]:
            return [f for f in of(key) if f.borough != ALL]

        start = month_start(found.month)
        first = public.first() or found.month
        months: list[str] = []  # the picker's months, newest first (20 years at most)
        at = month_start(public.latest())
        while f"{at:%Y-%m}" >= first and len(months) < 240:
            months.append(f"{at:%Y-%m}")
            at = previous_month(at)
        charts_by_measure = {
            "cameras_in_service": _bars(
                "Cameras in service, by borough", boroughs("cameras_in_service"), "cameras that sent clips"
            ),
            "clips_uploaded": _over_time(
                "Clips uploaded per month, all boroughs",
                "uploads",
                public.series(found.month, "clips_uploaded"),
                "clips",
            ),
            "evidential_share": _over_time(
                "Share of clips marked evidential, per month",
                "evidential",
                [(m, f) for m, f in public.series(found.month, "evidential_share")],
                "per cent",
            ),
            "deleted_default_rule": _bars(
                "Clips deleted under the default rule, by borough",
                boroughs("deleted_default_rule"),
                "clips deleted for good",
            ),
            "keep_requests": _bars(
                "Requests to keep footage received, by what became of them",
                [f for f in of("keep_requests") if f.borough == ALL],
                "all boroughs",
            ),
            "median_dock_to_central_hours": _bars(
                "Median hours from docking to central, by borough",
                boroughs("median_dock_to_central_hours"),
                "hours",
            ),
        }
        # Not ``dashboard.page``: that names the caller, and this page is the same for everyone.
        return Template(
            template_name="public_figures.html",
            context=dict(
                me=None,
                nav=[],
                here=request.url.path,
                month=found.month,
                month_name=f"{start:%B %Y}",
                published_at=found.published_at[:10],
                publish_after_days=PUBLISH_AFTER.days,
                months=months,
                previous=f"{previous_month(start):%Y-%m}" if f"{previous_month(start):%Y-%m}" >= first else None,
                following=f"{next_month(start):%Y-%m}" if f"{next_month(start):%Y-%m}" <= months[0] else None,
                measures=MEASURES,
                rows=rows,
                of=of,
                label=_label,
                charts=charts_by_measure,
                threshold=THRESHOLD,
                all_boroughs=ALL,
            ),
        )
