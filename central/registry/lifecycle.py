"""Which lifecycle moves a camera may make, and why a refused move was refused.

A camera goes from the stores to a borough, to an officer, into service, and eventually to
repair, loss or retirement. Central and the station CLI both ask ``check_transition`` before
changing a device's state, so the rules and the wording of a refusal live in one place.
"""

from __future__ import annotations

from typing import Literal, get_args

from fleet.errors import BadRequest, Conflict

Lifecycle = Literal["in_stock", "allocated", "issued", "in_service", "repair", "lost", "retired"]
LIFECYCLE_STATES: tuple[str, ...] = get_args(Lifecycle)

TRANSITIONS: dict[str, frozenset[str]] = {
    "in_stock": frozenset({"allocated", "repair", "retired"}),
    "allocated": frozenset({"in_stock", "issued", "repair", "lost", "retired"}),
    "issued": frozenset({"allocated", "in_service", "repair", "lost", "retired"}),
    "in_service": frozenset({"allocated", "issued", "repair", "lost", "retired"}),
    "repair": frozenset({"in_stock", "allocated", "retired"}),
    # A lost camera that turns up goes back to stores, or straight on with its officer.
    "lost": frozenset({"in_stock", "in_service", "retired"}),
    "retired": frozenset(),  # final: a retired camera's evidence trail must not reopen
}

# Moves that take a camera away from its officer, so an open checkout must end first.
NEEDS_NO_OPEN_ASSIGNMENT = frozenset({"retired", "repair", "in_stock"})


def _allowed_from(current: str) -> str:
    """The allowed targets in lifecycle order, as a sentence fragment."""
    names = [state for state in LIFECYCLE_STATES if state in TRANSITIONS[current]]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_transition(current: str, target: str, *, borough: str | None, has_open_assignment: bool) -> None:
    """Refuse a move the rules forbid, with a sentence a sergeant at the dock can act on.

    Raises ``BadRequest`` for a state name that does not exist and ``Conflict`` for a
    known move that is not allowed now; returns None when the move may go ahead.
    """
    for name in (current, target):
        if name not in TRANSITIONS:
            raise BadRequest(f"unknown lifecycle state {name!r}: expected one of {', '.join(LIFECYCLE_STATES)}")
    if target == current:
        raise Conflict(f"the device is already {current}")
    if not TRANSITIONS[current]:
        raise Conflict(f"the device is {current}, which is final: it cannot become {target}")
    if target not in TRANSITIONS[current]:
        raise Conflict(
            f"a device that is {current} cannot become {target}; from {current} it can become {_allowed_from(current)}"
        )
    if target == "allocated" and borough is None:
        raise Conflict("say which borough to allocate the device to")
    if target in NEEDS_NO_OPEN_ASSIGNMENT and has_open_assignment:
        raise Conflict(
            f"the device is checked out / issued to an officer: "
            f"check it in or unassign it first, then it can become {target}"
        )
