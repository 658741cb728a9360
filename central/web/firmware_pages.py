"""Dashboard: firmware releases by model, camera profiles by scope, and camera models with any
withdrawn one's swap. Read-only: changes go through the API and ``fleet central …``."""

from __future__ import annotations

from itertools import groupby
from typing import Annotated

import msgspec
from litestar import Request, get
from litestar.params import PathParameter
from litestar.response import Template

from central.access.auth import Caller, user_with
from central.access.scope import FORCE_WIDE, no_borough
from central.core.providers import Injected
from central.firmware.profiles import PROFILES, ProfileService
from central.firmware.releases import ReleaseService
from central.registry.models import ModelService
from central.rollout.replacements import MODEL_FIGURES, Replacements
from central.rollout.swap import STAGES
from central.web.dashboard import DashboardPages, page
from fleet.profiles import SETTINGS


class FirmwarePages(DashboardPages):
    path = "/"

    @get(
        "/firmware",
        summary="Firmware releases, by model",
        guards=[user_with("fleet_manager")],
        scope=no_borough("firmware releases are the force's, of no borough"),
        sync_to_thread=True,
    )
    def firmware_page(self, request: Request, principal: Caller, releases: Injected[ReleaseService]) -> Template:
        listed = sorted(releases.releases(), key=lambda r: (r.model, -r.id))
        by_model = [(model, list(group)) for model, group in groupby(listed, key=lambda r: r.model)]
        return page(request, "firmware.html", by_model=by_model, keys=len(releases.keys))

    @get(
        "/profiles",
        summary="Camera profiles, by scope",
        guards=[user_with("viewer")],
        scope=PROFILES,
        sync_to_thread=True,
    )
    def profiles_page(self, request: Request, principal: Caller, profiles: Injected[ProfileService]) -> Template:
        rows = [(p, msgspec.structs.asdict(p.settings)) for p in profiles.all()]
        return page(request, "profiles.html", rows=rows, settings=SETTINGS)

    @get(
        "/models",
        summary="Camera models, and each withdrawn one's swap by borough",
        guards=[user_with("viewer")],
        scope=MODEL_FIGURES,
        sync_to_thread=True,
    )
    def models_page(
        self, request: Request, principal: Caller, models: Injected[ModelService], replacements: Injected[Replacements]
    ) -> Template:
        return page(request, "models.html", models=models.models(), swaps=replacements.statuses(), stages=STAGES)

    @get(
        "/models/{model:str}",
        summary="A withdrawn model's cameras: where, who holds each, its stage and replacement",
        guards=[user_with("viewer")],
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def model_page(
        self,
        request: Request,
        principal: Caller,
        replacements: Injected[Replacements],
        model: Annotated[str, PathParameter(min_length=1, max_length=64)],
    ) -> Template:
        status = replacements.status(model)
        return page(request, "model.html", s=status, cameras=replacements.cameras(model), stages=STAGES)
