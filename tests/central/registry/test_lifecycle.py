import pytest

from central.registry.lifecycle import LIFECYCLE_STATES, TRANSITIONS, check_transition
from fleet.errors import BadRequest, Conflict

# The rules as the force wrote them, spelled out again here so a slip in the module's table
# fails a test instead of being copied into it.
ALLOWED = {
    ("in_stock", "allocated"),
    ("in_stock", "repair"),
    ("in_stock", "retired"),
    ("allocated", "in_stock"),
    ("allocated", "issued"),
    ("allocated", "repair"),
    ("allocated", "lost"),
    ("allocated", "retired"),
    ("issued", "allocated"),
    ("issued", "in_service"),
    ("issued", "repair"),
    ("issued", "lost"),
    ("issued", "retired"),
    ("in_service", "allocated"),
    ("in_service", "issued"),
    ("in_service", "repair"),
    ("in_service", "lost"),
    ("in_service", "retired"),
    ("repair", "in_stock"),
    ("repair", "allocated"),
    ("repair", "retired"),
    ("lost", "in_stock"),
    ("lost", "in_service"),
    ("lost", "retired"),
}
STATES = ["in_stock", "allocated", "issued", "in_service", "repair", "lost", "retired"]


def test_states_are_listed_in_lifecycle_order_and_all_have_rules():
    assert tuple(STATES) == LIFECYCLE_STATES
    assert set(TRANSITIONS) == set(STATES)
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize("current", STATES)
@pytest.mark.parametrize("target", STATES)
def test_every_pair_of_states_follows_the_table(current, target):
    if (current, target) in ALLOWED:
        check_transition(current, target, borough="Camden", has_open_assignment=False)  # allowed: does not raise
    else:
        with pytest.raises(Conflict) as refused:
            check_transition(current, target, borough="Camden", has_open_assignment=False)
        assert refused.value.status_code == 409
        assert current in refused.value.message


@pytest.mark.parametrize("state", STATES)
def test_moving_to_the_same_state_says_already(state):
    with pytest.raises(Conflict, match=f"^the device is already {state}$"):
        check_transition(state, state, borough="Camden", has_open_assignment=False)


def test_a_refused_move_lists_where_the_device_can_go():
    with pytest.raises(Conflict) as refused:
        check_transition("in_stock", "issued", borough="Camden", has_open_assignment=False)
    assert refused.value.message == (
        "a device that is in_stock cannot become issued; from in_stock it can become allocated, repair or retired"
    )


@pytest.mark.parametrize("target", [s for s in STATES if s != "retired"])
def test_retired_is_final(target):
    with pytest.raises(Conflict, match="retired, which is final"):
        check_transition("retired", target, borough="Camden", has_open_assignment=False)


@pytest.mark.parametrize("current", ["in_stock", "issued", "in_service", "repair"])
def test_allocating_needs_a_borough(current):
    with pytest.raises(Conflict, match="say which borough"):
        check_transition(current, "allocated", borough=None, has_open_assignment=False)
    check_transition(current, "allocated", borough="Hackney", has_open_assignment=False)  # allowed: does not raise


def test_other_moves_do_not_need_a_borough():
    check_transition("allocated", "issued", borough=None, has_open_assignment=False)  # allowed: does not raise


@pytest.mark.parametrize(
    "current, target", sorted((a, b) for a, b in ALLOWED if b in {"retired", "repair", "in_stock"})
)
def test_an_open_assignment_blocks_retire_repair_and_return_to_stock(current, target):
    with pytest.raises(Conflict) as refused:
        check_transition(current, target, borough="Camden", has_open_assignment=True)
    assert "is checked out / issued to an officer: check it in or unassign it first" in refused.value.message
    assert target in refused.value.message


@pytest.mark.parametrize(
    "current, target",
    [
        ("in_service", "lost"),
        ("issued", "in_service"),
        ("in_service", "allocated"),
        ("issued", "allocated"),
    ],
)
def test_an_open_assignment_does_not_block_other_moves(current, target):
    check_transition(current, target, borough="Camden", has_open_assignment=True)  # allowed: does not raise


@pytest.mark.parametrize("current, target", [("stolen", "in_stock"), ("in_stock", "Allocated"), ("", "lost")])
def test_unknown_state_names_are_bad_requests(current, target):
    with pytest.raises(BadRequest, match="unknown lifecycle state") as refused:
        check_transition(current, target, borough="Camden", has_open_assignment=False)
    assert refused.value.status_code == 400
