"""``/api/v1/deployments``: fleet managers create deployments, read their phases' figures and decide.

Deployments are the force's, like the releases they deliver: fleet managers (and admins) read and
decide them, force-wide; a user scoped to a borough may not decide (a pause stops every
borough's cameras). Stations never call these routes: they learn their cameras' offers down the
changes feed (``camera_update``) and report outcomes as events.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from central.access.auth import Caller, user_with
from central.access.scope import FORCE_WIDE, no_borough
from central.core.openapi import errors
from central.core.providers import Injected
from central.firmware.deployments import (
    CameraPage,
    CameraState,
    DecisionRequest,
    Deployment,
    DeploymentRequest,
    DeploymentService,
    State,
)

DeploymentPath = Annotated[int, PathParameter(ge=1, le=2**62, description="the deployment's number")]
READ = no_borough("deployments are the force's, as the releases they deliver are")


class DeploymentController(Controller):
    path = "/api/v1/deployments"
    tags = ["firmware"]
    guards = [user_with("fleet_manager")]

    @post(
        "/",
        status_code=201,
        summary="Deploy a release or the profiles to a target, in phases that pause themselves",
        description="Exactly one of release_id and profiles: true. The target is frozen now and each camera is "
        "given one phase; the first phase opens at once (docs/firmware.md).",
        scope=FORCE_WIDE,
        responses=errors(404, 409),
        sync_to_thread=True,
    )
    def create(
        self, principal: Caller, deployments: Injected[DeploymentService], data: JSONBody[DeploymentRequest]
    ) -> Deployment:
        return deployments.create(data, principal.name)

    @get("/", summary="Deployments, newest first", scope=READ, sync_to_thread=True)
    def list_deployments(
        self,
        principal: Caller,
        deployments: Injected[DeploymentService],
        in_state: Annotated[
            State | None, QueryParameter(name="state", description="only deployments in this state")
        ] = None,
    ) -> list[Deployment]:
        return deployments.deployments(in_state)

    @get(
        "/{deployment_id:int}",
        summary="One deployment, each phase with its figures",
        scope=READ,
        responses=errors(404),
        sync_to_thread=True,
    )
    def show(
        self, principal: Caller, deployments: Injected[DeploymentService], deployment_id: DeploymentPath
    ) -> Deployment:
        return deployments.deployment(deployment_id)

    @get(
        "/{deployment_id:int}/cameras",
        summary="A deployment's cameras and their states, by serial (next_cursor: pass it as cursor)",
        scope=READ,
        responses=errors(404),
        sync_to_thread=True,
    )
    def cameras(
        self,
        principal: Caller,
        deployments: Injected[DeploymentService],
        deployment_id: DeploymentPath,
        in_state: Annotated[
            CameraState | None, QueryParameter(name="state", description="only cameras in this state")
        ] = None,
        cursor: Annotated[
            str | None,
            QueryParameter(
                max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="next_cursor of the previous page"
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> CameraPage:
        return deployments.cameras(deployment_id, in_state, cursor, limit)

    @post(
        "/{deployment_id:int}/pause",
        status_code=200,
        summary="Pause: every standing offer is withdrawn (audited with the reason)",
        scope=FORCE_WIDE,
        responses=errors(404, 409),
        sync_to_thread=True,
    )
    def pause(
        self,
        principal: Caller,
        deployments: Injected[DeploymentService],
        deployment_id: DeploymentPath,
        data: JSONBody[DecisionRequest],
    ) -> Deployment:
        return deployments.pause(deployment_id, data.reason, principal.name)

    @post(
        "/{deployment_id:int}/resume",
        status_code=200,
        summary="Resume a paused deployment: offers again; the pause rule judges what comes after",
        scope=FORCE_WIDE,
        responses=errors(404, 409),
        sync_to_thread=True,
    )
    def resume(
        self,
        principal: Caller,
        deployments: Injected[DeploymentService],
        deployment_id: DeploymentPath,
        data: JSONBody[DecisionRequest],
    ) -> Deployment:
        return deployments.resume(deployment_id, data.reason, principal.name)

    @post(
        "/{deployment_id:int}/abort",
        status_code=200,
        summary="Abort: every camera without a final state is cancelled, every offer withdrawn",
        scope=FORCE_WIDE,
        responses=errors(404, 409),
        sync_to_thread=True,
    )
    def abort(
        self,
        principal: Caller,
        deployments: Injected[DeploymentService],
        deployment_id: DeploymentPath,
        data: JSONBody[DecisionRequest],
    ) -> Deployment:
        return deployments.abort(deployment_id, data.reason, principal.name)

    @post(
        "/{deployment_id:int}/rollback",
        status_code=201,
        summary="Roll back a paused or aborted release deployment: the new deployment taking its updated "
        "cameras back to the release they came from",
        scope=FORCE_WIDE,
        responses=errors(404, 409),
        sync_to_thread=True,
    )
    def rollback(
        self,
        principal: Caller,
        deployments: Injected[DeploymentService],
        deployment_id: DeploymentPath,
        data: JSONBody[DecisionRequest],
    ) -> Deployment:
        return deployments.rollback(deployment_id, data.reason, principal.name)
