"""docker-compose.yml, checked without a Docker engine: what a broken compose file gets wrong."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import compose as cf

SERVICES = ("intake", "routing", "recovery", "reporting")
DOCS = cf.REPO_ROOT / "docs" / "deploy.md"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return cf.load()


@pytest.fixture(scope="module")
def read_by(tmp_path_factory: pytest.TempPathFactory) -> Any:
    scratch = tmp_path_factory.mktemp("probe")

    @cache
    def read(module: str) -> frozenset[str]:
        return frozenset(cf.variables_read(module, scratch / module))

    return read


def test_has_kafka_the_four_services_prometheus_and_grafana(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert cf.redress_services(compose) == {
        "topics": "redress_kafka.admin",
        **{name: f"redress_{name}" for name in SERVICES},
    }
    assert "prometheus" in services
    assert "grafana" in services


def test_kafka_image_matches_the_broker_version_tests_run(compose: dict[str, Any]) -> None:
    pom = (cf.REPO_ROOT / "tools/kafka/pom.xml").read_text()
    version = pom.split("<kafka.version>")[1].split("</kafka.version>")[0]
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{version}"


def test_depends_on_targets_exist_and_are_health_checked(compose: dict[str, Any]) -> None:
    assert cf.check_depends_on(compose) == []
    for name in SERVICES:
        conditions = cf.depends_on(compose["services"][name])
        assert conditions == {
            "kafka": "service_healthy",
            "topics": "service_completed_successfully",
        }
        assert cf._has_healthcheck(compose["services"][name])


def test_every_mounted_file_is_in_the_repository(compose: dict[str, Any]) -> None:
    assert cf.check_mounts(compose) == []
    mounted = {s for svc in compose["services"].values() for s in cf._bind_sources(svc)}
    # the project's monitoring configuration, written alongside (deploy/prometheus, grafana)
    for needed in (
        "./deploy/prometheus/prometheus.yml",
        "./deploy/prometheus/rules",
        "./deploy/grafana/provisioning",
        "./deploy/grafana/dashboards",
    ):
        assert needed in mounted


def test_no_two_services_publish_the_same_host_port(compose: dict[str, Any]) -> None:
    assert cf.check_ports(compose) == []
    published = {p for s in compose["services"].values() for p, _ in cf.published_ports(s)}
    assert {"8001", "8002", "8003", "8004"} <= published


def test_every_service_environment_names_only_settings_it_reads(
    compose: dict[str, Any], read_by: Any
) -> None:
    assert cf.check_environment(compose, read_by) == []


def test_services_bind_all_interfaces_and_keep_state_in_volumes(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["environment"][f"REDRESS_{name.upper()}_HOST"] == "0.0.0.0"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
    routing = compose["services"]["routing"]
    data_dir = routing["environment"]["REDRESS_ROUTING_DATA_DIR"]
    assert any(v.split(":")[1] == data_dir for v in routing["volumes"])


# ------------------------------------------------------------------ the checks can fail


def _broken(compose: dict[str, Any]) -> dict[str, Any]:
    broken = copy.deepcopy(compose)
    services = broken["services"]
    services["intake"]["depends_on"]["kafak"] = {"condition": "service_healthy"}
    del services["kafka"]["healthcheck"]
    services["reporting"]["depends_on"] = ["routing"]
    services["topics"]["restart"] = "always"
    services["grafana"]["volumes"].append("./deploy/grafana/missing.json:/x.json:ro")
    services["prometheus"]["volumes"].append("/etc/passwd:/etc/passwd:ro")
    services["recovery"]["ports"] = ["127.0.0.1:8001:8003"]
    services["intake"]["environment"]["REDRESS_INTAKE_PROT"] = "8001"
    services["routing"]["environment"]["REDRESS_REPORTING_PORT"] = "8002"
    return broken


def test_a_broken_compose_file_is_caught(compose: dict[str, Any], tmp_path: Path) -> None:
    broken = _broken(compose)

    depends = "\n".join(cf.check_depends_on(broken))
    assert "intake: depends_on unknown service 'kafak'" in depends
    assert "waits for kafka healthy, it has no healthcheck" in depends
    assert "reporting: depends_on routing with 'service_started'" in depends
    assert "waits for topics to complete; it restarts" in depends

    mounts = "\n".join(cf.check_mounts(broken))
    assert "grafana: mounts ./deploy/grafana/missing.json" in mounts
    assert "prometheus: mounts /etc/passwd, outside the repository" in mounts

    assert cf.check_ports(broken) == ["recovery and intake both publish host port 8001"]

    fixed_reads = {
        "redress_intake": {"REDRESS_INTAKE_PORT", "REDRESS_INTAKE_HOST"},
        "redress_routing": {"REDRESS_ROUTING_PORT"},
    }
    env_problems = cf.check_environment(
        {"services": {n: broken["services"][n] for n in ("intake", "routing")}},
        lambda module: fixed_reads[module] | {"REDRESS_KAFKA_BOOTSTRAP_SERVERS"},
    )
    assert "intake: REDRESS_INTAKE_PROT is not a setting redress_intake reads" in env_problems
    assert "routing: REDRESS_REPORTING_PORT is not a setting redress_routing reads" in env_problems


def test_the_probe_sees_nested_and_shared_settings(read_by: Any) -> None:
    intake = read_by("redress_intake")
    assert {"REDRESS_INTAKE_PORT", "REDRESS_KAFKA_BOOTSTRAP_SERVERS"} <= intake
    assert "REDRESS_AUTH_ENABLED" in intake  # the shared auth middleware's settings
    assert "REDRESS_ROUTING_PORT" not in intake
    routing = read_by("redress_routing")
    assert {"REDRESS_ROUTING_RULES_FILE", "REDRESS_KAFKA_TOPIC_PREFIX"} <= routing
    assert "REDRESS_AUTH_ENABLED" not in routing  # faust web: no auth middleware
    admin = read_by("redress_kafka.admin")
    assert "REDRESS_KAFKA_REPLICATION_FACTOR" in admin  # the topics job's replicas


def test_monitoring_configuration_matches_the_compose_stack(compose: dict[str, Any]) -> None:
    """Prometheus scrapes each service where compose runs it and loads the mounted rules;
    Grafana reads dashboards where compose mounts them."""
    root = cf.REPO_ROOT
    prometheus = yaml.safe_load((root / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name in SERVICES:
        port = compose["services"][name]["environment"][f"REDRESS_{name.upper()}_PORT"]
        assert f"{name}:{port}" in targets
    mounts = {
        v.split(":")[0]: v.split(":")[1]
        for s in ("prometheus", "grafana")
        for v in compose["services"][s]["volumes"]
        if v.startswith("./")
    }
    rules_dir = mounts["./deploy/prometheus/rules"]
    assert any(pattern.startswith(rules_dir + "/") for pattern in prometheus["rule_files"])
    assert list((root / "deploy/prometheus/rules").glob("*.yml"))
    providers = yaml.safe_load(
        (root / "deploy/grafana/provisioning/dashboards/redress.yml").read_text()
    )["providers"]
    assert mounts["./deploy/grafana/dashboards"] in {p["options"]["path"] for p in providers}
    assert list((root / "deploy/grafana/dashboards").glob("*.json"))


def test_docs_list_every_variable_each_service_reads(read_by: Any) -> None:
    """docs/deploy.md documents every variable (with its default) that a module reads."""
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \| `", DOCS.read_text(), flags=re.M))
    for module in ("redress_kafka.admin", *(f"redress_{s}" for s in SERVICES)):
        undocumented = sorted(read_by(module) - documented)
        assert not undocumented, f"{module} reads {undocumented}: add them to docs/deploy.md"
