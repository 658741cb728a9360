"""The simulation's figures: computed once, printed as a table and written as JSON."""

from __future__ import annotations

import json
import os
import platform
from datetime import timedelta
from pathlib import Path
from typing import Any

from simulation.force.check import Check, counts
from simulation.force.deploy import VERSION, DeployLog
from simulation.force.run import Outcome, Plan

PEAK_WINDOW_S = 5.0


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None, "count": 0}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "max": round(ordered[-1], 3), "count": len(ordered)}


def peak_rate(moments: list[float], window: float = PEAK_WINDOW_S) -> float:
    """The most per second over any ``window`` seconds."""
    ordered, best, first = sorted(moments), 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return round(best / window, 1)


def drain(outcome: Outcome, plan: Plan) -> dict:
    """How long after central's return the stations' backlog was back to its level of the day before."""
    back = outcome.outage.back_wall
    start_h = plan.outage_start_h
    before = [s for s in outcome.samples if start_h - 24 <= s.sim_h < start_h]
    during = [
        s
        for s in outcome.samples
        if outcome.outage.stop_wall is not None
        and s.wall >= outcome.outage.stop_wall
        and (back is None or s.wall <= back)
    ]
    normal_clips = max((s.pending_clips for s in before), default=0)
    normal_events = max((s.pending_events for s in before), default=0)
    result: dict[str, float | None] = {
        "normal_backlog_clips": normal_clips,
        "normal_backlog_events": normal_events,
        "outage_peak_clips": max((s.pending_clips for s in during), default=0),
        "outage_peak_events": max((s.pending_events for s in during), default=0),
        "drain_wall_s": None,
        "drain_sim_hours": None,
    }
    if back is None:
        return result
    for s in outcome.samples:
        if s.wall >= back and s.pending_clips <= normal_clips and s.pending_events <= normal_events:
            result["drain_wall_s"] = round(s.wall - back, 1)
            result["drain_sim_hours"] = round((s.wall - back) * plan.speed / 3600, 1)
            break
    return result


def summarise(
    plan: Plan,
    outcome: Outcome,
    result: Check | None,
    *,
    stations: int,
    wall: dict[str, float],
    cpu: dict[str, float],
    command: str,
    keep_requests: dict | None = None,
) -> dict:
    records = outcome.records
    clips = [c for r in records for c in r.clips]
    samples = outcome.samples
    peak_clips = max(samples, key=lambda s: s.pending_clips, default=None)
    peak_events = max(samples, key=lambda s: s.pending_events, default=None)
    outage = outcome.outage
    summary: dict[str, Any] = {  # the JSON document: its values are of every shape
        "command": command,
        "machine": (
            f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"
        ),
        "plan": {
            "devices": plan.devices,
            "boroughs": plan.boroughs,
            "stations": stations,
            "station_hosts": plan.hosts,
            "database": plan.database,
            "replicas": plan.replicas,
            "kill_replica_at_hour": plan.kill_replica_at_hours,
            "days": plan.days,
            "outage_hours": plan.outage_hours,
            "outage_starts_at_hour": plan.outage_start_h,
            "seed": plan.seed,
            "day_seconds": plan.day_seconds,
            "shifts_per_week": plan.model.shifts_per_week,
            "clips_per_shift": plan.model.clips_per_shift,
            "evidential_share": plan.model.evidential_share,
            "clip_bytes": [plan.model.min_clip_bytes, plan.model.max_clip_bytes],
            "month": [outcome.sim_start.isoformat(), None],
        },
        "wall_s": {k: round(v, 1) for k, v in wall.items()},
        "docked": {
            "dockings": len(records),
            "cameras": len({r.serial for r in records}),
            "clips": len(clips),
            "evidential_clips": sum(r.evidential for r in records),
            "bytes": sum(size for _, _, size in clips),
        },
        "backlog": {
            "peak_clips": peak_clips.pending_clips if peak_clips else 0,
            "peak_clips_at_sim_hour": round(peak_clips.sim_h, 1) if peak_clips else None,
            "peak_events": peak_events.pending_events if peak_events else 0,
            "peak_events_at_sim_hour": round(peak_events.sim_h, 1) if peak_events else None,
            "samples": len(samples),
        },
        "outage": {
            "central_stopped_at_wall_s": _round(outage.stop_wall),
            "central_back_at_wall_s": _round(outage.back_wall),
            "central_down_wall_s": _round(outage.back_wall - outage.stop_wall)
            if outage.back_wall is not None and outage.stop_wall is not None
            else None,
            "central_down_sim_hours": round((outage.back_wall - outage.stop_wall) * plan.speed / 3600, 1)
            if outage.back_wall is not None and outage.stop_wall is not None
            else None,
            "central_startup_s": round(outage.startup_s, 1),
            **drain(outcome, plan),
        },
        "replica_kill": {
            "replica": outcome.kill.replica,
            "killed_at_wall_s": _round(outcome.kill.killed_wall),
            "another_leading_after_s": _round(outcome.kill.takeover_s),
            "back_at_wall_s": _round(outcome.kill.back_wall),
        },
        "latency_s": {
            "dock_to_ingested": percentiles(
                [r.wall_ingested - r.wall_docked for r in records if r.wall_ingested is not None]
            )
        },
        "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "drained": outcome.drained,
    }
    summary["plan"]["month"][1] = (outcome.sim_start + timedelta(days=plan.days)).isoformat()
    if result is not None:
        first = min(result.verified_at, default=0.0)
        last = max(result.verified_at, default=0.0)
        summary["central"] = {
            "clips_verified": result.clips.ok,
            "events_stored": sum(result.events_by_kind.values()),
            "events_by_kind": result.events_by_kind,
            "clips_per_s": round(result.clips.ok / (last - first), 1) if last > first else None,
            "peak_clips_per_s": peak_rate(result.verified_at),
            "events_per_s": _rate(result.received_at),
            "peak_events_per_s": peak_rate(result.received_at),
            "devices_tracked": result.devices_tracked,
            "devices_docked": result.devices_docked,
            "devices_showing_last_docking": result.devices_current,
            "battery_readings": result.battery_readings,
        }
        back = outcome.outage.back_wall
        if back is not None and summary["outage"]["drain_wall_s"]:
            window = (outcome.wall_epoch + back, outcome.wall_epoch + back + summary["outage"]["drain_wall_s"])
            during = sum(1 for t in result.verified_at if window[0] <= t <= window[1])
            summary["outage"]["drain_clips_per_s"] = round(during / max(0.1, window[1] - window[0]), 1)
        summary["latency_s"] |= {
            "clip_dock_to_verified": percentiles(result.clip_latency_s["all"]),
            "clip_dock_to_verified_outside_outage": percentiles(result.clip_latency_s["outside_outage"]),
            "telemetry_dock_to_central": percentiles(result.event_latency_s),
        }
        summary["check"] = {
            "clips": counts(result.clips),
            "telemetry": counts(result.telemetry),
            "bytes_spot_check": {"clips": result.bytes_checked, "mismatched": result.bytes_mismatched},
        }
        summary["ok"] = (
            outcome.drained
            and (plan.kill_replica_at_hours is None or outcome.kill.back_wall is not None)
            and not result.clips.bad
            and not result.telemetry.bad
            and not result.bytes_mismatched
            and result.devices_current == result.devices_docked
            and keep_requests is not None
            and keep_requests["wrongful_deletions"] == 0
            and keep_requests["accepted"] == keep_requests["asked"]
        )
    else:
        summary["ok"] = False
    summary["keep_requests"] = keep_requests
    if plan.deploy is not None and outcome.deploy is not None:
        summary["deploy"] = deployment(outcome.deploy, plan)
    summary["samples"] = {
        "columns": [
            "wall_s",
            "sim_hour",
            "central_up",
            "pending_clips",
            "pending_events",
            "verified_clips",
            "failed_folders",
        ],
        "rows": [
            [
                round(s.wall, 2),
                round(s.sim_h, 2),
                s.central_up,
                s.pending_clips,
                s.pending_events,
                s.verified_clips,
                s.failed_folders,
            ]
            for s in samples
        ],
    }
    return summary


def deployment(log: DeployLog, plan: Plan) -> dict:
    """``--deploy``: the cameras' own account by day, next to central's, and the deployment at the end."""
    assert plan.deploy is not None
    by_day = []
    for d in log.days:
        seen = [s for s in log.samples if s.sim_h < d.day * 24]  # central's last word that day
        last = seen[-1] if seen else None
        by_day.append(
            {
                "day": d.day,
                "updated": d.updated,
                "updated_pct": round(100 * d.updated / plan.devices, 1),
                "failed_attempts": d.failed_attempts,
                "cameras_failing": d.cameras_failing,
                "central": None
                if last is None
                else {
                    "state": last.state,
                    "open_phase": last.open_phase,
                    "updated": last.updated,
                    "failed": last.failed,
                },
            }
        )
    final = log.final
    return {
        "version": VERSION,
        "failure_rate": plan.deploy.failure_rate,
        "max_failure_pct": plan.deploy.max_failure_pct,
        "min_results": plan.deploy.min_results,
        "soak_hours": plan.deploy.soak_hours,
        "deployment_id": log.deployment_id,
        "cameras": log.cameras,
        "by_day": by_day,
        "state": final["state"] if final else None,
        "decision": final["decision"] if final else None,
        "figures": final["figures"] if final else None,
        "phases": [
            {"number": p["number"], "share_pct": p["share_pct"], "state": p["state"], **p["figures"]}
            for p in (final["phases"] if final else [])
        ],
    }


def _deploy_rows(dep: dict) -> list[tuple[str, str]]:
    f = dep["figures"] or {}
    rows = [
        (
            "deployment",
            f"{dep['state']} ({dep['decision']}): {f.get('updated', 0):,} of {dep['cameras']:,} cameras "
            f"updated, {f.get('failed', 0)} with a failure, {f.get('gave_up', 0)} gave up, "
            f"{f.get('outstanding', 0):,} outstanding",
        ),
        (
            "deployment phases",
            "; ".join(
                f"{p['number']}: {p['share_pct']} % {p['state']} "
                f"({p['updated']:,}/{p['cameras']:,}, {p['failed']} failed)"
                for p in dep["phases"]
            ),
        ),
        ("updated by day", ", ".join(f"d{d['day']} {d['updated_pct']} %" for d in dep["by_day"])),
    ]
    if dep["by_day"]:
        last = dep["by_day"][-1]
        rows.append(
            (
                "failed update attempts",
                f"{last['failed_attempts']:,} on the cameras; {last['cameras_failing']} cameras' last attempt failed",
            )
        )
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _rate(moments: list[float]) -> float | None:
    if len(moments) < 2:
        return None
    return round(len(moments) / (max(moments) - min(moments)), 1)


def write_json(summary: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")


def table(summary: dict):
    """The summary as a rich table (the JSON has everything, the samples too)."""
    from rich.table import Table

    t = Table(
        title=f"fleet simulate: {summary['plan']['devices']:,} cameras, {summary['plan']['stations']} stations, "
        f"{summary['plan']['days']} days",
        show_header=False,
    )
    t.add_column("figure", style="bold")
    t.add_column("value")
    d, w, b, o, lat = summary["docked"], summary["wall_s"], summary["backlog"], summary["outage"], summary["latency_s"]
    rows = [
        (
            "wall time",
            f"{w['total']:.0f} s (setup {w['setup']:.0f}, month {w['month']:.0f}, drain {w['drain']:.0f}, "
            f"check {w.get('check', 0):.0f})",
        ),
        (
            "docked",
            f"{d['dockings']:,} dockings of {d['cameras']:,} cameras, {d['clips']:,} clips "
            f"({d['bytes'] / (1 << 20):.1f} MiB)",
        ),
    ]
    c = summary.get("central")
    if c:
        rows += [
            (
                "at central",
                f"{c['clips_verified']:,} clips verified, {c['events_stored']:,} events "
                f"({c['events_by_kind'].get('camera_docked', 0):,} dockings' telemetry)",
            ),
            (
                "throughput at central",
                f"{c['clips_per_s']} clips/s and {c['events_per_s']} events/s on average; "
                f"peaks {c['peak_clips_per_s']} clips/s, {c['peak_events_per_s']} events/s",
            ),
            (
                "cameras tracked",
                f"{c['devices_tracked']:,} at central; {c['devices_showing_last_docking']:,} of "
                f"{c['devices_docked']:,} show their last docking",
            ),
        ]
    rows.append(
        (
            "backlog peak",
            f"{b['peak_clips']:,} clips (sim hour {b['peak_clips_at_sim_hour']}), "
            f"{b['peak_events']:,} events (sim hour {b['peak_events_at_sim_hour']})"
            if b["samples"]
            else "not sampled (the month was too short)",
        )
    )
    k = summary["replica_kill"]
    if k["replica"] is not None:
        rows.append(
            (
                "replica SIGKILLed",
                f"replica {k['replica']} (leading) at {k['killed_at_wall_s']} s wall; another led "
                f"{k['another_leading_after_s']} s later; it answered again at {k['back_at_wall_s']} s",
            )
        )
    if o.get("central_down_wall_s") is None:
        rows.append(("outage", "none in this run (--outage 0)"))
    else:
        rows += [
            (
                "outage",
                f"central down {o['central_down_wall_s']} s wall = {o['central_down_sim_hours']} simulated h; "
                f"backlog then up to {o['outage_peak_clips']:,} clips, {o['outage_peak_events']:,} events",
            ),
            (
                "drain after the outage",
                f"{o['drain_wall_s']} s wall = {o['drain_sim_hours']} simulated h "
                f"(back to the day before's {o['normal_backlog_clips']} clips, "
                f"{o['normal_backlog_events']} events)",
            ),
        ]
    for key, label in (
        ("clip_dock_to_verified", "dock → verified, p95"),
        ("clip_dock_to_verified_outside_outage", "… outside the outage, p95"),
        ("telemetry_dock_to_central", "telemetry dock → central, p95"),
        ("dock_to_ingested", "dock → ingested, p95"),
    ):
        if lat.get(key, {}).get("count"):
            rows.append((label, f"{lat[key]['p95']} s (p50 {lat[key]['p50']} s, max {lat[key]['max']} s, wall)"))
    check = summary.get("check")
    if check:
        for what in ("clips", "telemetry"):
            v = check[what]
            rows.append(
                (
                    f"checked: {what}",
                    f"{v['ok']:,} ok, {v['lost']} lost, {v['duplicated']} duplicated, "
                    f"{v['corrupted']} corrupted, {v['unexpected']} unexpected",
                )
            )
        s = check["bytes_spot_check"]
        rows.append(("bytes downloaded and hashed", f"{s['clips']} clips, {s['mismatched']} mismatched"))
    k = summary.get("keep_requests")
    if k:
        rows.append(
            (
                "requests to keep footage",
                f"{k['accepted']} of {k['asked']} taken ({k['open']} left open, {k['narrowed']} narrowed, "
                f"{k['closed']} closed); retention {k['retention_ran_as_of'][:10]}: {k['soft_deleted']:,} deleted, "
                f"{k['held_back']:,} held back; wrongful deletions: {k['wrongful_deletions']}",
            )
        )
    if summary.get("deploy"):
        rows += _deploy_rows(summary["deploy"])
    rows.append(("CPU", ", ".join(f"{k} {v:.0f} s" for k, v in summary["cpu_s"].items())))
    rows.append(
        (
            "verdict",
            "[green]OK: nothing lost, duplicated or corrupted[/]"
            if summary["ok"]
            else "[red]FAILED: see the check, drain and requests figures[/]",
        )
    )
    for name, value in rows:
        t.add_row(name, value)
    return t
