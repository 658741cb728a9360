"""``fleet simulate`` without processes: its options, the usage model, the figures it reports."""

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from fleet.cli import main
from simulation.force.report import drain, peak_rate, percentiles
from simulation.force.run import OutageLog, Outcome, Plan, Sample, month_start
from simulation.force.usage import Month, UsageModel, build_layout, has_worn_pack

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--devices", "0"], "--devices must be between 1 and 999999"),
        (["--boroughs", "0"], "--boroughs must be between"),
        (["--stations-per-borough", "0"], "--stations-per-borough must be between"),
        (["--boroughs", "100", "--stations-per-borough", "10"], "1000 stations is more than this machine can host"),
        (["--days", "0"], "--days must be between"),
        (["--outage", "-1"], "--outage must be at least 0"),
        (["--days", "1", "--outage", "24"], "shorter than the month"),
        (["--outage-at", "700"], "the outage must fall inside the month"),
        (["--day-seconds", "0"], "--day-seconds must be more than 0"),
        (["--shifts-per-week", "8"], "--shifts-per-week must be"),
        (["--clips-per-shift", "-0.5"], "--clips-per-shift must be"),
        (["--evidential-share", "1.5"], "--evidential-share must be"),
        (["--max-clip-kib", "0"], "--max-clip-kib must be"),
        (["--hosts", "0"], "--hosts must be between"),
        (["--replicas", "0"], "--replicas must be between 1 and 8"),
        (["--replicas", "2"], "--replicas N share one PostgreSQL: give --database postgresql"),
        (["--database", "postgresql", "--kill-replica-at", "5"], "--kill-replica-at needs --replicas 2 or more"),
        (["--deploy-failure-rate", "1.5"], "--deploy-failure-rate must be between 0 and 1"),
        (["--deploy-max-failure-pct", "-1"], "--deploy-max-failure-pct must be between 0 and 100"),
        (["--deploy-soak-hours", "-1"], "--deploy-soak-hours must be between 0 and 2160"),
        (["--deploy-min-results", "0"], "--deploy-min-results must be between 1 and 100000"),
        (["--deploy-phases", "1,ten,100"], "--deploy-phases: '1,ten,100' is not a list of numbers"),
        (["--deploy-phases", "1,10,50"], "the last 100"),
        (["--deploy-phases", "50,10,100"], "each share must be larger than the one before"),
        (
            ["--database", "postgresql", "--replicas", "2", "--days", "1", "--outage", "0", "--kill-replica-at", "24"],
            "--kill-replica-at must fall inside the month",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_2(options, message, capsys, tmp_path):
    assert main(["simulate", *options, "--workdir", str(tmp_path / "sim")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fleet: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "sim").exists()  # refused before anything was started or written


def test_a_workdir_that_is_not_a_simulation_is_refused(capsys, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    assert (
        main(
            [
                "simulate",
                "--devices",
                "10",
                "--boroughs",
                "1",
                "--days",
                "1",
                "--outage",
                "0",
                "--workdir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "is not empty and not a previous simulation's" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_layout_shares_cameras_by_officers_and_names_stations_from_the_boroughs_file():
    layout = build_layout(20_000, 32, 2, seed=1)
    assert len(layout.cameras) == 20_000 and len(layout.stations) == 64 and len(layout.boroughs) == 32
    assert {s.station_id for s in layout.stations} >= {"barnet", "colindale", "camden"}
    assert len({s.station_id for s in layout.stations}) == 64
    by_borough = {b: sum(1 for c in layout.cameras if layout.stations[c.home].borough == b) for b in layout.boroughs}
    assert by_borough["Westminster"] > by_borough["Kingston upon Thames"]  # more officers, more cameras
    for camera in layout.cameras:  # neighbours are the other stations of the same borough
        assert camera.home not in camera.neighbours
        assert all(layout.stations[n].borough == layout.stations[camera.home].borough for n in camera.neighbours)


def test_layout_beyond_the_boroughs_file_makes_boroughs_and_stations_up():
    layout = build_layout(1000, 34, 3, seed=1)
    assert layout.boroughs[-1] == "Borough 34" and len(layout.stations) == 102
    assert [s.station_id for s in layout.stations if s.borough == "Borough 34"] == [
        "borough-34-1",
        "borough-34-2",
        "borough-34-3",
    ]
    assert sum(1 for _ in layout.cameras) == 1000


def dockings(seed: int, days: int = 3, model: UsageModel | None = None):
    month = Month(build_layout(2000, 4, 2, seed), UsageModel() if model is None else model, START, seed)
    return [d for day in range(days) for d in month.day(day)]


def test_the_month_is_the_same_for_the_same_seed_and_another_for_another():
    first, again, other = dockings(3), dockings(3), dockings(4)

    def key(ds):
        return [(d.folder_name, d.station, d.battery, [(c.clip_id, c.size, c.seed) for c in d.clips]) for d in ds]

    assert key(first) == key(again)
    assert key(first) != key(other)


def test_usage_follows_the_model():
    model = UsageModel(shifts_per_week=3.5, clips_per_shift=0.8, evidential_share=0.1)
    ds = dockings(5, days=7, model=model)
    assert 0.45 < len(ds) / (2000 * 7) < 0.55  # out on half the days
    clips = [c for d in ds for c in d.clips]
    assert 0.7 < len(clips) / len(ds) < 0.9
    assert 0.07 < sum(c.evidential for c in clips) / len(clips) < 0.13
    assert [d.at for d in ds] == sorted(d.at for d in ds)
    for d in ds:  # docked within 45 minutes of a shift's end (17:00, 01:00, 09:00); clips from the shift
        assert d.at.hour in (17, 1, 9) and d.at.minute < 45, d.at
        shift_end = d.at.replace(minute=0, second=0, microsecond=0)
        assert all(shift_end - timedelta(hours=10) <= c.recorded_at <= shift_end for c in d.clips)
        assert all(1024 <= c.size <= 8192 for c in d.clips)


@pytest.mark.parametrize("now", [datetime(2026, 12, 2, 0, 5, tzinfo=UTC), datetime(2026, 12, 2, 23, 55, tzinfo=UTC)])
def test_every_docking_of_the_month_is_in_the_past_at_any_time_of_day(now):
    """Central takes a docking time no later than the station's report of it: a docking in the future
    would be recorded at the station's clock, and the check would find the camera not current."""
    days = 2
    month = Month(build_layout(500, 1, 1, 1), UsageModel(shifts_per_week=7), month_start(days, now), 1)
    last = max(d.at for day in range(days) for d in month.day(day))
    assert last.date() == (now - timedelta(days=1)).date()  # the night shift docks the morning after
    assert last < now


def test_days_are_generated_in_order():
    month = Month(build_layout(10, 1, 1, 1), UsageModel(), START, 1)
    with pytest.raises(ValueError, match="in order"):
        month.day(1)


def test_percentiles_and_peak_rate():
    assert percentiles([]) == {"p50": None, "p95": None, "max": None, "count": 0}
    figures = percentiles([float(v) for v in range(1, 101)])
    assert (figures["p50"], figures["p95"], figures["max"]) == (51.0, 96.0, 100.0)
    assert peak_rate([0.0, 0.1, 0.2, 10.0, 10.1], window=1.0) == 3.0


def test_drain_is_measured_from_central_back_to_the_days_normal_backlog():
    plan = Plan(days=4, outage_hours=24, day_seconds=10)  # outage from hour 36 to 60: wall 15 s to 25 s
    rows = [
        (5.0, 12, True, 3, 5),
        (10.0, 24, True, 4, 2),
        (16.0, 38.4, False, 50, 90),
        (24.0, 57.6, False, 120, 300),
        (26.0, 62.4, True, 80, 10),
        (30.0, 72.0, True, 4, 1),
        (34.0, 81.6, True, 1, 0),
    ]
    samples = [
        Sample(
            wall=w,
            began=w,
            sim_h=h,
            central_up=up,
            pending_clips=c,
            pending_events=e,
            verified_clips=0,
            failed_folders=0,
        )
        for w, h, up, c, e in rows
    ]
    outcome = Outcome(
        records=[],
        samples=samples,
        outage=OutageLog(stop_wall=15.0, back_wall=25.0),
        sim_start=START,
        month_wall_s=40,
        drain_wall_s=0,
        drained=True,
        wall_epoch=0,
    )
    figures = drain(outcome, plan)
    assert (figures["normal_backlog_clips"], figures["normal_backlog_events"]) == (4, 5)
    assert (figures["outage_peak_clips"], figures["outage_peak_events"]) == (120, 300)
    assert figures["drain_wall_s"] == 5.0 and figures["drain_sim_hours"] == 12.0


def test_the_table_of_a_run_without_an_outage_says_so():
    from rich.console import Console

    from simulation.force.report import summarise, table

    plan = Plan(days=1, outage_hours=0)
    outcome = Outcome(
        records=[],
        samples=[],
        outage=OutageLog(),
        sim_start=START,
        month_wall_s=10,
        drain_wall_s=0,
        drained=True,
        wall_epoch=0,
    )
    summary = summarise(
        plan,
        outcome,
        None,
        stations=2,
        wall={"total": 12.0, "setup": 2.0, "month": 10.0, "drain": 0.0},
        cpu={"central": 1.0},
        command="x",
    )
    console = Console(width=200, record=True)
    console.print(table(summary))
    text = console.export_text()
    assert "none in this run" in text and "None" not in text


def test_statuses_are_sampled_every_5_s_but_at_least_twice_in_the_outage():
    assert Plan().sample_every_s == 5.0  # 24 h outage at 10 s a day: 10 s of wall
    assert Plan(outage_hours=6, day_seconds=6).sample_every_s == 0.75  # 1.5 s of wall
    assert Plan(outage_hours=0).sample_every_s == 5.0
    assert Plan(outage_hours=0.1, day_seconds=1).sample_every_s == 0.5  # never busier than twice a second
    assert Plan(sample_s=1.0).sample_every_s == 1.0


def test_with_replicas_the_leader_is_killed_a_third_of_the_way_through_unless_told_when():
    from simulation.force.cli import plan_from, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def plan(*options: str) -> Plan:
        return plan_from(parser.parse_args(["simulate", *options]))

    assert plan().kill_replica_at_hours is None and plan().database == "sqlite"
    assert plan("--database", "postgresql").kill_replica_at_hours is None  # one replica: nothing to kill
    two = plan("--database", "postgresql", "--replicas", "2")
    assert (two.replicas, two.kill_replica_at_hours) == (2, 240.0)
    assert plan("--database", "postgresql", "--replicas", "2", "--kill-replica-at", "100").kill_replica_at_hours == 100


def test_deploy_options_make_the_deploy_plan():
    from simulation.force.cli import plan_from, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert plan_from(parser.parse_args(["simulate"])).deploy is None
    plan = plan_from(parser.parse_args(["simulate", "--deploy", "--deploy-phases", "5,100"]))
    assert plan.deploy is not None
    assert (plan.deploy.phases_pct, plan.deploy.failure_rate, plan.deploy.max_failure_pct) == ((5.0, 100.0), 0.02, 10.0)
    assert plan.deploy.soak_hours == 72.0  # central's default, in simulated hours
    soaked = plan_from(parser.parse_args(["simulate", "--deploy", "--deploy-soak-hours", "12"]))
    assert soaked.deploy is not None and soaked.deploy.soak_hours == 12.0 and soaked.deploy.min_results == 20


def test_worn_and_hot_packs_only_when_asked_and_the_month_otherwise_unchanged():
    plain, asked = dockings(5), dockings(5, model=UsageModel(worn_share=0.1, hot_share=0.01))
    worn_only = dockings(5, model=UsageModel(worn_share=0.1))  # chosen by serial: the same dockings and clips
    assert [(d.folder_name, d.clips) for d in plain] == [(d.folder_name, d.clips) for d in worn_only]
    health = [100 * d.battery.full_charge_mah / d.battery.design_mah for d in plain]
    assert min(health) >= 81 and max(d.battery.temperature_c for d in plain) <= 38
    worn = [d for d in asked if has_worn_pack(d.serial, 0.1)]
    assert 0.07 < len({d.serial for d in worn}) / len({d.serial for d in asked}) < 0.13  # a tenth of the cameras
    assert all(100 * d.battery.full_charge_mah / d.battery.design_mah < 84.1 for d in worn)
    assert min(100 * d.battery.full_charge_mah / d.battery.design_mah for d in worn) < 80  # some due for replacement
    hot = [d for d in asked if d.battery.temperature_c > 45]
    assert 0.005 < len(hot) / len(asked) < 0.02
