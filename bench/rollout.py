"""Roll-out planner: plan the reference scenario, then allocate 20,000 cameras to 20,000 officers.

*Plan*: ``central.rollout.plan`` on config/boroughs.toml + config/rollout.toml (32 boroughs,
20,410 officers; includes the remedy searches, each a full re-plan). *Allocate*: a fresh
central database with 20,000 officers in 32 boroughs and 20,000 cameras in stock; the
proposal (``RolloutService.propose``) and its commit (assignments, lifecycle, history,
audit, changes feed, one transaction, ``synchronous=FULL``). The target (< 2 s on 2 cores)
is for plan + propose + commit together; medians of the rounds.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.common import machine, median

CONFIG = Path(__file__).resolve().parents[1] / "config"
SCENARIO = """
units = 20000
start = 2026-11-30
deadline = 2027-06-30
deliveries_per_week = 2000
training_places_per_week = 100
default_policy = "personal"
"""


def _central(root: Path, officers: int, devices: int):
    from central.core.services import build_services
    from central.core.store import CentralStore
    from central.registry.devices import DeviceRegistration
    from fleet.config import CentralSettings, settings_from_dict
    from fleet.events import Officer

    per = officers // 32
    (root / "boroughs.toml").write_text(
        "".join(f'[boroughs."B{b:02d}"]\nresponse = {per}\nstations = {{ s{b:02d} = {per} }}\n' for b in range(32))
    )
    (root / "rollout.toml").write_text(SCENARIO)
    settings = settings_from_dict(
        {
            "data_dir": str(root / "central"),
            "admin_token": "bench-admin-token",
            "fleet": {"default_assignment_mode": "personal"},
            "rollout": {"boroughs": str(root / "boroughs.toml"), "scenario": str(root / "rollout.toml")},
        },
        CentralSettings,
    )
    store = CentralStore(settings.data_dir)
    services = build_services(settings, store)
    services.officers.upsert(
        [
            Officer(officer_id=f"PC{b:02d}{i:05d}", borough=f"B{b:02d}", role="response")
            for b in range(32)
            for i in range(per)
        ],
        "bench",
    )
    services.devices.register([DeviceRegistration(serial=f"BWV-{i:06d}") for i in range(devices)], "bench")
    return store, services.rollout


def run(rounds: int = 5, officers: int = 20_000) -> dict:
    from central.rollout.plan import plan
    from central.rollout.scenario import load_rollout
    from central.rollout.service import ProposeRequest

    times: dict[str, list[float]] = {"plan": [], "propose": [], "commit": [], "total": []}
    for _ in range(rounds):
        root = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
        try:
            store, service = _central(root, officers, officers)
            start = time.perf_counter()
            result = plan(load_rollout(CONFIG / "boroughs.toml", CONFIG / "rollout.toml"))
            planned = time.perf_counter()
            proposal = service.propose(ProposeRequest(), "bench")
            proposed = time.perf_counter()
            service.commit(proposal.id, "bench")
            committed = time.perf_counter()
            store.close()
            assert len(proposal.items) == officers and result.officers_in_scope == 20_410
            times["plan"].append(planned - start)
            times["propose"].append(proposed - planned)
            times["commit"].append(committed - proposed)
            times["total"].append(committed - start)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "machine": machine(),
        "officers": officers,
        "devices": officers,
        "rounds": rounds,
        "seconds": times,
        "median_s": {k: round(median(v), 3) for k, v in times.items()},
        "target_s": 2.0,
    }
