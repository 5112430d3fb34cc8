"""Checks of a docker-compose file that need no Docker engine. Each returns a list of problems
(empty when the file is sound), so tests can show both that the real file passes and that a
broken one is caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROBE = Path(__file__).with_name("settings_probe.py")
REDRESS_IMAGE = "redress:local"


def load(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())  # SafeLoader resolves anchors and `<<` merges
    assert isinstance(loaded, dict)
    return loaded


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """target → condition (the short list form means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if not check or check.get("disable"):
        return False
    test = check.get("test")
    return bool(test) and test != ["NONE"]


def check_depends_on(compose: dict[str, Any]) -> list[str]:
    services = compose.get("services") or {}
    problems = []
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            if target not in services:
                problems.append(f"{name}: depends_on unknown service {target!r}")
                continue
            other = services[target]
            if condition == "service_healthy":
                if not _has_healthcheck(other):
                    problems.append(f"{name}: waits for {target} healthy, it has no healthcheck")
            elif condition == "service_completed_successfully":
                # A one-shot job: it must not be restarted, and it can have no health.
                if other.get("restart", "no") not in ("no", False):
                    problems.append(f"{name}: waits for {target} to complete; it restarts")
            else:
                problems.append(
                    f"{name}: depends_on {target} with {condition!r}: only ordering by "
                    "service_healthy or service_completed_successfully brings it up in order"
                )
    return problems


def _bind_sources(service: dict[str, Any]) -> Iterable[str]:
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                yield source
        elif volume.get("type") == "bind":
            yield volume["source"]
    for env_file in service.get("env_file") or []:
        yield env_file if isinstance(env_file, str) else env_file["path"]
    build = service.get("build")
    if build is not None:
        context = build if isinstance(build, str) else build.get("context", ".")
        yield context
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
        yield str(Path(context) / (dockerfile or "Dockerfile"))


def check_mounts(compose: dict[str, Any], root: Path = REPO_ROOT) -> list[str]:
    problems = []
    for name, service in (compose.get("services") or {}).items():
        for source in _bind_sources(service):
            path = (root / source).resolve()
            if not path.is_relative_to(root.resolve()):
                problems.append(f"{name}: mounts {source}, outside the repository")
            elif not path.exists():
                problems.append(f"{name}: mounts {source}, which is not in the repository")
    for kind in ("configs", "secrets"):
        for key, spec in (compose.get(kind) or {}).items():
            if "file" in spec and not (root / spec["file"]).exists():
                problems.append(f"{kind}.{key}: file {spec['file']} is not in the repository")
    return problems


def published_ports(service: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(host port, protocol) of every published port."""
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                yield str(port["published"]), port.get("protocol", "tcp")
            continue
        spec, _, protocol = str(port).partition("/")
        parts = spec.rsplit(":", 2)
        if len(parts) >= 2:  # [ip:]host:container; a bare container port publishes nothing fixed
            yield parts[-2], protocol or "tcp"


def check_ports(compose: dict[str, Any]) -> list[str]:
    owners: dict[tuple[str, str], str] = {}
    problems = []
    for name, service in (compose.get("services") or {}).items():
        for key in published_ports(service):
            if key in owners:
                problems.append(f"{name} and {owners[key]} both publish host port {key[0]}")
            owners[key] = name
    return problems


def redress_services(compose: dict[str, Any]) -> dict[str, str]:
    """Service name → the module its container runs, for services of the Redress image."""
    result = {}
    for name, service in (compose.get("services") or {}).items():
        if service.get("image") == REDRESS_IMAGE or "build" in service:
            command = service.get("command") or ["redress_intake"]  # the image's CMD
            result[name] = command[0] if isinstance(command, list) else command.split()[0]
    return result


def variables_read(module: str, scratch: Path) -> set[str]:
    """Every environment variable `python -m module` reads (see settings_probe)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRESS_")}
    scratch.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, str(PROBE), module],
        env=env,
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"probe of {module} failed: {result.stderr[-3000:]}")
    return set(json.loads(result.stdout.strip().splitlines()[-1])["variables"])


def check_environment(compose: dict[str, Any], read_by: Callable[[str], set[str]]) -> list[str]:
    problems = []
    for name, module in redress_services(compose).items():
        environment = compose["services"][name].get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        readable = read_by(module)
        for variable in environment:
            if variable not in readable:
                problems.append(f"{name}: {variable} is not a setting {module} reads")
    return problems
