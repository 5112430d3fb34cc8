"""Prometheus config and rules: promtool checks them, and every alert has a unit test."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.observability.support import (
    PROMETHEUS_DIR,
    RULE_TESTS_DIR,
    RULES_DIR,
    alert_names,
    ensure_tool,
    metric_names,
    rules,
)


@pytest.fixture(scope="module")
def promtool() -> str:
    return ensure_tool("promtool")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_rule_files_pass_promtool_check_rules(promtool: str) -> None:
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    assert files, "no rule files in deploy/prometheus/rules"
    result = _run(promtool, "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


def test_rule_unit_tests_pass_promtool_test_rules(promtool: str) -> None:
    files = sorted(str(p) for p in RULE_TESTS_DIR.glob("*.yml"))
    assert files, "no promtool unit tests in deploy/prometheus/tests"
    result = _run(promtool, "test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_scrape_config_passes_promtool_check_config(promtool: str) -> None:
    result = _run(
        promtool, "check", "config", "--syntax-only", str(PROMETHEUS_DIR / "prometheus.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_covers_the_four_services_at_their_compose_hosts() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {
        "redress-intake": ["intake:8001"],
        "redress-routing": ["routing:8002"],
        "redress-recovery": ["recovery:8003"],
        "redress-reporting": ["reporting:8004"],
    }
    # docker-compose mounts deploy/prometheus/rules/ here
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = alert_names()
    assert len(names) == len(set(names)), "alert names must be unique"
    assert set(names) - fired == set(), "alerts without a test that makes them fire"
    assert set(names) - quiet == set(), "alerts without a test that keeps them quiet"
    assert (fired | quiet) - set(names) == set(), "tests of alerts that do not exist"


def test_the_issue_alerts_exist_with_severity_summary_and_runbook() -> None:
    by_name = {r["alert"]: r for r in rules() if "alert" in r}
    assert set(by_name) >= {
        "RedressSlaBreachRateHigh",
        "RedressProjectionLagHigh",
        "RedressConsumerLagHigh",
        "RedressDeadLettersGrowing",
        "RedressIntakeErrorRatioHigh",
        "RedressServiceDown",
    }
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key), f"{name} has no {key}"
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == name.lower(), f"{name}: runbook anchor {anchor}"


def test_runbook_anchors_exist_in_docs() -> None:
    from tests.observability.support import REPO_ROOT

    doc = (REPO_ROOT / "docs" / "observability.md").read_text()
    headings = {
        line.lstrip("#").strip().lower() for line in doc.splitlines() if line.startswith("#")
    }
    for name in alert_names():
        assert name.lower() in headings, f"docs/observability.md has no '### {name}' section"


def test_metric_names_extracted_from_expressions() -> None:
    # the helper the live test relies on to check that alerts read existing series
    assert metric_names(
        'sum by (target) (increase(redress_sla_breaches_total{target="x"}[15m])) offset 10m'
    ) == {"redress_sla_breaches_total"}
    assert metric_names('up{job=~"redress-.+"} == 0 and on (job) x:y:z > 0.5') == {"up", "x:y:z"}
