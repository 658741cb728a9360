"""``fleet simulate --deploy``: a firmware release to every camera of the force during the month.

Before the month: a throwaway vendor key is made (a SIMULATION key, new every run, never
written anywhere but the configs' public half), its public key goes into central's and every
station's ``[firmware] release_keys``; once central serves, every camera of the layout is
registered (as a force's registry holds its cameras before they dock), a small release of the
cameras' model is added with the key's signature, and a deployment of it to every camera is
created, in phases (docs/firmware.md). Then the month runs as always: stations learn the offers
through their feed, hand the update to each camera that docks charged and cool enough, and the
simulated cameras apply it when taken out of the dock (failing at ``failure_rate``, seeded).

Measured: the share of cameras running the release at the end of each simulated day (as the
cameras themselves report, whatever central knows yet), their failed attempts, and central's view
of the deployment (state, decision, each phase's figures) through the day and at the end.
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.errors import FleetError
from fleet.firmware import public_key_hex, statement_bytes
from simulation.camera import SimCamera
from simulation.force.usage import Layout

MODEL = "Axon Body 2"
"""The simulated cameras' model (``SimCamera``'s)."""
FROM_VERSION = "1.4.2"
VERSION = "1.5.0-sim"
ARTIFACT_BYTES = 4096
MIN_CHARGE_PCT = 20.0
"""The policy's charge gate. The simulated dock reading is the battery at the end of a shift (8–60 %)
and the station judges that reading alone, so the default 50 % would hold back four docks in five;
20 % still keeps a nearly flat camera from flashing."""


@dataclass(frozen=True)
class DeployPlan:
    """What ``--deploy`` deploys (validated by the command)."""

    failure_rate: float = 0.02
    """The share of update attempts that fail on the camera (every camera, every attempt; seeded)."""
    max_failure_pct: float = 10.0
    """Each phase's threshold: the deployment pauses itself when more of its cameras have failed. Ten,
    for a failure rate of 2 %: at 5 % the third failure in the first 56 results paused a full-force
    run at day 7 (a fleet team sets its threshold well above the rate it expects, or resumes)."""
    max_attempts: int = 3
    phases_pct: tuple[float, ...] = (1.0, 10.0, 50.0, 100.0)
    """The phases' cumulative shares of the cameras (central's default)."""
    min_results: int = 20
    """Each phase's results before it is judged: with a 5 % threshold, fewer than 20 make one failure
    alone a pause, and at a 2 % failure rate a canary's first results would pause it one run in three."""
    soak_hours: float = 72.0
    """Each phase's soak in *simulated* hours (central's default); central is given it in wall hours."""


@dataclass
class DeploySample:
    """Central's view of the deployment at one moment of the month."""

    sim_h: float
    state: str
    open_phase: int | None
    updated: int
    failed: int
    gave_up: int


@dataclass
class DeployDay:
    """The cameras at the end of one simulated day, as they report themselves."""

    day: int
    updated: int
    failed_attempts: int
    cameras_failing: int
    """Cameras whose last attempt failed."""


@dataclass
class DeployLog:
    """What the run saw of the deployment."""

    deployment_id: int | None = None
    release_id: int | None = None
    cameras: int = 0
    days: list[DeployDay] = field(default_factory=list)
    samples: list[DeploySample] = field(default_factory=list)
    final: dict | None = None
    """``GET /api/v1/deployments/{id}`` after the drain."""


class VendorKey:
    """A SIMULATION vendor key: made for one run, kept in memory; only its public half is written."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()

    @property
    def public_hex(self) -> str:
        return public_key_hex(self._key.public_key())

    def sign(self, artifact: bytes, *, model: str, version: str) -> str:
        statement = statement_bytes(
            model=model, version=version, sha256=hashlib.sha256(artifact).hexdigest(), size=len(artifact)
        )
        return base64.b64encode(self._key.sign(statement)).decode()


def artifact(seed: int) -> bytes:
    """A few KiB of firmware: the run is about coordination, not bytes."""
    return random.Random(f"firmware:{seed}").randbytes(ARTIFACT_BYTES)


def start(
    admin: httpx.Client, layout: Layout, key: VendorKey, plan: DeployPlan, seed: int, log: DeployLog, speed: float
) -> None:
    """Register every camera, add the release and create the deployment (central serving). ``speed``:
    simulated seconds per wall second (central's clock is the wall's, so a soak is divided by it)."""
    cameras = [
        {
            "serial": c.serial,
            "model": MODEL,
            "borough": layout.stations[c.home].borough,
            "home_station": layout.stations[c.home].station_id,
        }
        for c in layout.cameras
    ]
    _ok(admin.post("/api/v1/devices/", json=cameras), "registering the cameras")
    body = artifact(seed)
    release = _ok(
        admin.post(
            "/api/v1/firmware/releases",
            params={
                "model": MODEL,
                "version": VERSION,
                "signature": key.sign(body, model=MODEL, version=VERSION),
                "notes": "SIMULATION release made by fleet simulate --deploy",
            },
            content=body,
        ),
        "adding the release",
    )
    deployment = _ok(
        admin.post(
            "/api/v1/deployments",
            json={
                "release_id": release["id"],
                "reason": "fleet simulate --deploy: the month's release to every camera",
                "phases": [
                    {
                        "share_pct": p,
                        "max_failure_pct": plan.max_failure_pct,
                        "min_results": plan.min_results,
                        "soak_hours": plan.soak_hours / speed,
                    }
                    for p in plan.phases_pct
                ],
                "policy": {"max_attempts": plan.max_attempts, "min_charge_pct": MIN_CHARGE_PCT},
            },
        ),
        "creating the deployment",
    )
    log.release_id, log.deployment_id = release["id"], deployment["id"]
    log.cameras = deployment["figures"]["cameras"]


def sample(admin: httpx.Client, log: DeployLog, sim_h: float) -> None:
    """Central's view now (raises httpx errors: central may be down)."""
    if log.deployment_id is None:
        return
    view = _ok(admin.get(f"/api/v1/deployments/{log.deployment_id}"), "reading the deployment")
    # The latest open phase: an earlier one stays open for its stragglers once 90 % closed it.
    open_phase = max((p["number"] for p in view["phases"] if p["state"] == "open"), default=None)
    f = view["figures"]
    log.samples.append(DeploySample(sim_h, view["state"], open_phase, f["updated"], f["failed"], f["gave_up"]))


def count_day(log: DeployLog, day: int, cameras: list[SimCamera], failed_attempts: int) -> None:
    """The cameras' own account at the end of ``day`` (a camera never docked runs what it left with)."""
    failing = [c for c in cameras if c.report is not None and not c.report.ok]
    log.days.append(
        DeployDay(
            day=day,
            updated=sum(c.firmware == VERSION for c in cameras),
            failed_attempts=failed_attempts,
            cameras_failing=len(failing),
        )
    )


def finish(admin: httpx.Client, log: DeployLog) -> None:
    if log.deployment_id is not None:
        log.final = _ok(admin.get(f"/api/v1/deployments/{log.deployment_id}"), "reading the deployment")


def _ok(response: httpx.Response, doing: str) -> dict:
    if response.status_code >= 300:
        raise FleetError(f"--deploy: {doing}: central answered {response.status_code}: {response.text[:300]}")
    return response.json()
