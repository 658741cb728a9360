"""A total-queue checker in the style of Jepsen's: every clip and event created is accounted for.

The history says what the outside world did: which clips it docked (with the SHA-256 of
their bytes) and which docks produced telemetry, and which of them were in flight when a
fault fired. Central's final state says what arrived. Each created item is then exactly
one of:

- **ok**: at central once, intact, and no fault touched it;
- **recovered**: at central once and intact, although a fault fired while it was in flight;
- **lost**: not at central;
- **duplicated**: at central more than once (a clip's bytes under two ids or in two blobs,
  an event stored under two sequence numbers);
- **corrupted**: at central, but its recorded or stored bytes differ from what was created.

Items at central that nobody created are **unexpected**. Beyond the items, central's own
bookkeeping must add up (``check_effects``): every event it acknowledged applied, each
docking's effect (its battery reading) there once, the audit chain intact; a break is a
**violation**. A run is valid only
with zero lost, duplicated, corrupted and unexpected, and no violation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

OUTCOMES = ("ok", "recovered", "lost", "duplicated", "corrupted")
BAD = ("lost", "duplicated", "corrupted", "unexpected")


@dataclass(frozen=True)
class CreatedClip:
    clip_id: str
    sha256: str
    size: int
    station_id: str


@dataclass(frozen=True)
class CreatedDock:
    """One docked camera folder: central must hold its telemetry once (a ``camera_docked`` event)."""

    station_id: str
    folder: str
    serial: str
    battery_pct: float
    clip_ids: tuple[str, ...] = ()


@dataclass
class History:
    clips: dict[str, CreatedClip] = field(default_factory=dict)
    docks: dict[tuple[str, str], CreatedDock] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)
    """Ids of items (clip ids, ``station/folder`` for docks) in flight when a fault fired."""

    def created_clip(self, clip: CreatedClip) -> None:
        self.clips[clip.clip_id] = clip

    def created_dock(self, dock: CreatedDock) -> None:
        self.docks[dock.station_id, dock.folder] = dock

    def fault_fired(self, settled_clips: set[str]) -> None:
        """Everything created and not yet verified at central is in flight: mark it touched.

        A dock counts as in flight until all its clips are verified (its event goes up with them).
        """
        self.touched |= {c for c in self.clips if c not in settled_clips}
        self.touched |= {
            f"{s}/{f}" for (s, f), d in self.docks.items() if not all(c in settled_clips for c in d.clip_ids)
        }


@dataclass(frozen=True)
class CentralClip:
    clip_id: str
    sha256: str
    """What central recorded."""
    size: int
    state: str
    content_sha256: str | None
    """The SHA-256 of the bytes central serves for it (None if it could not serve them)."""


@dataclass(frozen=True)
class CentralEvent:
    station_id: str
    seq: int
    kind: str
    body: dict


@dataclass
class Verdict:
    clips: Counter = field(default_factory=Counter)
    docks: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    """Central's bookkeeping that does not add up (``check_effects``); each is also a problem."""

    @property
    def valid(self) -> bool:
        return not any(self.clips[b] or self.docks[b] for b in BAD) and not self.violations

    def violated(self, what: str) -> None:
        self.violations.append(what)
        self.problems.append(what)

    def as_dict(self) -> dict:
        return {
            "clips": {k: self.clips[k] for k in (*OUTCOMES, "unexpected")},
            "docks": {k: self.docks[k] for k in (*OUTCOMES, "unexpected")},
            "violations": len(self.violations),
            "valid": self.valid,
        }


def check(history: History, clips: list[CentralClip], blob_count: int, events: list[CentralEvent]) -> Verdict:
    """Classify every created clip and dock against central's final state."""
    verdict = Verdict()
    by_id: dict[str, list[CentralClip]] = {}
    for c in clips:
        by_id.setdefault(c.clip_id, []).append(c)

    for clip_id, created in history.clips.items():
        found = by_id.get(clip_id, [])
        if not found or found[0].state != "verified":
            outcome = "lost"
        elif len(found) > 1:
            outcome = "duplicated"
        elif (found[0].sha256, found[0].size, found[0].content_sha256) != (
            created.sha256,
            created.size,
            created.sha256,
        ):
            outcome = "corrupted"
        else:
            outcome = "recovered" if clip_id in history.touched else "ok"
        verdict.clips[outcome] += 1
        if outcome not in ("ok", "recovered"):
            verdict.problems.append(
                f"clip {clip_id} from {created.station_id}: {outcome} "
                f"(central: {[(c.state, c.sha256[:12], c.size) for c in found]})"
            )
    for clip_id in set(by_id) - set(history.clips):
        verdict.clips["unexpected"] += 1
        verdict.problems.append(f"clip {clip_id} at central was never docked")
    if blob_count != len(by_id):
        verdict.clips["duplicated"] += max(0, blob_count - len(by_id))
        verdict.problems.append(f"{blob_count} blobs for {len(by_id)} clips")

    docked: dict[tuple[str, str], list[CentralEvent]] = {}
    for e in events:
        if e.kind == "camera_docked":
            docked.setdefault((e.station_id, e.body["folder"]), []).append(e)
    for key, dock in history.docks.items():
        arrived = docked.get(key, [])
        if not arrived:
            outcome = "lost"
        elif len(arrived) > 1:
            outcome = "duplicated"
        elif (arrived[0].body["device"]["serial"], float(arrived[0].body["device"]["battery"]["level_pct"])) != (
            dock.serial,
            dock.battery_pct,
        ):
            outcome = "corrupted"
        else:
            outcome = "recovered" if f"{key[0]}/{key[1]}" in history.touched else "ok"
        verdict.docks[outcome] += 1
        if outcome not in ("ok", "recovered"):
            verdict.problems.append(f"dock {key[0]}/{key[1]}: {outcome} ({len(arrived)} events at central)")
    for key in set(docked) - set(history.docks):
        verdict.docks["unexpected"] += 1
        verdict.problems.append(f"dock event for {key[0]}/{key[1]} at central was never docked")
    return verdict


def check_effects(
    verdict: Verdict,
    history: History,
    *,
    behind: dict[str, tuple[int, int]],
    readings: Counter[str],
    chain: tuple[bool, str],
) -> None:
    """Central's bookkeeping after the run: every event applied, once; the audit chain intact.

    ``behind``: stations whose ``applied_seq`` is short of their ``acked_seq``; ``readings``:
    battery readings per camera serial (each docked camera docked once, so exactly one each:
    none is a docking never applied, two one applied twice); ``chain``: the audit chain's
    verification (intact, and why not). (That every station's mirror of the changes feed
    reached its end is waited for before: ``Runner.wait_quiet``.)
    """
    for station, (applied, acked) in sorted(behind.items()):
        verdict.violated(f"{station}: events acknowledged up to {acked} but applied only up to {applied}")
    for (station, folder), dock in history.docks.items():
        if readings[dock.serial] != 1:
            verdict.violated(
                f"dock {station}/{folder}: {readings[dock.serial]} battery readings for {dock.serial} (applied "
                f"{'never' if not readings[dock.serial] else 'more than once'})"
            )
    intact, reason = chain
    if not intact:
        verdict.violated(f"audit chain broken: {reason}")
