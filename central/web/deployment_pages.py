"""Dashboard: deployments of firmware and profiles, each phase's progress and failures, and the
decisions a fleet manager takes on them (pause, resume, abort, rollback: the same service calls
as ``/api/v1/deployments``, so the same rules and the same audit records)."""

from __future__ import annotations

from typing import Annotated, get_args

from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from central.access.auth import Caller, user_with
from central.access.scope import FORCE_WIDE, scope_of
from central.core.providers import Injected
from central.firmware.deployment_routes import READ
from central.firmware.deployments import CameraState, DeploymentService, PhaseFigures, State
from central.web.dashboard import FORM, DashboardPages, back, field, page
from fleet.errors import BadRequest

DECISIONS = {"pause": "paused", "resume": "resumed", "abort": "aborted", "rollback": "rolled_back"}
"""A decision's path and the word the page shows after it (a key of ``dashboard.DONE``)."""
SHOWN_STATES = ("failed", "gave_up", "cancelled", "offered", "waiting", "updated")
"""A deployment's cameras by state, failures first (the page lists one state at a time)."""
LISTED = 100
Segment = tuple[str, str, int, float, float]
"""(css class, label, count, x %, width %) of one part of a progress bar."""


def progress(f: PhaseFigures) -> list[Segment]:
    """A phase's (or a deployment's) bar: updated, gave up, cancelled, then what is outstanding; each
    a share of its cameras (drawn in SVG: the CSP allows no inline style, and attributes are none)."""
    parts = [
        ("updated", "updated", f.updated),
        ("gave-up", "gave up", f.gave_up),
        ("cancelled", "cancelled", f.cancelled),
        ("outstanding", "outstanding", f.outstanding),
    ]
    segments: list[Segment] = []
    x = 0.0
    for css, label, n in parts:
        width = 100.0 * n / f.cameras if f.cameras else 0.0
        if n:
            segments.append((css, label, n, round(x, 3), round(width, 3)))
        x += width
    return segments


class DeploymentPages(DashboardPages):
    path = "/deployments"

    @get(
        "/",
        summary="Deployments of firmware and profiles, newest first",
        guards=[user_with("fleet_manager")],
        scope=READ,
        sync_to_thread=True,
    )
    def deployments_page(
        self,
        request: Request,
        principal: Caller,
        deployments: Injected[DeploymentService],
        in_state: Annotated[State | None, QueryParameter(name="state")] = None,
        before: Annotated[int | None, QueryParameter(ge=1, le=2**62)] = None,
    ) -> Template:
        listed = deployments.deployments(in_state, before=before, limit=LISTED + 1)
        more = listed[LISTED - 1].id if len(listed) > LISTED else None
        return page(
            request,
            "deployments.html",
            deployments=listed[:LISTED],
            state=in_state or "",
            states=get_args(State),
            more=more,
        )

    @get(
        "/{deployment_id:int}",
        summary="One deployment: each phase's progress, its cameras by state with their errors, decisions",
        guards=[user_with("fleet_manager")],
        scope=READ,
        sync_to_thread=True,
    )
    def deployment_page(
        self,
        request: Request,
        principal: Caller,
        deployments: Injected[DeploymentService],
        deployment_id: Annotated[int, PathParameter(ge=1, le=2**62)],
        in_state: Annotated[CameraState, QueryParameter(name="state")] = "failed",
        after: Annotated[str | None, QueryParameter(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] = None,
    ) -> Template:
        d = deployments.deployment(deployment_id)
        cameras = deployments.cameras(deployment_id, in_state, after, LISTED)
        return page(
            request,
            "deployment.html",
            d=d,
            bars=[progress(p.figures) for p in d.phases],
            total=progress(d.figures),
            cameras=cameras,
            state=in_state,
            states=SHOWN_STATES,
            can_decide=scope_of(principal) is None,  # a borough's user may read, not decide (FORCE_WIDE)
        )

    @post(
        "/{deployment_id:int}/{decision:str}",
        summary="Pause, resume, abort or roll back a deployment, with a reason",
        guards=[user_with("fleet_manager")],
        opt=FORM,
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def decide(
        self,
        principal: Caller,
        form: Injected[FormMultiDict],
        deployments: Injected[DeploymentService],
        deployment_id: Annotated[int, PathParameter(ge=1, le=2**62)],
        decision: Annotated[str, PathParameter(max_length=16)],
    ) -> Redirect:
        act = {
            "pause": deployments.pause,
            "resume": deployments.resume,
            "abort": deployments.abort,
            "rollback": deployments.rollback,
        }.get(decision)
        if act is None:
            raise BadRequest(f"unknown decision {decision!r}: pause, resume, abort or rollback")
        reason = field(form, "reason")
        if not reason:
            raise BadRequest("say why (the reason is kept in the deployment and the audit trail)")
        after = act(deployment_id, " ".join(reason.split()), principal.name)
        # A rollback answers with the deployment it created: that is the one to watch now.
        return back(f"/deployments/{after.id}", done=DECISIONS[decision])
