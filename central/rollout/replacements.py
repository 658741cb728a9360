"""Replacing a model: withdraw it, propose replacements through the roll-out, follow the swap.

The withdrawal is the registry's (``central.registry.models``); the replacements are ordinary
roll-out proposals (``RolloutService.propose_replacements``), reviewed, committed or discarded
as any other (``/api/v1/rollout/proposals/{id}/commit``, the Roll-out page); the swap's stages
are ``central.rollout.swap``'s. Withdrawing proposes the first replacements at once, as far as
the stock goes; more are proposed when cameras arrive (``POST …/replacements``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody, PathParameter

from central.access.auth import Caller, user_with
from central.access.scope import FORCE_WIDE, no_borough
from central.core.database import Database
from central.core.openapi import errors
from central.core.providers import Injected
from central.registry.models import ModelInfo, ModelService, Reason, Withdrawal
from central.rollout import swap
from central.rollout.service import Proposal, RolloutService
from central.rollout.swap import SwapCamera, SwapStatus
from fleet.errors import Conflict
from fleet.protocol import BoroughName

ModelPath = Annotated[
    str, PathParameter(min_length=1, max_length=64, description="the camera model, as the registry names it")
]


class WithdrawRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason
    """Why the model is withdrawn (kept, and in the audit trail)."""
    propose: bool = True
    """Propose replacements from the stock at once (a roll-out proposal to review and commit)."""


class WithdrawResult(msgspec.Struct, kw_only=True):
    withdrawal: Withdrawal
    proposal: Proposal | None = None
    """The replacements proposed, if any."""
    note: str | None = None
    """Why no replacement was proposed (e.g. no camera in stock)."""


class ReplaceRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    boroughs: Annotated[list[BoroughName], msgspec.Meta(max_length=64)] = []
    """Only these boroughs' cameras (at most 64, as a deployment's target); empty: every borough's."""


class Replacements:
    """A model's withdrawal and the swap of its cameras, over the registry's and the roll-out's services."""

    def __init__(self, writer: Database, models: ModelService, rollout: RolloutService) -> None:
        self.writer = writer
        self.models = models
        self.rollout = rollout

    def withdraw(self, model: str, reason: str, actor: str, propose: bool = True) -> WithdrawResult:
        """Withdraw, then propose what the stock allows. Two transactions: a crash between them
        leaves the model withdrawn with nothing proposed, which ``propose`` makes good."""
        withdrawal = self.models.withdraw(model, reason, actor)
        if not propose:
            return WithdrawResult(withdrawal=withdrawal, note="no replacement proposed: asked not to")
        try:
            proposal = self.rollout.propose_replacements(model, [], actor)
        except Conflict as exc:
            return WithdrawResult(withdrawal=withdrawal, note=exc.message)
        return WithdrawResult(withdrawal=withdrawal, proposal=proposal)

    def propose(self, model: str, boroughs: list[str], actor: str) -> Proposal:
        return self.rollout.propose_replacements(model, list(dict.fromkeys(boroughs)), actor)

    def cameras(self, model: str) -> list[SwapCamera]:
        self.models.withdrawal(model)  # NotFound for a model not withdrawn
        with self.writer.read() as db:
            return swap.cameras(db, model)

    def status(self, model: str) -> SwapStatus:
        withdrawal = self.models.withdrawal(model)
        with self.writer.read() as db:
            return swap.status(model, withdrawal, swap.cameras(db, model))

    def statuses(self) -> list[SwapStatus]:
        """Every withdrawn model's swap, the latest withdrawn first."""
        with self.writer.read() as db:
            return [swap.status(w.model, w, swap.cameras(db, w.model)) for w in self.models.withdrawals()]


MODEL_FIGURES = no_borough("camera models and their cameras' counts by borough: the force's, no one's records")


class ModelController(Controller):
    path = "/api/v1/models"
    tags = ["models"]

    @get(
        "/",
        summary="Camera models in the registry, with their cameras by state and any withdrawal",
        guards=[user_with("viewer")],
        scope=MODEL_FIGURES,
        sync_to_thread=True,
    )
    def list_models(self, principal: Caller, models: Injected[ModelService]) -> list[ModelInfo]:
        return models.models()

    @post(
        "/{model:str}/withdraw",
        status_code=200,
        summary="Withdraw a model (audited): none of its cameras is handed out again; replacements are proposed",
        description="The replacements are a roll-out proposal, committed or discarded as any other.",
        guards=[user_with("fleet_manager")],
        scope=FORCE_WIDE,
        responses=errors(404, 409),
        sync_to_thread=True,
    )
    def withdraw(
        self,
        principal: Caller,
        replacements: Injected[Replacements],
        model: ModelPath,
        data: JSONBody[WithdrawRequest],
    ) -> WithdrawResult:
        return replacements.withdraw(model, data.reason, principal.name, data.propose)

    @post(
        "/{model:str}/replacements",
        status_code=201,
        summary="Propose replacements for a withdrawn model's cameras still in service without one",
        guards=[user_with("fleet_manager")],
        scope=FORCE_WIDE,
        responses=errors(409),
        sync_to_thread=True,
    )
    def propose(
        self,
        principal: Caller,
        replacements: Injected[Replacements],
        model: ModelPath,
        data: JSONBody[ReplaceRequest],
    ) -> Proposal:
        return replacements.propose(model, data.boroughs, principal.name)

    @get(
        "/{model:str}/swap",
        summary="A withdrawn model's swap: its cameras by borough and stage",
        guards=[user_with("viewer")],
        scope=MODEL_FIGURES,
        responses=errors(404),
        sync_to_thread=True,
    )
    def get_swap(self, principal: Caller, replacements: Injected[Replacements], model: ModelPath) -> SwapStatus:
        return replacements.status(model)

    @get(
        "/{model:str}/cameras",
        summary="A withdrawn model's cameras: where, who holds each, its stage and replacement",
        guards=[user_with("viewer")],
        scope=FORCE_WIDE,
        responses=errors(404),
        sync_to_thread=True,
    )
    def get_cameras(
        self, principal: Caller, replacements: Injected[Replacements], model: ModelPath
    ) -> list[SwapCamera]:
        return replacements.cameras(model)
