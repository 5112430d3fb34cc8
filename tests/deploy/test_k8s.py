"""deploy/k8s: every overlay builds with kustomize, every object validates with
kubernetes-validate --strict, and the project's rules hold (tests/deploy/k8s.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from redress_events.topics import TOPICS, TopicName
from redress_recovery.processor import PROCESSED_TOPICS
from redress_reporting.projector import PROJECTED_TOPICS

from tests.deploy import compose as cf
from tests.deploy import k8s

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def kustomize() -> Path:
    return k8s.ensure_kustomize()


@pytest.fixture(scope="module")
def built(kustomize: Path) -> dict[str, list[Obj]]:
    return {
        overlay: k8s.build(kustomize, k8s.K8S / "overlays" / overlay) for overlay in k8s.OVERLAYS
    }


@pytest.fixture(scope="module")
def read_by(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], frozenset[str]]:
    scratch = tmp_path_factory.mktemp("probe")

    @cache
    def read(module: str) -> frozenset[str]:
        return frozenset(cf.variables_read(module, scratch / module))

    return read


def _deployment(objects: list[Obj], service: str) -> Obj:
    return next(
        d for d in k8s.of_kind(objects, "Deployment") if k8s.name(d) == f"redress-{service}"
    )


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
@pytest.mark.parametrize("version", k8s.KUBERNETES_VERSIONS)
def test_overlay_validates_strictly(
    built: dict[str, list[Obj]], overlay: str, version: str, tmp_path: Path
) -> None:
    objects = built[overlay]
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = k8s.kubernetes_validate(path, version)
    assert k8s.validation_problems(result, objects, version) == [], result.stdout + result.stderr


def test_the_validator_rejects_a_misspelt_field(
    built: dict[str, list[Obj]], tmp_path: Path
) -> None:
    objects = copy.deepcopy(built["prod"])
    container = k8s.pod_spec(_deployment(objects, "intake"))["containers"][0]
    container["readinesProbes"] = container.pop("readinessProbe")
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    version = k8s.KUBERNETES_VERSIONS[-1]
    result = k8s.kubernetes_validate(path, version)
    problems = k8s.validation_problems(result, objects, version)
    assert result.returncode != 0
    assert any(
        "deployment/redress-intake" in p and "'readinesProbes' was unexpected" in p
        for p in problems
    ), problems


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
def test_overlay_follows_the_project_rules(built: dict[str, list[Obj]], overlay: str) -> None:
    assert k8s.all_problems(built[overlay]) == []


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
def test_every_service_is_deployed_with_service_pdb_monitor(
    built: dict[str, list[Obj]], overlay: str
) -> None:
    objects = built[overlay]
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"):
        names = {k8s.name(o) for o in k8s.of_kind(objects, kind)}
        assert {f"redress-{s}" for s in ("intake", "routing", "recovery", "reporting")} <= names
    for deployment in k8s.of_kind(objects, "Deployment"):
        for container in k8s.containers(deployment):
            assert container["image"].startswith("ghcr.io/redress/redress:"), container["image"]


def test_consumes_annotations_tell_the_truth(built: dict[str, list[Obj]]) -> None:
    """The HPA ceilings rest on what each service consumes: compare with the code."""
    objects = built["prod"]
    expected = {
        "intake": [TopicName.INBOUND],
        "routing": [TopicName.COMPLAINTS, TopicName.ROUTING, TopicName.CASES],
        "recovery": list(PROCESSED_TOPICS),
        "reporting": list(PROJECTED_TOPICS),
    }
    for service, topics in expected.items():
        assert sorted(k8s.consumed_topics(_deployment(objects, service))) == sorted(topics)
    hpas = {k8s.name(h): h for h in k8s.of_kind(objects, "HorizontalPodAutoscaler")}
    assert (
        hpas["redress-reporting"]["spec"]["maxReplicas"] == TOPICS[TopicName.INCIDENTS].partitions
    )
    assert "redress-reporting" not in {
        k8s.name(h) for h in k8s.of_kind(built["dev"], "HorizontalPodAutoscaler")
    }


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
def test_container_environment_names_only_settings_the_service_reads(
    built: dict[str, list[Obj]], overlay: str, read_by: Callable[[str], frozenset[str]]
) -> None:
    for workload in (o for o in built[overlay] if o["kind"] in k8s.WORKLOADS):
        for container in k8s.containers(workload):
            module = container["args"][0]
            unread = {e["name"] for e in container.get("env", [])} - read_by(module)
            assert not unread, f"{k8s.name(workload)}: {module} does not read {sorted(unread)}"


def test_rules_policy_and_dashboards_come_from_the_repository(built: dict[str, list[Obj]]) -> None:
    from redress_recovery.policy import load_policy as load_recovery_policy
    from redress_routing.config import load_policy as load_routing_policy

    root = k8s.REPO_ROOT
    objects = built["prod"]
    maps = {k8s.name(cm): cm for cm in k8s.of_kind(objects, "ConfigMap")}

    def generated(prefix: str) -> Obj:
        return next(cm for n, cm in maps.items() if n.startswith(prefix + "-"))

    rules_file = root / "services/routing/redress_routing/rules.yaml"
    rules = generated("redress-routing-rules")
    assert rules["data"]["rules.yaml"] == rules_file.read_text()
    load_routing_policy(rules_file)  # the file shipped is one routing accepts
    policy_file = root / "services/recovery/redress_recovery/policy.yaml"
    assert generated("redress-recovery-policy")["data"]["policy.yaml"] == policy_file.read_text()
    load_recovery_policy(policy_file)

    routing = k8s.pod_spec(_deployment(objects, "routing"))
    container = routing["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "rules")
    assert env["REDRESS_ROUTING_RULES_FILE"] == f"{mount['mountPath']}/rules.yaml"
    volume = next(v for v in routing["volumes"] if v["name"] == "rules")
    assert volume["configMap"]["name"] == k8s.name(rules)

    dashboards = maps["redress-grafana-dashboards"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    on_disk = {p.name: p.read_text() for p in (root / "deploy/grafana/dashboards").glob("*.json")}
    assert on_disk, "deploy/grafana/dashboards has no dashboards"
    assert dashboards["data"] == on_disk


def test_strimzi_topics_are_optional_and_match_topics_py(built: dict[str, list[Obj]]) -> None:
    assert k8s.of_kind(built["dev"], "KafkaTopic") == []
    assert {k8s.name(j) for j in k8s.of_kind(built["dev"], "Job")} == {"redress-topics"}
    topics = k8s.of_kind(built["prod"], "KafkaTopic")
    assert len(topics) == len(TOPICS)
    assert k8s.check_topics(topics) == []


def test_prod_reads_credentials_from_secrets(built: dict[str, list[Obj]]) -> None:
    objects = built["prod"]
    assert k8s.of_kind(objects, "Secret") == []
    for deployment in k8s.of_kind(objects, "Deployment"):
        env = {e["name"]: e for e in k8s.pod_spec(deployment)["containers"][0]["env"]}
        ref = env["REDRESS_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "redress-kafka-credentials", "key": "password"}
    reporting = k8s.pod_spec(_deployment(objects, "reporting"))["containers"][0]
    database = next(e for e in reporting["env"] if e["name"] == "REDRESS_REPORTING_DATABASE_URL")
    assert database["valueFrom"]["secretKeyRef"]["name"] == "redress-reporting-database"


# ------------------------------------------------------------------ the rules can fail


def _break(objects: list[Obj]) -> list[Obj]:
    broken = copy.deepcopy(objects)
    intake = _deployment(broken, "intake")
    container = k8s.pod_spec(intake)["containers"][0]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    container["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}
    del container["livenessProbe"]
    del container["resources"]["limits"]
    container["env"].append({"name": "REDRESS_KAFKA_SASL_PASSWORD", "value": "hunter2"})
    routing = k8s.pod_spec(_deployment(broken, "routing"))
    routing["volumes"] = [v for v in routing["volumes"] if v["name"] != "data"]
    routing["containers"][0]["volumeMounts"] = [
        m for m in routing["containers"][0]["volumeMounts"] if m["name"] != "data"
    ]
    recovery = k8s.pod_spec(_deployment(broken, "recovery"))["containers"][0]
    recovery["readinessProbe"] = copy.deepcopy(recovery["livenessProbe"])
    for obj in broken:
        if obj["kind"] == "PodDisruptionBudget" and k8s.name(obj) == "redress-routing":
            obj["spec"] = {"maxUnavailable": 0, "selector": obj["spec"]["selector"]}
        if obj["kind"] == "PodDisruptionBudget" and k8s.name(obj) == "redress-recovery":
            obj["spec"] = {"minAvailable": 2, "selector": obj["spec"]["selector"]}
        if obj["kind"] == "HorizontalPodAutoscaler" and k8s.name(obj) == "redress-reporting":
            obj["spec"]["maxReplicas"] = 6
        if obj["kind"] == "NetworkPolicy" and k8s.name(obj) == "redress-allow-dns":
            obj["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "nobody"}}
        if obj["kind"] == "ServiceMonitor" and k8s.name(obj) == "redress-reporting":
            obj["spec"]["endpoints"][0]["port"] = "metrics"
        if obj["kind"] == "KafkaTopic" and obj["spec"]["topicName"] == "redress.routing.incidents":
            obj["spec"]["partitions"] = 6
    return broken


def test_broken_manifests_are_caught(built: dict[str, list[Obj]]) -> None:
    problems = "\n".join(k8s.all_problems(_break(built["prod"])))
    for expected in (
        "redress-intake/intake: allowPrivilegeEscalation is not false",
        "redress-intake/intake: adds capabilities",
        "redress-intake/intake: no livenessProbe",
        "redress-intake/intake: no cpu limit",
        "redress-intake: REDRESS_KAFKA_SASL_PASSWORD has an inline value",
        "redress-routing/routing: /var/lib/redress/routing must be written but is no emptyDir",
        "redress-recovery/recovery: startup, liveness and readiness probes do not differ",
        "PDB/redress-routing: maxUnavailable 0 blocks every drain",
        "PDB/redress-recovery: minAvailable 2 with 2 replicas can block a drain",
        "HPA/redress-reporting: maxReplicas 6 > 3 partitions",
        "redress-intake: no egress to DNS",
        "ServiceMonitor/redress-reporting: no port",
        "redress.routing.incidents: 6 partitions, not 3",
    ):
        assert expected in problems, f"{expected!r} not caught in:\n{problems}"
