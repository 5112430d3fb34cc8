"""Writes the Grafana dashboards in deploy/grafana/dashboards/ from the definitions below.

    python deploy/grafana/build_dashboards.py          # rewrite the JSON files
    python deploy/grafana/build_dashboards.py --check  # exit 1 if a file differs

The JSON files are what Grafana provisions (and what tests/observability lint and run against a
real Prometheus); this script keeps them uniform: every panel has a unit, a description and the
`${datasource}` variable, and ids and grid positions are assigned here.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # timeseries | stat | bargauge
    width: int = 12
    height: int = 8
    extra_defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


OVERVIEW = Dashboard(
    uid="redress-overview",
    title="Redress / Overview",
    description="Complaints in, backlog, incidents and the health of the four services.",
    panels=(
        Panel(
            "Complaints received by channel",
            "Complaints intake accepted (acknowledged by Kafka) per second, by channel.",
            "cps",
            (
                q(
                    f"sum by (channel) (rate(redress_complaints_received_total[{RATE}]))",
                    "{{channel}}",
                ),
            ),
        ),
        Panel(
            "Complaints received by category",
            "Complaints intake accepted per second, by category.",
            "cps",
            (
                q(
                    f"sum by (category) (rate(redress_complaints_received_total[{RATE}]))",
                    "{{category}}",
                ),
            ),
        ),
        Panel(
            "Open complaints by priority",
            "Complaints not yet resolved, closed or withdrawn, from reporting's read model "
            "(none = received, not prioritized yet). max over reporting replicas, which share "
            "one store.",
            "short",
            (q("max by (priority) (redress_complaints_open)", "{{priority}}"),),
        ),
        Panel(
            "Incidents open",
            "Surges of similar complaints detected by routing and not yet resolved.",
            "short",
            (q("max(redress_incidents_open)", "open incidents"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Services up",
            "1 when Prometheus scraped the service's /metrics on its last attempt.",
            "bool_yes_no",
            (q('up{job=~"redress-.+"}', "{{job}} {{instance}}"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "HTTP requests by service and status class",
            "Requests answered per second (RED: rate), by service and status class.",
            "reqps",
            (
                q(
                    f"sum by (service, status_class) (rate(redress_http_requests_total[{RATE}]))",
                    "{{service}} {{status_class}}",
                ),
            ),
        ),
        Panel(
            "HTTP p99 latency by service",
            "99th percentile of request duration (RED: duration), by service.",
            "s",
            (
                q(
                    "histogram_quantile(0.99, sum by (service, le) "
                    f"(rate(redress_http_request_duration_seconds_bucket[{RATE}])))",
                    "{{service}}",
                ),
            ),
        ),
        Panel(
            "Intake 5xx ratio",
            "Share of intake API requests answered with 5xx over 5 minutes (probes excluded); "
            "the RedressIntakeErrorRatioHigh alert fires above 5% for 5 minutes.",
            "percentunit",
            (q("job:redress_intake_http_5xx:ratio_rate5m", "5xx share"),),
            width=12,
        ),
    ),
)

SLA = Dashboard(
    uid="redress-sla",
    title="Redress / SLA",
    description="SLA outcomes per target, response and resolution times, escalations.",
    panels=(
        Panel(
            "SLA breach share by target (15m)",
            "Share of SLA deadlines ending in the last 15 minutes that were breached, by target; "
            "the RedressSlaBreachRateHigh alert fires above 10% for 10 minutes.",
            "percentunit",
            (q("target:redress_sla_breach_ratio:ratio15m", "{{target}}"),),
        ),
        Panel(
            "SLA breaches in the last hour by target",
            "Deadlines breached (SlaBreached events) in the trailing hour, by target.",
            "short",
            (q("sum by (target) (increase(redress_sla_breaches_total[1h]))", "{{target}}"),),
        ),
        Panel(
            "SLA deadlines met in the last hour by target",
            "Deadlines met (SlaMet events) in the trailing hour, by target.",
            "short",
            (q("sum by (target) (increase(redress_sla_met_total[1h]))", "{{target}}"),),
        ),
        Panel(
            "Escalations in the last hour by tier",
            "Escalations (ComplaintEscalated events) in the trailing hour, by the tier reached.",
            "short",
            (q("sum by (tier) (increase(redress_escalations_total[1h]))", "{{tier}}"),),
        ),
        Panel(
            "Time to first response",
            "Wall-clock time from receipt to the first response to the customer: p50, p90, "
            "p99 over the trailing hour.",
            "s",
            tuple(
                q(
                    f"histogram_quantile({quantile}, sum by (le) "
                    "(rate(redress_time_to_first_response_seconds_bucket[1h])))",
                    f"p{int(quantile * 100)}",
                )
                for quantile in (0.5, 0.9, 0.99)
            ),
        ),
        Panel(
            "Time to resolution",
            "Wall-clock time from receipt to the first resolution: p50, p90, p99 over the "
            "trailing day.",
            "s",
            tuple(
                q(
                    f"histogram_quantile({quantile}, sum by (le) "
                    "(rate(redress_time_to_resolution_seconds_bucket[1d])))",
                    f"p{int(quantile * 100)}",
                )
                for quantile in (0.5, 0.9, 0.99)
            ),
        ),
        Panel(
            "Open complaints by priority",
            "Complaints not yet resolved, closed or withdrawn, by priority (the backlog the "
            "SLA clocks run on).",
            "short",
            (q("max by (priority) (redress_complaints_open)", "{{priority}}"),),
        ),
        Panel(
            "Incidents open",
            "Incidents detected and not resolved: linked complaints share the incident's priority.",
            "short",
            (q("max(redress_incidents_open)", "open incidents"),),
        ),
    ),
)

RECOVERY = Dashboard(
    uid="redress-recovery",
    title="Redress / Recovery",
    description="What putting things right costs and how customers judge it.",
    panels=(
        Panel(
            "Compensation issued in the last day by currency",
            "Sum of compensation amounts issued (CompensationIssued events) in the trailing "
            "day, in major units of each ISO 4217 currency (never added across currencies).",
            "short",
            (
                q(
                    "sum by (currency) (increase(redress_compensation_amount_total[1d]))",
                    "{{currency}}",
                ),
            ),
        ),
        Panel(
            "Compensations issued in the last day by currency",
            "Number of compensations issued in the trailing day, by currency (none = not "
            "monetary).",
            "short",
            (
                q(
                    "sum by (currency) (increase(redress_compensations_issued_total[1d]))",
                    "{{currency}}",
                ),
            ),
        ),
        Panel(
            "Mean satisfaction score (1 day)",
            "Mean of the satisfaction scores (1-10) recorded in the trailing day.",
            "none",
            (
                q(
                    "sum(rate(redress_satisfaction_score_sum[1d])) "
                    "/ sum(rate(redress_satisfaction_score_count[1d]))",
                    "mean score",
                ),
            ),
            kind="stat",
            width=6,
            extra_defaults={"decimals": 1, "min": 1, "max": 10},
        ),
        Panel(
            "Satisfaction score distribution (1 day)",
            "How many scores at or below each value (cumulative histogram buckets) were "
            "recorded in the trailing day.",
            "short",
            (
                q(
                    "sum by (le) (increase(redress_satisfaction_score_bucket[1d]))",
                    "<= {{le}}",
                ),
            ),
            kind="bargauge",
            width=18,
        ),
        Panel(
            "Time to resolution p50 and p90",
            "Wall-clock time from receipt to the first resolution over the trailing day.",
            "s",
            tuple(
                q(
                    f"histogram_quantile({quantile}, sum by (le) "
                    "(rate(redress_time_to_resolution_seconds_bucket[1d])))",
                    f"p{int(quantile * 100)}",
                )
                for quantile in (0.5, 0.9)
            ),
        ),
        Panel(
            "Case events projected by type",
            "Recovery's case events (remedies, responses, resolutions, guarantees) applied by "
            "reporting per second, by event type, whichever service wrote them.",
            "ops",
            (
                q(
                    "sum by (event_type) (rate(redress_events_processed_total"
                    f'{{service="reporting",topic="redress.recovery.cases"}}[{RATE}]))',
                    "{{event_type}}",
                ),
            ),
        ),
    ),
)

PIPELINE = Dashboard(
    uid="redress-pipeline",
    title="Redress / Pipeline health",
    description="Kafka consumers and producers, projection freshness, dead letters.",
    panels=(
        Panel(
            "Events processed by service",
            "Events each service consumed and handled per second.",
            "ops",
            (
                q(
                    f"sum by (service) (rate(redress_events_processed_total[{RATE}]))",
                    "{{service}}",
                ),
            ),
        ),
        Panel(
            "Events published by service and topic",
            "Events each service appended to Kafka per second (acknowledged by all in-sync "
            "replicas).",
            "ops",
            (
                q(
                    f"sum by (service, topic) (rate(redress_events_published_total[{RATE}]))",
                    "{{service}} → {{topic}}",
                ),
            ),
        ),
        Panel(
            "Consumer lag by group",
            "Messages between each consumer group's position and the high watermarks, summed "
            "over partitions; RedressConsumerLagHigh fires above 1000 for 10 minutes.",
            "short",
            (q("group:redress_consumer_lag_messages:sum", "{{service}} {{group}}"),),
        ),
        Panel(
            "Consumer lag by partition",
            "Messages behind, per group, topic and partition: one hot partition shows a skewed "
            "key.",
            "short",
            (
                q(
                    "max by (group, topic, partition) (redress_consumer_lag_messages)",
                    "{{group}} {{topic}}[{{partition}}]",
                ),
            ),
        ),
        Panel(
            "Projection lag",
            "Now minus the event time of the last event reporting's read model applied (0 when "
            "caught up); RedressProjectionLagHigh fires above 60 s for 5 minutes.",
            "s",
            (q("job:redress_projection_lag_seconds:max", "{{job}}"),),
        ),
        Panel(
            "Dead letters in the last 10 minutes",
            "Records copied to redress.deadletter, by service, source topic and reason; "
            "RedressDeadLettersGrowing fires on any.",
            "short",
            (
                q(
                    "reason:redress_events_deadlettered:increase10m",
                    "{{service}} {{topic}} {{reason}}",
                ),
            ),
        ),
        Panel(
            "Duplicate events dropped",
            "Events ignored per second because their id had already been applied (redelivery "
            "after a retry or a rebalance: harmless, but a rising rate hints at a problem).",
            "ops",
            (
                q(
                    "sum by (service, topic) "
                    f"(rate(redress_duplicate_events_dropped_total[{RATE}]))",
                    "{{service}} {{topic}}",
                ),
            ),
        ),
        Panel(
            "Business metrics age",
            "Seconds since reporting last refreshed its read-model gauges (open complaints, "
            "incidents) from the store.",
            "s",
            (
                q(
                    "time() - max(redress_business_metrics_refreshed_timestamp_seconds)",
                    "age",
                ),
            ),
            kind="stat",
            width=12,
        ),
    ),
)

DASHBOARDS = (OVERVIEW, SLA, RECOVERY, PIPELINE)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    options: dict[str, Any]
    if panel.kind == "timeseries":
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif panel.kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    else:
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
        }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": dict(DATASOURCE),
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, **panel.extra_defaults},
            "overrides": [],
        },
        "options": options,
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": dict(DATASOURCE),
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                **({"format": "heatmap"} if panel.kind == "bargauge" else {}),
            }
            for index, query in enumerate(panel.queries)
        ],
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    panels = []
    x = y = 0
    row_height = 0
    for panel_id, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + row_height
            row_height = 0
        panels.append(_panel_json(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["redress"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "links": [
            {
                "type": "dashboards",
                "tags": ["redress"],
                "asDropdown": True,
                "title": "Redress",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def rendered() -> dict[Path, str]:
    return {
        OUT / f"{d.uid}.json": json.dumps(dashboard_json(d), indent=2, ensure_ascii=False) + "\n"
        for d in DASHBOARDS
    }


def main(argv: list[str]) -> int:
    files = rendered()
    if "--check" in argv:
        stale = [p.name for p, text in files.items() if not p.exists() or p.read_text() != text]
        if stale:
            print(f"out of date (run {Path(__file__).name}): {', '.join(stale)}")
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
