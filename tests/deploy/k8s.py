"""Offline checks of the Kubernetes manifests (deploy/k8s): building them with kustomize (which
the test setup installs with `go install`), validating them with kubernetes-validate, and the
project's own rules. Each check returns a list of problems, so tests show both that the real
manifests pass and that broken ones are caught."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from redress_events.topics import TOPICS, TopicName

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.8.1"  # v5.8.2+ needs Go >= 1.27
CACHE_BIN = REPO_ROOT / ".cache" / "bin"
# Validated against a supported older release and the newest schema kubernetes-validate has
# (the preStop `sleep` action is on by default since Kubernetes 1.30).
KUBERNETES_VERSIONS = ("1.33", "1.37")
CUSTOM_KINDS = {"ServiceMonitor", "KafkaTopic"}  # CRDs: kubernetes-validate has no schema
WORKLOADS = {"Deployment", "Job"}

Obj = dict[str, Any]


# ------------------------------------------------------------------ tools


def ensure_kustomize() -> Path:
    """The pinned kustomize in .cache/bin, installed with `go install` when missing."""
    binary = CACHE_BIN / "kustomize"
    if binary.exists():
        version = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, check=False, timeout=30
        ).stdout
        if KUSTOMIZE_VERSION in version:
            return binary
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise RuntimeError("kustomize is installed with `go install`: Go is not on PATH")
    CACHE_BIN.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(CACHE_BIN), "GOTOOLCHAIN": "local"}
    result = subprocess.run(
        [go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0 or not binary.exists():
        raise RuntimeError(f"go install kustomize failed:\n{result.stderr[-3000:]}")
    return binary


def build(kustomize: Path, path: Path) -> list[Obj]:
    result = subprocess.run(
        [str(kustomize), "build", "--load-restrictor", "LoadRestrictionsNone", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build {path} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kubernetes_validate(path: Path, version: str) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("kubernetes-validate")
    return subprocess.run(
        [str(tool), "-k", version, "--strict", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def validation_problems(
    result: subprocess.CompletedProcess[str], objects: list[Obj], version: str
) -> list[str]:
    """kubernetes-validate's verdict, read strictly: exit 0, every built-in object passed,
    and warnings only for the CRD kinds it has no schema for."""
    out = result.stdout + result.stderr
    problems = [line for line in out.splitlines() if line.startswith(("ERROR", "FAIL"))]
    if result.returncode != 0:
        problems.append(f"kubernetes-validate -k {version} exited {result.returncode}")
    for line in out.splitlines():
        if line.startswith("WARN") and not any(f"kind {k} " in line for k in CUSTOM_KINDS):
            problems.append(line)
    passed = len(re.findall(r"^INFO .* passed for resource", out, flags=re.M))
    builtin = sum(1 for o in objects if o["kind"] not in CUSTOM_KINDS)
    if passed != builtin:
        problems.append(f"{passed} objects passed validation, {builtin} were built")
    return problems


# ------------------------------------------------------------------ navigation


def of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def containers(workload: Obj) -> Iterator[Obj]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def labels_match(selector: Obj, labels: Obj) -> bool:
    wanted = selector.get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def template_labels(workload: Obj) -> Obj:
    return workload["spec"]["template"]["metadata"].get("labels", {})  # type: ignore[no-any-return]


# ------------------------------------------------------------------ project rules


def check_security(objects: list[Obj]) -> list[str]:
    """Restricted Pod Security for every container of every workload."""
    problems = []
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        pod = pod_spec(workload)
        pod_ctx = pod.get("securityContext", {})
        for c in containers(workload):
            where = f"{workload['kind']}/{name(workload)}/{c['name']}"
            ctx = c.get("securityContext", {})
            if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot is not true")
            if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
                problems.append(f"{where}: runs as uid 0")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities do not drop ALL")
            if ctx.get("capabilities", {}).get("add"):
                problems.append(f"{where}: adds capabilities")
            seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if ctx.get("privileged"):
                problems.append(f"{where}: privileged")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            problems.append(f"{name(workload)}: shares a host namespace")
    return problems


def check_writable_paths(objects: list[Obj]) -> list[str]:
    """With a read-only root, whatever must be written is an emptyDir: /tmp, every data dir."""
    problems = []
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        for c in containers(workload):
            where = f"{name(workload)}/{c['name']}"
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            for mount in mounts.values():
                if mount["name"] not in volumes:
                    problems.append(f"{where}: mounts undeclared volume {mount['name']}")
            needed = ["/tmp"] + [
                e["value"] for e in c.get("env", []) if e["name"].endswith("_DATA_DIR")
            ]
            for path in needed:
                mount = mounts.get(path)
                volume = volumes.get(mount["name"]) if mount else None
                if volume is None or not ({"emptyDir", "persistentVolumeClaim"} & set(volume)):
                    problems.append(f"{where}: {path} must be written but is no emptyDir")
                elif mount and mount.get("readOnly"):
                    problems.append(f"{where}: {path} is mounted read-only")
    return problems


def _probe_key(probe: Obj) -> tuple[Any, ...]:
    action = probe.get("httpGet", {}).get("path")
    return (action, probe.get("periodSeconds"), probe.get("failureThreshold"))


def check_probes_and_resources(objects: list[Obj]) -> list[str]:
    problems = []
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        for c in containers(workload):
            where = f"{workload['kind']}/{name(workload)}/{c['name']}"
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(part, {}):
                        problems.append(f"{where}: no {resource} {part[:-1]}")
            if workload["kind"] != "Deployment":
                continue
            port_names = {p.get("name") for p in c.get("ports", [])}
            probes = {k: c.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
            for kind, probe in probes.items():
                if not probe:
                    problems.append(f"{where}: no {kind}")
                    continue
                port = probe.get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in port_names:
                    problems.append(f"{where}: {kind} uses unknown port {port}")
            if not all(probes.values()):
                continue
            if len({_probe_key(p) for p in probes.values()}) < 3:
                problems.append(f"{where}: startup, liveness and readiness probes do not differ")
            ready = probes["readinessProbe"]["httpGet"]["path"]
            alive = probes["livenessProbe"]["httpGet"]["path"]
            if ready != "/readyz" or alive != "/healthz":
                problems.append(f"{where}: readiness must ask /readyz and liveness /healthz")
            startup = probes["startupProbe"]
            budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
            if budget < 30:
                problems.append(f"{where}: startup allows only {budget}s")
    return problems


def check_services(objects: list[Obj]) -> list[str]:
    problems = []
    deployments = of_kind(objects, "Deployment")
    for service in of_kind(objects, "Service"):
        selected = [
            d
            for d in deployments
            if labels_match({"matchLabels": service["spec"]["selector"]}, template_labels(d))
        ]
        if not selected:
            problems.append(f"Service/{name(service)} selects no Deployment")
        for port in service["spec"]["ports"]:
            if not port.get("name"):
                problems.append(f"Service/{name(service)}: port {port['port']} has no name")
            target = port.get("targetPort")
            for d in selected:
                names = {p.get("name") for c in containers(d) for p in c.get("ports", [])}
                if isinstance(target, str) and target not in names:
                    problems.append(f"Service/{name(service)}: {name(d)} has no port {target}")
    for d in deployments:
        if not any(
            labels_match({"matchLabels": s["spec"]["selector"]}, template_labels(d))
            for s in of_kind(objects, "Service")
        ):
            problems.append(f"Deployment/{name(d)} has no Service")
    return problems


SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "DATABASE_URL", "PRIVATE")


def check_secrets(objects: list[Obj]) -> list[str]:
    """Secrets are referenced (secretKeyRef, secret volumes), never inlined."""
    problems = [
        f"Secret/{name(s)} is inlined in the manifests"
        for s in of_kind(objects, "Secret")
        if s.get("data") or s.get("stringData")
    ]
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        for c in containers(workload):
            for env in c.get("env", []):
                if any(w in env["name"] for w in SECRET_WORDS) and "value" in env:
                    problems.append(f"{name(workload)}: {env['name']} has an inline value")
    for cm in of_kind(objects, "ConfigMap"):
        for key in cm.get("data", {}):
            if any(w.lower() in key.lower() for w in SECRET_WORDS):
                problems.append(f"ConfigMap/{name(cm)}: {key} looks like a secret")
    return problems


def check_config_refs(objects: list[Obj]) -> list[str]:
    """Every configMapKeyRef / configMap volume names a ConfigMap (and key) in the build."""
    maps = {name(cm): cm.get("data", {}) for cm in of_kind(objects, "ConfigMap")}
    problems = []
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        for c in containers(workload):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref and (ref["name"] not in maps or ref["key"] not in maps[ref["name"]]):
                    problems.append(f"{name(workload)}: {env['name']} → missing {ref}")
        for volume in pod_spec(workload).get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in maps:
                problems.append(f"{name(workload)}: volume of missing ConfigMap {volume}")
    return problems


def min_replicas(deployment: Obj, objects: list[Obj]) -> int:
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == name(deployment):
            return int(hpa["spec"].get("minReplicas", 1))
    return int(deployment["spec"].get("replicas", 1))


def check_pdbs(objects: list[Obj]) -> list[str]:
    """A PDB never blocks a drain: it always lets at least one pod go."""
    problems = []
    pdbs = of_kind(objects, "PodDisruptionBudget")
    for deployment in of_kind(objects, "Deployment"):
        covering = [
            p for p in pdbs if labels_match(p["spec"]["selector"], template_labels(deployment))
        ]
        if not covering:
            problems.append(f"Deployment/{name(deployment)} has no PodDisruptionBudget")
        for pdb in covering:
            spec = pdb["spec"]
            if "maxUnavailable" in spec:
                if str(spec["maxUnavailable"]) in ("0", "0%"):
                    problems.append(f"PDB/{name(pdb)}: maxUnavailable 0 blocks every drain")
            elif "minAvailable" in spec:
                floor = min_replicas(deployment, objects)
                wanted = spec["minAvailable"]
                if str(wanted).endswith("%") or int(wanted) >= floor:
                    problems.append(
                        f"PDB/{name(pdb)}: minAvailable {wanted} with {floor} replicas "
                        "can block a drain"
                    )
    return problems


CONSUMES_ANNOTATION = "redress.io/consumes"


def consumed_topics(deployment: Obj) -> list[TopicName]:
    raw = deployment["metadata"].get("annotations", {}).get(CONSUMES_ANNOTATION, "")
    return [TopicName(t) for t in raw.split(",") if t]


def check_hpas(objects: list[Obj]) -> list[str]:
    """An HPA never scales a consumer past the partitions of a topic it consumes."""
    problems = []
    deployments = {name(d): d for d in of_kind(objects, "Deployment")}
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        target = deployments.get(hpa["spec"]["scaleTargetRef"]["name"])
        if target is None:
            problems.append(f"HPA/{name(hpa)} scales a Deployment not in the build")
            continue
        topics = consumed_topics(target)
        if not topics:
            problems.append(f"HPA/{name(hpa)}: {name(target)} does not say what it consumes")
            continue
        ceiling = min(TOPICS[t].partitions for t in topics)
        top, floor = hpa["spec"]["maxReplicas"], hpa["spec"].get("minReplicas", 1)
        if top > ceiling:
            problems.append(
                f"HPA/{name(hpa)}: maxReplicas {top} > {ceiling} partitions of "
                f"{', '.join(t.value for t in topics)}"
            )
        if floor > top:
            problems.append(f"HPA/{name(hpa)}: minReplicas {floor} > maxReplicas {top}")
    return problems


def _selects(policy: Obj, labels: Obj) -> bool:
    return labels_match(policy["spec"]["podSelector"], labels)


def check_network_policies(objects: list[Obj]) -> list[str]:
    problems = []
    policies = of_kind(objects, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        problems.append("no default-deny NetworkPolicy (all pods, Ingress and Egress, no rules)")
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        labels = template_labels(workload)
        egress = [
            rule
            for p in policies
            if _selects(p, labels) and "Egress" in p["spec"].get("policyTypes", [])
            for rule in p["spec"].get("egress", [])
        ]
        egress_ports = {port.get("port") for rule in egress for port in rule.get("ports", [])}
        if 53 not in egress_ports:
            problems.append(f"{name(workload)}: no egress to DNS")
        if not {9092, 9093} & egress_ports:
            problems.append(f"{name(workload)}: no egress to Kafka")
        if workload["kind"] != "Deployment":
            continue
        ingress = [
            rule
            for p in policies
            if _selects(p, labels) and "Ingress" in p["spec"].get("policyTypes", [])
            for rule in p["spec"].get("ingress", [])
        ]
        ports = {p.get("port") for rule in ingress for p in rule.get("ports", [])}
        if "http" not in ports:
            problems.append(f"{name(workload)}: nothing may reach its http port (metrics)")
        if any(not rule.get("from") for rule in ingress):
            problems.append(f"{name(workload)}: an ingress rule allows every source")
    return problems


def check_service_monitors(objects: list[Obj]) -> list[str]:
    problems = []
    monitors = of_kind(objects, "ServiceMonitor")
    for service in of_kind(objects, "Service"):
        labels = service["metadata"].get("labels", {})
        port_names = {p.get("name") for p in service["spec"]["ports"]}
        mine = [m for m in monitors if labels_match(m["spec"]["selector"], labels)]
        if not mine:
            problems.append(f"Service/{name(service)} has no ServiceMonitor")
        for monitor in mine:
            for endpoint in monitor["spec"]["endpoints"]:
                if endpoint.get("port") not in port_names:
                    problems.append(f"ServiceMonitor/{name(monitor)}: no port {endpoint}")
                if endpoint.get("path", "/metrics") != "/metrics":
                    problems.append(f"ServiceMonitor/{name(monitor)}: scrapes {endpoint['path']}")
    return problems


def check_namespace(objects: list[Obj]) -> list[str]:
    namespaces = of_kind(objects, "Namespace")
    if len(namespaces) != 1:
        return [f"{len(namespaces)} Namespaces built, expected one"]
    labels = namespaces[0]["metadata"].get("labels", {})
    if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
        return [f"Namespace/{name(namespaces[0])} does not enforce restricted Pod Security"]
    others = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    if others != {name(namespaces[0])}:
        return [f"objects outside the overlay's namespace: {others}"]
    return []


def check_topics(objects: list[Obj]) -> list[str]:
    """KafkaTopics (when the Strimzi component is in) are exactly redress_events.topics."""
    topics = of_kind(objects, "KafkaTopic")
    if not topics:
        return []
    problems = []
    built = {t["spec"].get("topicName", name(t)): t["spec"] for t in topics}
    wanted = {t.value for t in TOPICS}
    if set(built) != wanted:
        problems.append(f"KafkaTopics {sorted(built)} != topics.py {sorted(wanted)}")
    for topic_name, spec in built.items():
        if topic_name not in wanted:
            continue
        topic = TOPICS[TopicName(topic_name)]
        if spec.get("partitions") != topic.partitions:
            problems.append(
                f"{topic_name}: {spec.get('partitions')} partitions, not {topic.partitions}"
            )
        config = {k: str(v) for k, v in (spec.get("config") or {}).items()}
        for key, value in topic.config.items():
            if config.get(key) != value:
                problems.append(f"{topic_name}: {key}={config.get(key)}, not {value}")
    return problems


ALL_CHECKS = (
    check_security,
    check_writable_paths,
    check_probes_and_resources,
    check_services,
    check_secrets,
    check_config_refs,
    check_pdbs,
    check_hpas,
    check_network_policies,
    check_service_monitors,
    check_namespace,
    check_topics,
)


def all_problems(objects: list[Obj]) -> list[str]:
    return [problem for check in ALL_CHECKS for problem in check(objects)]
