"""Grafana dashboards and provisioning: every panel has a unit, a description and reads
through the `${datasource}` variable; the files are what build_dashboards.py generates."""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import Any

import pytest
import yaml

from tests.observability.support import (
    DASHBOARDS_DIR,
    GRAFANA_DIR,
    dashboards,
    iter_panels,
    substitute_grafana_variables,
)

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# Grafana unit ids used here (Standard options > Unit); a typo shows raw numbers silently.
KNOWN_UNITS = {
    "short",
    "none",
    "s",
    "ms",
    "percentunit",
    "percent",
    "cps",
    "ops",
    "reqps",
    "bool_yes_no",
    "bytes",
}
ALL_PANELS = [
    pytest.param(panel, id=f"{name}:{panel.get('title')}")
    for name, dashboard in dashboards().items()
    for panel in iter_panels(dashboard)
    if panel.get("type") != "row"
]


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    found = dashboards()
    assert {d["uid"] for d in found.values()} == {
        "redress-overview",
        "redress-sla",
        "redress-recovery",
        "redress-pipeline",
    }
    for name, dashboard in found.items():
        assert name == f"{dashboard['uid']}.json"
        assert dashboard["title"].startswith("Redress / ")
        ids = [p["id"] for p in iter_panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"


@pytest.mark.parametrize("dashboard", list(dashboards().values()), ids=lambda d: d["uid"])
def test_dashboard_declares_a_prometheus_datasource_variable(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    # no datasource named by uid or name anywhere in the dashboard
    text = repr(dashboard["panels"])
    assert "redress-prometheus" not in repr(dashboard)
    assert re.search(r"'uid': '(?!\$\{datasource\})", text) is None


@pytest.mark.parametrize("panel", ALL_PANELS)
def test_panel_has_unit_description_and_datasource_variable(panel: dict[str, Any]) -> None:
    title = panel.get("title")
    assert title, "panel without a title"
    assert len(panel.get("description", "").strip()) >= 20, f"{title}: no description"
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    assert unit in KNOWN_UNITS, f"{title}: unit {unit!r}"
    assert panel.get("datasource") == DATASOURCE_REF, f"{title}: panel datasource"
    targets = panel.get("targets", [])
    assert targets, f"{title}: no queries"
    for target in targets:
        assert target.get("datasource") == DATASOURCE_REF, f"{title}: target datasource"
        assert target.get("expr", "").strip(), f"{title}: empty query"
        substitute_grafana_variables(target["expr"])  # only variables we can resolve
    assert len({t["refId"] for t in targets}) == len(targets)


def test_panel_queries_keep_labels_bounded() -> None:
    # Legends and groupings may only use bounded labels, never an id.
    for name, dashboard in dashboards().items():
        for panel in iter_panels(dashboard):
            for target in panel["targets"]:
                text = target["expr"] + target.get("legendFormat", "")
                for forbidden in ("complaint_id", "customer", "incident_id", "event_id"):
                    assert forbidden not in text, f"{name}: {panel['title']}: {forbidden}"


def test_dashboard_files_are_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", GRAFANA_DIR / "build_dashboards.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    rendered = module.rendered()
    assert set(rendered) == set(DASHBOARDS_DIR.glob("*.json"))
    for path, text in rendered.items():
        assert path.read_text() == text, (
            f"{path.name} differs: run deploy/grafana/build_dashboards.py"
        )


def test_provisioning_points_at_the_mounted_dashboards_and_prometheus() -> None:
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/redress.yml").read_text())
    (provider,) = providers["providers"]
    # docker-compose mounts deploy/grafana/dashboards/ here
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert provider["type"] == "file"
    sources = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
