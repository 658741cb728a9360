"""deploy/: the alert rules and the dashboard parse, have the shape Prometheus and Grafana load,
and name only documented metrics (tests/e2e/test_metrics.py checks them against real processes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.support.promql import BUILT_IN, HISTOGRAM_SUFFIXES, check_balanced, metric_names

ROOT = Path(__file__).parents[1]
RULES = ROOT / "deploy" / "prometheus" / "fleet-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "fleet-dashboard.json"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"critical", "warning", "info"}


def alert_rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    rules = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"], group.get("name")
        rules += group["rules"]
    return rules


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    queries = []
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        queries += [target["expr"] for target in panel["targets"]]
    return queries


def documented() -> set[str]:
    names = set(re.findall(r"`(fleet_\w+)`", (ROOT / "docs" / "metrics.md").read_text()))
    return names | {n + s for n in names for s in HISTOGRAM_SUFFIXES if n.endswith("_seconds")} | BUILT_IN


def test_every_alert_rule_has_the_shape_prometheus_loads():
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule["alert"]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
        assert "for" not in rule or DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        check_balanced(rule["expr"])
        assert metric_names(rule["expr"]), f"{rule['alert']} names no metric"


def test_the_alerts_the_issue_asks_for_are_there():
    by_metric = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    for needed in (
        "fleet_central_station_last_seen_timestamp_seconds",  # a station silent for hours
        "fleet_station_oldest_pending_clip_age_seconds",  # the oldest pending clip older than a shift
        "fleet_central_upload_verification_failures_total",  # verification failures
        "fleet_central_data_dir_free_bytes",  # disk filling
        "fleet_central_job_last_success_timestamp_seconds",  # a job not run
        "fleet_central_audit_chain_intact",  # a broken audit chain
    ):
        assert needed in by_metric, needed


def test_rules_and_dashboard_name_only_documented_metrics():
    known = documented()
    for expr in [rule["expr"] for rule in alert_rules()] + dashboard_queries():
        check_balanced(expr)
        assert metric_names(expr) <= known, (expr, metric_names(expr) - known)


def test_metric_names_are_read_out_of_promql():
    expr = 'histogram_quantile(0.95, sum by (le, route) (rate(a_seconds_bucket{route=~"/x|y"}[5m]))) / on(job) b > 3'
    assert metric_names(expr) == {"a_seconds_bucket", "b"}
    assert metric_names('time() - max by (job) (c{job="retention"}) > 26 * 3600 or absent(d)') == {"c", "d"}
