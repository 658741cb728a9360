"""Camera models, and withdrawing one from service: the only writer of ``withdrawn_models``.

A fleet manager withdraws a model judged not fit for purpose (with a reason, audited). From
then on none of its cameras is handed out again: a personal issue of one is refused (409), the
roll-out never proposes one, and its cameras are swapped for others through the roll-out's
proposals (``central.rollout.replacements``) until each is returned: **retired** (the
lifecycle's final state; a lost one is counted apart). A withdrawal is the force's decision
about a model and is not undone here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import msgspec

from central.core.database import Database
from central.evidence import audit
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import BadRequest, Conflict, NotFound

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"\S")]
ModelName = Annotated[
    str, msgspec.Meta(max_length=64, pattern=r"^[^\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$")
]
"""A model as a camera is registered with: at most 64 characters (what a route may name, to withdraw
it), no control character (PostgreSQL keeps no NUL) nor bidirectional override (shown on pages)."""

NOT_HANDED_OUT = "NOT EXISTS (SELECT 1 FROM withdrawn_models w WHERE w.model = d.model)"
"""A condition on ``devices d``: its model is not withdrawn (what may be handed out)."""


class Withdrawal(msgspec.Struct, kw_only=True):
    model: str
    withdrawn_at: datetime
    withdrawn_by: str
    reason: str


class ModelInfo(msgspec.Struct, kw_only=True):
    """A camera model the registry holds, with how many of its cameras are in each state."""

    model: str
    cameras: int
    """Every camera of the model, retired ones too."""
    by_state: dict[str, int]
    withdrawal: Withdrawal | None = None


def _withdrawal(r) -> Withdrawal:
    return Withdrawal(model=r[0], withdrawn_at=from_iso(r[1]), withdrawn_by=r[2], reason=r[3])


def withdrawal_of(db, model: str) -> Withdrawal | None:
    row = db.execute(
        "SELECT model, withdrawn_at, withdrawn_by, reason FROM withdrawn_models WHERE model = ?", [model]
    ).fetchone()
    return _withdrawal(row) if row else None


def withdrawn_among(db, models: Iterable[str]) -> set[str]:
    """Those of these models that are withdrawn."""
    wanted = list(dict.fromkeys(models))
    if not wanted:
        return set()
    return {
        r[0]
        for r in db.execute(
            f"SELECT model FROM withdrawn_models WHERE {db.dialect.any_of('model')}", [db.dialect.many(wanted)]
        )
    }


def refuse_if_withdrawn(db, serial: str, model: str, doing: str) -> None:
    """Conflict when the camera's model is withdrawn: it is never handed out again."""
    found = withdrawal_of(db, model) if model else None
    if found is not None:
        raise Conflict(
            f"camera {serial} is of model {model}, withdrawn on {found.withdrawn_at:%Y-%m-%d} "
            f"({found.reason}); it cannot be {doing}: its officer gets a replacement through the roll-out "
            "(docs/firmware.md, 'Replacing a model')"
        )


class ModelService:
    """The models the registry holds, and their withdrawal."""

    def __init__(self, writer: Database) -> None:
        self.writer = writer

    def models(self) -> list[ModelInfo]:
        """Every model with a camera in the registry, by name; withdrawn ones with their withdrawal."""
        with self.writer.read() as db:
            counts: dict[str, dict[str, int]] = {}
            for model, state, n in db.execute(
                "SELECT model, lifecycle, count(*) FROM devices GROUP BY model, lifecycle ORDER BY model, lifecycle"
            ):
                counts.setdefault(model, {})[state] = n
            withdrawn = {
                r[0]: _withdrawal(r)
                for r in db.execute("SELECT model, withdrawn_at, withdrawn_by, reason FROM withdrawn_models")
            }
        return [
            ModelInfo(model=model, cameras=sum(states.values()), by_state=states, withdrawal=withdrawn.get(model))
            for model, states in counts.items()
        ]

    def withdrawal(self, model: str) -> Withdrawal:
        with self.writer.read() as db:
            found = withdrawal_of(db, model)
        if found is None:
            raise NotFound(f"model {model[:64]!r} is not withdrawn")
        return found

    def withdrawals(self) -> list[Withdrawal]:
        """Newest first."""
        with self.writer.read() as db:
            return [
                _withdrawal(r)
                for r in db.execute(
                    "SELECT model, withdrawn_at, withdrawn_by, reason FROM withdrawn_models ORDER BY withdrawn_at DESC"
                )
            ]

    def withdraw(self, model: str, reason: str, actor: str) -> Withdrawal:
        """Withdraw a model the registry holds (audited, ``model-withdraw``); twice is a Conflict."""
        reason = reason.strip()
        if not reason or len(reason) > 500:
            raise BadRequest("a withdrawal needs a reason (at most 500 characters)")
        if not model.strip():
            raise BadRequest(
                "name the model to withdraw (the cameras whose model central never learnt are of no one model: "
                "retire them one by one)"
            )
        with self.writer.write() as db:
            cameras = db.execute("SELECT count(*) FROM devices WHERE model = ?", [model]).fetchone()[0]
            if not cameras:
                raise NotFound(f"no camera of model {model[:64]!r} in the registry (models are named as registered)")
            found = withdrawal_of(db, model)
            if found is not None:
                raise Conflict(
                    f"model {model} was withdrawn already, on {to_iso(found.withdrawn_at)} by {found.withdrawn_by}"
                )
            now = to_iso(utc_now())
            db.execute(
                "INSERT INTO withdrawn_models (model, withdrawn_at, withdrawn_by, reason) VALUES (?, ?, ?, ?)",
                [model, now, actor, reason],
            )
            audit.record(
                db,
                actor=actor,
                action="model-withdraw",
                object_type="model",
                object_id=model,
                detail=f"{cameras} cameras: {reason}",
            )
            return _withdrawal((model, now, actor, reason))
