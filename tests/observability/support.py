"""Helpers for the observability tests: the Debian Prometheus tools, a throwaway Prometheus
server on a free loopback port, and the PromQL expressions of the project's dashboards and
rules."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from redress_kafka.local_broker import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
ENSURE_PACKAGES = REPO_ROOT / "tools" / "ensure-system-packages.sh"

# Grafana's built-in interval variables, as Prometheus must see them in a test whose scrape
# interval is 1 s (Grafana would put at least 4 scrape intervals there).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def ensure_tool(name: str) -> str:
    """The path of `promtool` / `prometheus`, installing Debian's package when missing."""
    found = shutil.which(name)
    if found:
        return found
    result = subprocess.run(
        ["bash", str(ENSURE_PACKAGES)], capture_output=True, text=True, timeout=600, check=False
    )
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} is missing and {ENSURE_PACKAGES.relative_to(REPO_ROOT)} could not install "
            f"it (exit {result.returncode}): {result.stdout}\n{result.stderr}"
        )
    return found


# ---- expressions of the dashboards and rules -----------------------------------------------


@dataclass(frozen=True)
class Expression:
    where: str  # e.g. "redress-sla.json: panel 'Time to first response' A"
    expr: str


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def iter_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels folded inside a row
    return panels


def substitute_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    if leftover:
        raise AssertionError(f"unknown dashboard variable(s) {leftover} in {expr!r}")
    return expr


def dashboard_expressions() -> list[Expression]:
    found = []
    for name, dashboard in dashboards().items():
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                found.append(
                    Expression(
                        f"{name}: panel {panel.get('title')!r} {target.get('refId')}",
                        substitute_grafana_variables(target["expr"]),
                    )
                )
    return found


def rule_groups() -> dict[str, list[dict[str, Any]]]:
    return {
        p.name: yaml.safe_load(p.read_text())["groups"] for p in sorted(RULES_DIR.glob("*.yml"))
    }


def rules() -> list[dict[str, Any]]:
    return [rule for groups in rule_groups().values() for g in groups for rule in g["rules"]]


def alert_names() -> list[str]:
    return [r["alert"] for r in rules() if "alert" in r]


def recording_rules() -> list[dict[str, Any]]:
    return [r for r in rules() if "record" in r]


# ---- a Prometheus server --------------------------------------------------------------------


class Prometheus:
    """Debian's Prometheus on a free loopback port with its own storage directory."""

    def __init__(self, workdir: Path, scrape_config: dict[str, Any]) -> None:
        self.binary = ensure_tool("prometheus")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(scrape_config, sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> Prometheus:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready in {timeout_s}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def api(self, path: str, **params: str) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10.0) as client:
            response = await client.get(f"/api/v1/{path}", params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PromQLError(f"{path} {params}: HTTP {response.status_code}: {body}")
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        if data["resultType"] != "vector":
            raise PromQLError(f"{expr!r} gives a {data['resultType']}, not an instant vector")
        return list(data["result"])


class PromQLError(Exception):
    pass


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    values = [float(sample["value"][1]) for sample in result]
    return [v for v in values if math.isfinite(v)]


def metric_names(expr: str) -> set[str]:
    """Metric and recorded-series names an expression reads (PromQL functions, keywords and
    label names excluded)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_strings = re.sub(r"\[[^\]]*\]|\b\d[\w.]*", " ", without_strings)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groupings = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels
    )
    candidates = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    keywords = {
        "sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile", "and",
        "or", "unless", "offset", "time", "vector", "le", "bool", "abs", "clamp_min",
    }  # fmt: skip
    return {c for c in candidates if c not in keywords and not re.fullmatch(r"\d+[smhdwy]?", c)}
