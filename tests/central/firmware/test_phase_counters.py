"""Each phase's figures are counters on ``deployment_phases``, kept with every change of its cameras'
rows: after any sequence of what people and stations do, they equal a fresh count of the cameras,
and the migration that fills them for deployments made before counts the same.

A seeded random walk through the real app: results (successes, failures, repeats, late results of
cameras already final), pauses, resumes, aborts, rollbacks, cameras leaving the target, soaks ended
by the job, a new deployment once the model is free. Every step is checked, so a failure names it.
"""

from __future__ import annotations

import random

import pytest

from central.core.providers import services
from central.firmware import schema
from central.firmware.deployments import COUNTED
from fleet import sqlite
from tests.central.firmware.test_deployments import (
    BARNET_CAMERAS,
    CAMDEN_CAMERAS,
    advance,
    cameras,
    create,
    decide,
    fleet,
    hours_ago,
    lifecycle,
    release,
    results,
    serving,
    show,
)

SERIALS = CAMDEN_CAMERAS + BARNET_CAMERAS


def counted(c) -> dict[tuple[int, int], tuple[int, ...]]:
    """Every phase's counters, as kept."""
    with services(c.app).store.writer.read() as db:
        rows = db.execute(f"SELECT deployment_id, phase, {', '.join(COUNTED)} FROM deployment_phases").fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def recounted(c) -> dict[tuple[int, int], tuple[int, ...]]:
    """Every phase's figures counted afresh from its cameras (phases without one count zeros)."""
    with services(c.app).store.writer.read() as db:
        phases = db.execute("SELECT deployment_id, phase FROM deployment_phases").fetchall()
        rows = db.execute(
            "SELECT deployment_id, phase, COUNT(*), SUM(CASE WHEN state = 'updated' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN failures > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN state = 'gave_up' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN state = 'cancelled' THEN 1 ELSE 0 END), SUM(CASE WHEN results > 0 THEN 1 ELSE 0 END) "
            "FROM deployment_cameras GROUP BY deployment_id, phase"
        ).fetchall()
    found = {(r[0], r[1]): (0,) * len(COUNTED) for r in phases}
    found |= {(r[0], r[1]): tuple(int(n) for n in r[2:]) for r in rows}
    return found


class Walk:
    """One seeded sequence of operations on the deployments of 30 cameras."""

    def __init__(self, client, seed: int) -> None:
        self.c = client
        self.rng = random.Random(seed)
        self.versions = iter(f"1.5.{n}" for n in range(100))
        self.gone: set[str] = set()
        self.current = self.deploy()

    def deploy(self) -> dict:
        version = next(self.versions)
        shares = [*sorted(self.rng.sample([10, 20, 30, 50, 70], self.rng.randint(0, 3))), 100]
        phases = [{"share_pct": s, "max_failure_pct": 30, "min_results": 2, "soak_hours": 1} for s in shares]
        d = create(self.c, release_id=release(self.c, version), phases=phases, policy={"max_attempts": 2})
        d["version"] = version
        return d

    def step(self) -> str:
        state = show(self.c, self.current["id"])["state"]
        moves = {
            "running": ["results"] * 6 + ["pause", "abort", "lifecycle", "soaked"],
            "paused": ["results", "resume", "resume", "abort", "rollback", "lifecycle"],
            "aborted": ["results", "rollback", "deploy_again"],
            "rolled_back": ["results", "deploy_again"],
            "completed": ["results", "deploy_again"],
        }[state]
        move = self.rng.choice(moves)
        getattr(self, move)()
        return f"{move} ({state})"

    def results(self) -> None:
        """Outcomes of offered cameras, some of them repeats or late ones of cameras already final."""
        told = [s for s, camera in cameras(self.c, self.current["id"]).items() if camera["state"] != "waiting"]
        if not told:
            return
        chosen = self.rng.sample(told, self.rng.randint(1, min(len(told), 8)))
        states = cameras(self.c, self.current["id"])
        for serial in chosen:
            attempt = states[serial]["attempt"] if self.rng.random() < 0.8 else 1
            ok = self.rng.random() < 0.6
            results(self.c, self.current["id"], {serial: ok}, attempt=attempt, version=self.current["version"])

    def pause(self) -> None:
        decide(self.c, self.current["id"], "pause")

    def resume(self) -> None:
        decide(self.c, self.current["id"], "resume")

    def abort(self) -> None:
        decide(self.c, self.current["id"], "abort")

    def rollback(self) -> None:
        undone = self.current["id"]
        updated = [s for s, camera in cameras(self.c, undone).items() if camera["state"] == "updated"]
        if not updated:
            return
        self.current = decide(self.c, undone, "rollback", expect=201)
        self.current["version"] = "1.4.2"

    def lifecycle(self) -> None:
        """A camera lost, sent to repair or retired (each camera once: some of these are final)."""
        left = [s for s in SERIALS if s not in self.gone]
        serial = self.rng.choice(left)
        self.gone.add(serial)
        lifecycle(self.c, serial, self.rng.choice(["lost", "repair", "retired"]))

    def soaked(self) -> None:
        hours_ago(self.c, self.current["id"], "opened_at", 2)
        advance(self.c)

    def deploy_again(self) -> None:
        self.current = self.deploy()


@pytest.fixture
def client(tmp_path, vendor):
    with serving(tmp_path / "central", vendor) as c:
        fleet(c)
        yield c


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_the_counters_equal_a_fresh_count_after_any_sequence_of_operations(client, seed):
    release(client, "1.4.2")  # the version the cameras run: what a rollback goes back to
    walk = Walk(client, seed)
    assert counted(client) == recounted(client)
    done = []
    for _ in range(40):
        done.append(walk.step())
        assert counted(client) == recounted(client), f"after {' → '.join(done)}"
    assert {m.split()[0] for m in done} & {"results", "abort", "rollback", "resume"}  # the walk went places

    # The migration that filled the counters of deployments made before them counts the same.
    fill = sqlite.split_statements(schema.STEPS[-1].sql)[-1]
    assert fill.startswith("UPDATE deployment_phases")
    with services(client.app).store.writer.write() as db:
        db.execute(f"UPDATE deployment_phases SET {', '.join(f'{c} = 0' for c in COUNTED)}")
        db.execute(fill)
    assert counted(client) == recounted(client)
