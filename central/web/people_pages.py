"""Dashboard: officers and their cameras; assigning and unassigning (supervisors, admins)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from central.access.auth import Caller, user_with
from central.access.scope import LISTS, Scoped, form_text, in_form, in_path, touches
from central.core.providers import Injected
from central.core.store import CentralStore
from central.registry.assignments import AssignmentService, IssueRequest
from central.registry.officers import OfficerService
from central.web.dashboard import FORM, DashboardPages, allowed, back, field, filter_query, page
from fleet.config import CentralSettings
from fleet.errors import ApiError, BadRequest, Conflict


class PeoplePages(DashboardPages):
    path = "/officers"

    @get(
        "/",
        summary="Officers and the cameras they hold",
        guards=[user_with("viewer")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def officers_page(
        self,
        request: Request,
        within: Scoped,
        officers: Injected[OfficerService],
        store: Injected[CentralStore],
        q: Annotated[str | None, QueryParameter(max_length=64)] = None,
        borough: Annotated[str | None, QueryParameter(max_length=64)] = None,
        after: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> Template:
        borough = within.narrow(borough or None)
        result = officers.page(borough=borough, role=None, team=None, q=q or None, after=after or None, limit=50)
        ids = [o.officer_id for o in result.items]
        with store.writer.read() as db:
            holding = (
                {
                    r[0]: (r[1], r[2])
                    for r in db.execute(
                        f"SELECT officer_id, device_serial, mode FROM assignments WHERE ended_at IS NULL "
                        f"AND officer_id IN ({','.join('?' * len(ids))})",
                        ids,
                    )
                }
                if ids
                else {}
            )
            boroughs = [
                r[0]
                for r in db.execute("SELECT DISTINCT borough FROM officers ORDER BY 1")
                if within.borough in (None, r[0])
            ]
        filters = {"q": q or "", "borough": borough or ""}
        return page(
            request,
            "officers.html",
            result=result,
            holding=holding,
            filters=filters,
            boroughs=boroughs,
            can_assign=allowed(request, "supervisor"),
            next_query=filter_query(filters),
        )

    @post(
        "/assign",
        summary="Issue a camera to an officer",
        guards=[user_with("supervisor")],
        opt=FORM,
        scope=touches(in_form("device", "device_serial"), in_form("officer", "officer_id")),
        sync_to_thread=True,
    )
    def assign(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        assignments: Injected[AssignmentService],
        settings: Injected[CentralSettings],
    ) -> Redirect:
        try:
            issue = msgspec.convert(
                {
                    "device_serial": _required(form, "device_serial"),
                    "officer_id": _required(form, "officer_id"),
                    "reason": field(form, "reason"),
                },
                IssueRequest,
            )
            done = assignments.issue(issue, principal.name, settings.fleet.assignment_mode)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"not a camera serial or officer id: {exc}") from None
        return back(f"/officers?q={done.officer_id}", done="issued")

    @post(
        "/unassign",
        summary="End the assignments of the cameras ticked",
        guards=[user_with("supervisor")],
        opt=FORM,
        scope=touches(in_form("device", "device_serial")),
        sync_to_thread=True,
    )
    def unassign(
        self, principal: Caller, form: Injected[FormMultiDict], assignments: Injected[AssignmentService]
    ) -> Redirect:
        serials = [form_text(s) for s in form.getall("device_serial", [])][:200]
        reason = field(form, "reason") or "ended on the dashboard"
        if not serials:
            raise BadRequest("tick at least one camera to unassign")
        ended, failed = [], []
        for serial in serials:  # each its own transaction: one refusal does not undo the others
            try:
                assignments.end(serial, reason, principal.name)
                ended.append(serial)
            except ApiError as exc:
                failed.append(f"{serial}: {exc.message}")
        if failed:
            raise Conflict(f"{len(ended)} assignment(s) ended; not ended: " + "; ".join(failed))
        return back("/officers", done="unassigned")

    @get(
        "/conflicts",
        summary="Assignment conflicts to resolve",
        guards=[user_with("supervisor")],
        scope=LISTS,
        sync_to_thread=True,
    )
    def conflicts_page(
        self,
        request: Request,
        within: Scoped,
        assignments: Injected[AssignmentService],
        open_only: Annotated[bool, QueryParameter(name="open")] = True,
    ) -> Template:
        rows = assignments.conflicts(within.borough, open_only, 200)
        return page(request, "conflicts.html", conflicts=rows, open_only=open_only)

    @post(
        "/conflicts/{conflict_id:int}/resolve",
        summary="Resolve a conflict",
        guards=[user_with("supervisor")],
        opt=FORM,
        scope=touches(in_path("conflict", "conflict_id")),
        sync_to_thread=True,
    )
    def resolve(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        assignments: Injected[AssignmentService],
        conflict_id: Annotated[int, PathParameter(ge=1, le=2**62)],
    ) -> Redirect:
        resolution = field(form, "resolution")
        if not resolution:
            raise BadRequest("say how it was resolved")
        assignments.resolve_conflict(conflict_id, resolution, principal.name)
        return back("/officers/conflicts", done="resolved")


def _required(form, key: str) -> str:
    value = field(form, key, 64)
    if not value:
        raise BadRequest(f"{key.replace('_', ' ')} is needed")
    return value
