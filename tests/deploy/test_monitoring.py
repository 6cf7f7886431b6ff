"""Alerts and dashboards as code: deploy/prometheus (scrape configuration, alert rules) and
deploy/grafana (provisioning, the dashboard) load, and every expression in them names only
metrics the services export (shared/metrics.py's registry, with the series suffixes Prometheus
gives counters and histograms) or Prometheus's own `up`.

The rule files and the dashboard's queries are checked by Prometheus's own code as `promtool
check rules` does (`deploy/rules-check`: rulefmt and the PromQL parser of the Prometheus
module), which also says which metrics each expression selects."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "delta", "histogram_quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "or", "and", "unless", "bool",
    "offset", "absent", "clamp_min", "clamp_max", "topk", "bottomk", "abs", "time", "vector",
}  # fmt: skip
BUILTIN = {"up"}  # Prometheus's own series of each target
DURATION = re.compile(r"^\d+[smhdw]$")


def exported() -> set[str]:
    """Every series name the registry exposes or will (labelled metrics with no child yet
    included: their families are described)."""
    names: set[str] = set()
    for family in METRICS.registry.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, groupings, ranges, strings
    and numbers taken out first)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    tokens = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {t for t in tokens if t not in PROMQL_WORDS}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((GRAFANA / "dashboards" / "apl-match.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_the_alerts_operators_asked_for_are_there() -> None:
    rules = {rule["alert"]: rule for rule in _rules()}
    assert set(rules) == {
        "AplDeadLettersGrowing",
        "AplConsumerLagHigh",
        "AplOutboxBacklogOld",
        "AplNoticesFailing",
        "AplServiceNotReady",
    }
    assert "> 60" in rules["AplOutboxBacklogOld"]["expr"]  # older than a minute
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook"].startswith("docs/operations.md#"), name
        assert DURATION.match(rule.get("for", "0s")), name


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_expression_names_exported_metrics(source: str) -> None:
    exprs = [r["expr"] for r in _rules()] if source == "alerts" else _dashboard_exprs()
    assert exprs
    known = exported() | BUILTIN
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= known, (expr, sorted(names - known))


def test_the_rules_checker_refuses_an_unknown_metric() -> None:
    assert metric_names('sum by (job) (rate(apl_no_such_total{job="x"}[5m])) > 0') == {
        "apl_no_such_total"
    }
    assert not {"apl_no_such_total"} <= exported()


def test_runbook_anchors_exist_in_the_operations_guide() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in guide.splitlines()
        if line.startswith("#")
    }
    for rule in _rules():
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in anchors, anchor


def test_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    ports = {"apl-placements": 8000, "apl-matching": 8001, "apl-notifications": 8002}
    for job, port in ports.items():
        (sd,) = jobs[job]["dns_sd_configs"]  # one target per replica, found by compose's DNS
        assert sd["port"] == port
        assert jobs[job]["metrics_path"] == "/metrics"


def test_grafana_provisions_the_dashboard_from_the_repository() -> None:
    (source,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((GRAFANA / "dashboards" / "apl-match.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("lag", "dead letters", "outbox", "round", "notices", "http"):
        assert topic in titles, topic


def _rules_check(binary: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *map(str, files)], capture_output=True, text=True, timeout=60, check=False
    )


def test_prometheus_checks_the_alert_rules_and_each_names_exported_metrics(
    rules_check: Path,
) -> None:
    checked = _rules_check(rules_check, PROMETHEUS / "alerts.yml")
    assert checked.returncode == 0, checked.stderr
    rules = json.loads(checked.stdout)
    assert {r["alert"] for r in rules} == {r["alert"] for r in _rules()}
    known = exported() | BUILTIN
    for rule in rules:
        assert rule["metrics"], rule
        assert set(rule["metrics"]) <= known, (rule["alert"], set(rule["metrics"]) - known)
        # the parser's reading agrees with the simpler one above
        assert set(rule["metrics"]) == metric_names(rule["expr"]), rule


def test_prometheus_parses_every_dashboard_query(rules_check: Path, tmp_path: Path) -> None:
    exprs = _dashboard_exprs()
    groups = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"apl:dashboard_panel_{i}", "expr": e} for i, e in enumerate(exprs)
    ]}]}  # fmt: skip
    as_rules = tmp_path / "dashboard.yml"
    as_rules.write_text(yaml.safe_dump(groups))
    checked = _rules_check(rules_check, as_rules)
    assert checked.returncode == 0, checked.stderr
    known = exported() | BUILTIN
    for rule in json.loads(checked.stdout):
        assert rule["metrics"], rule
        assert set(rule["metrics"]) <= known, rule


def test_prometheus_refuses_a_broken_rule_file(rules_check: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n- name: g\n  rules:\n"
        "  - alert: Bad\n    expr: sum by (job (apl_ready)\n"
        "  - alert: Templated\n    expr: up == 0\n"
        "    annotations: {summary: '{{ $labels.job '}\n"
    )
    checked = _rules_check(rules_check, broken)
    assert checked.returncode == 1
    assert "Bad" in checked.stderr or "parse error" in checked.stderr, checked.stderr
    assert "Templated" in checked.stderr or "template" in checked.stderr, checked.stderr
