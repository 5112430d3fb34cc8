"""The running stack under a real Prometheus (Debian's package): every service's /metrics
passes `promtool check metrics`, and every PromQL expression of every dashboard panel and every
recording and alert rule parses and returns data once traffic went through the services.

One stack for the module (Kafka topics with their own prefix, intake, routing, reporting, and
recovery when it is importable), one Prometheus on a free loopback port scraping them every
second with the project's rule files. Traffic: complaints through intake's API, then the events
that only time or people produce in a short test (SLA breaches, responses, a resolution,
satisfaction, compensation, an incident, a duplicate and two undecodable records) published to
Kafka as their writers would, so reporting derives the business metrics from the log.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import yaml
from redress_events import Envelope, EventData, TopicName
from redress_events.catalogue import (
    AgentResponded,
    CompensationIssued,
    ComplaintEscalated,
    ComplaintResolved,
    IncidentDetected,
    SatisfactionRecorded,
    SlaBreached,
    SlaMet,
)
from redress_events.catalogue.recovery import Outcome
from redress_events.catalogue.routing import EscalationTier, SlaTarget
from redress_events.values import Money, Priority
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings

from tests.observability.support import (
    PROMETHEUS_DIR,
    RULES_DIR,
    Expression,
    Prometheus,
    PromQLError,
    alert_names,
    dashboard_expressions,
    ensure_tool,
    finite_values,
    metric_names,
    recording_rules,
    rules,
)
from tests.support.complaints import complaint_body
from tests.support.kafka import KafkaHandle, create_topics, new_topic_prefix
from tests.support.services import ServiceProcess, new_service

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(420)]

SERVICES = ["intake", "routing", "reporting"] + (
    ["recovery"] if importlib.util.find_spec("redress_recovery.__main__") is not None else []
)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SOURCE = "redress/tests/observability"
COMPLAINTS = 6


@dataclass
class Stack:
    services: dict[str, ServiceProcess]
    prometheus: Prometheus
    kafka: KafkaSettings
    complaint_ids: list[str] = field(default_factory=list)
    customer_ids: list[str] = field(default_factory=list)


async def wait_until(
    what: str, probe: Callable[[], Awaitable[Any]], *, timeout_s: float = 90.0
) -> Any:
    """Poll `probe` until it returns something truthy; bounded, fails with the last answer."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except (PromQLError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


def scrape_config(services: dict[str, ServiceProcess]) -> dict[str, Any]:
    """The project's prometheus.yml with the test's ports, a 1 s interval and the rule files."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(p) for p in sorted(RULES_DIR.glob("*.yml"))]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"].removeprefix("redress-")
        if name in services:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{services[name].port}"]}]
            jobs.append(job)
    assert {j["job_name"] for j in jobs} == {f"redress-{s}" for s in services}
    config["scrape_configs"] = jobs
    return config


def _at(offset_s: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_s)


def business_events(complaint_ids: list[str]) -> list[Envelope[EventData]]:
    """What routing's clocks, recovery's agents and the surge detector would write later."""
    c = [uuid.UUID(i) for i in complaint_ids]
    now = _at(0)
    due = now - timedelta(minutes=1)

    def env(data: EventData, subject: uuid.UUID) -> Envelope[EventData]:
        return Envelope[EventData].new(data, subject=str(subject), source=SOURCE)

    incident = uuid.uuid4()
    return [
        env(
            AgentResponded(complaint_id=c[0], actor="agent-1", message="Sorry.", responded_at=now),
            c[0],
        ),
        env(
            SlaMet(
                complaint_id=c[0],
                target=SlaTarget.FIRST_RESPONSE,
                policy_id="default",
                due_at=due,
                met_at=now,
                elapsed_seconds=5.0,
            ),
            c[0],
        ),
        *(
            env(
                SlaBreached(
                    complaint_id=c[i],
                    target=SlaTarget.FIRST_RESPONSE,
                    policy_id="default",
                    due_at=due,
                    breached_at=now,
                ),
                c[i],
            )
            for i in (1, 2, 3)
        ),
        env(
            ComplaintEscalated(
                complaint_id=c[1],
                from_tier=EscalationTier.AGENT,
                tier=EscalationTier.TEAM_LEAD,
                trigger="sla_breached:first_response",
                policy_rule="esc-1",
                reason="first response missed",
            ),
            c[1],
        ),
        env(
            ComplaintResolved(
                complaint_id=c[0],
                outcome=Outcome.UPHELD,
                reason="Replaced.",
                actor="agent-1",
                resolved_at=now,
            ),
            c[0],
        ),
        env(SatisfactionRecorded(complaint_id=c[0], score=8, recorded_at=now), c[0]),
        env(
            CompensationIssued(
                complaint_id=c[2],
                guarantee_id="late-first-response",
                compensation_type="account_credit",
                amount=Money(amount=Decimal("25.00"), currency="GBP"),
                issued_at=now,
            ),
            c[2],
        ),
        env(
            IncidentDetected(
                incident_id=incident,
                product="kettle-2000",
                category="product_defect",
                window_seconds=600,
                count=6,
                baseline=0.5,
                factor=12.0,
                priority=Priority.P1,
                detected_at=now,
                reason="surge",
            ),
            incident,
        ),
    ]


async def send_undecodable(producer: EventProducer, kafka: KafkaSettings) -> None:
    await producer.send_raw(
        kafka.topic(TopicName.CASES),
        key=b"not-a-complaint",
        value=b"{not json",
        headers=[("ce_type", b"redress.case.nonsense.v1"), ("ce_specversion", b"1.0")],
    )


async def metrics_text(service: ServiceProcess) -> str:
    async with service.client() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


def sample_value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    return None


@pytest.fixture(scope="module")
async def stack(
    kafka: KafkaHandle, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    ensure_tool("promtool")
    workdir = tmp_path_factory.mktemp("observability")
    settings = kafka.settings(new_topic_prefix())
    await create_topics(settings)
    services: dict[str, ServiceProcess] = {}
    prometheus: Prometheus | None = None
    producer = EventProducer(settings, client_id="observability-test")
    try:
        for name in SERVICES:
            services[name] = new_service(
                name,
                bootstrap=kafka.bootstrap_servers,
                topic_prefix=settings.topic_prefix,
                workdir=workdir,
            ).start(timeout_s=120)
        prometheus = Prometheus(workdir / "prometheus", scrape_config(services)).start()
        result = Stack(services, prometheus, settings)
        jobs = {f"redress-{s}" for s in services}

        async def all_up() -> bool:
            up = await prometheus.query('up{job=~"redress-.+"} == 1')  # type: ignore[union-attr]
            return {s["metric"]["job"] for s in up} == jobs

        await wait_until("every service scraped", all_up)

        # Complaints through intake's API, visible in reporting.
        intake, reporting = services["intake"], services["reporting"]
        async with intake.client() as client:
            for n in range(COMPLAINTS):
                if n == COMPLAINTS // 2:
                    # The rest only once Prometheus holds the counter, so that rate() over the
                    # API route sees growth (one burst between two scrapes shows none).
                    await wait_until(
                        "intake's API requests in Prometheus",
                        lambda: prometheus.query(  # type: ignore[union-attr]
                            'redress_http_requests_total{service="intake",'
                            'route="/v1/complaints",status_class="2xx"}'
                        ),
                    )
                customer = f"C-obs-{uuid.uuid4().hex[:12]}"
                body = complaint_body(customer={"id": customer, "tier": "premium"})
                if n % 2:
                    body.update(channel="email", category="billing", description="Charged twice.")
                response = await client.post("/v1/complaints", json=body)
                assert response.status_code == 202, response.text
                result.complaint_ids.append(response.json()["complaint_id"])
                result.customer_ids.append(customer)

        async def all_projected() -> bool:
            async with reporting.client() as client:
                for cid in result.complaint_ids:
                    if (await client.get(f"/v1/complaints/{cid}")).status_code != 200:
                        return False
            return True

        await wait_until("complaints visible in reporting", all_projected)

        # Events of the other writers, one duplicate, and an undecodable record.
        await producer.start()
        events = business_events(result.complaint_ids)
        await producer.publish_many(events)
        await producer.publish(events[0])  # same id again: dropped as a duplicate
        await send_undecodable(producer, settings)

        async def reporting_counted() -> bool:
            text = await metrics_text(reporting)
            breaches = sample_value(text, "redress_sla_breaches_total", target="first_response")
            return (
                (breaches or 0) >= 3
                and (sample_value(text, "redress_incidents_open") or 0) >= 1
                and sample_value(text, "redress_duplicate_events_dropped_total") is not None
                and sample_value(text, "redress_events_deadlettered_total", service="reporting")
                is not None
            )

        await wait_until("reporting's metrics to count the events", reporting_counted)

        # A second dead letter once Prometheus has the counter: increase() then sees growth.
        await wait_until(
            "the dead-letter counter in Prometheus",
            lambda: prometheus.query('redress_events_deadlettered_total{service="reporting"}'),  # type: ignore[union-attr]
        )
        await send_undecodable(producer, settings)
        await wait_until(
            "the second dead letter in Prometheus",
            lambda: prometheus.query(  # type: ignore[union-attr]
                'sum(redress_events_deadlettered_total{service="reporting"}) >= 2'
            ),
        )
        await wait_until(
            "the SLA breaches in Prometheus",
            lambda: prometheus.query(  # type: ignore[union-attr]
                'redress_sla_breaches_total{target="first_response"} >= 3'
            ),
        )
        yield result
    finally:
        await producer.stop()
        if prometheus is not None:
            prometheus.stop()
        for service in reversed(list(services.values())):
            service.stop(timeout_s=15)


# ---- /metrics of each service ---------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
async def test_metrics_pass_promtool_check_metrics(stack: Stack, name: str) -> None:
    text = await metrics_text(stack.services[name])
    assert "redress_" in text
    result = await asyncio.to_thread(
        subprocess.run,
        [ensure_tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
    assert result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize("name", SERVICES)
async def test_no_label_carries_an_id_or_personal_data(stack: Stack, name: str) -> None:
    text = await metrics_text(stack.services[name])
    for complaint_id in stack.complaint_ids:
        assert complaint_id not in text
    for customer_id in stack.customer_ids:
        assert customer_id not in text
    for line in text.splitlines():
        if not line.startswith("#"):
            assert UUID.search(line) is None, f"{name}: an id in a label: {line}"
            assert "@" not in line, f"{name}: an e-mail address in a label: {line}"


async def test_business_metrics_are_derived_from_the_events(stack: Stack) -> None:
    query = stack.prometheus.query
    expected = {
        'redress_sla_breaches_total{target="first_response"}': 3,
        'redress_sla_met_total{target="first_response"}': 1,
        'redress_escalations_total{tier="team_lead"}': 1,
        'redress_compensation_amount_total{currency="GBP"}': 25,
        "redress_satisfaction_score_count": 1,
        "redress_satisfaction_score_sum": 8,
        "redress_time_to_first_response_seconds_count": 1,
        "redress_time_to_resolution_seconds_count": 1,
        "redress_incidents_open": 1,
        'sum(redress_complaints_received_total{job="redress-intake"})': COMPLAINTS,
    }
    found = {expr: finite_values(await query(expr)) for expr in expected}
    # Other services may add to these (recovery may pay its own guarantees): at least ours.
    short = {e: v for e, v in found.items() if not v or max(v) < expected[e]}
    assert short == {}, f"expected at least {expected}, Prometheus has {found}"
    # One complaint was resolved: the rest are open, by priority (the gauges are refreshed
    # from the read model every few seconds, so wait for the refresh after the resolution).
    await wait_until(
        f"sum(redress_complaints_open) == {COMPLAINTS - 1}",
        lambda: query(f"sum(redress_complaints_open) == {COMPLAINTS - 1}"),
        timeout_s=60,
    )
    priorities = {s["metric"]["priority"] for s in await query("redress_complaints_open")}
    assert priorities == {"P1", "P2", "P3", "P4", "none"}


# ---- every expression of the dashboards and rules --------------------------------------------


async def test_every_dashboard_expression_returns_data(stack: Stack) -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 30
    empty: list[Expression] = []
    for expression in expressions:
        result = await stack.prometheus.query(expression.expr)  # raises on a parse error
        if not finite_values(result):
            empty.append(expression)
    assert empty == [], "no (finite) data for: " + "; ".join(f"{e.where}: {e.expr}" for e in empty)


async def test_every_recording_rule_returns_data(stack: Stack) -> None:
    empty = []
    for rule in recording_rules():
        # the rule's own expression, and the series Prometheus recorded from it
        own = finite_values(await stack.prometheus.query(rule["expr"]))
        recorded = finite_values(await stack.prometheus.query(rule["record"]))
        if not own or not recorded:
            empty.append(rule["record"])
    assert empty == []


async def test_every_alert_expression_evaluates_and_reads_series_that_exist(stack: Stack) -> None:
    missing = []
    for rule in rules():
        if "alert" not in rule:
            continue
        await stack.prometheus.query(rule["expr"])  # parses and evaluates (may be quiet)
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        for name in names:
            if not finite_values(await stack.prometheus.query(name)):
                missing.append(f"{rule['alert']}: {name}")
    assert missing == []


async def test_prometheus_loaded_every_rule_and_evaluates_them_without_error(stack: Stack) -> None:
    groups = (await stack.prometheus.api("rules"))["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    expected = {r.get("alert") or r["record"] for r in rules()}
    assert set(loaded) == expected
    unhealthy = {n: r.get("lastError") for n, r in loaded.items() if r["health"] != "ok"}
    assert unhealthy == {}


async def test_alerts_driven_by_the_traffic_become_active(stack: Stack) -> None:
    async def active() -> dict[str, str] | None:
        alerts = (await stack.prometheus.api("alerts"))["alerts"]
        states = {a["labels"]["alertname"]: a["state"] for a in alerts}
        wanted = {"RedressDeadLettersGrowing", "RedressSlaBreachRateHigh"}
        return states if wanted <= set(states) else None

    states = await wait_until("the dead-letter and SLA alerts", active, timeout_s=60)
    assert states["RedressDeadLettersGrowing"] == "firing"  # no `for`: fires at once
    assert states["RedressSlaBreachRateHigh"] in {"pending", "firing"}
    alerts = (await stack.prometheus.api("alerts"))["alerts"]
    sla = [a for a in alerts if a["labels"]["alertname"] == "RedressSlaBreachRateHigh"]
    assert {a["labels"]["target"] for a in sla} == {"first_response"}
    assert set(alert_names()) >= set(states)


async def test_service_down_alert_when_a_service_stops(stack: Stack) -> None:
    # Last test of the module: it stops routing for good.
    stack.services["routing"].stop(timeout_s=30)

    async def routing_down() -> list[dict[str, Any]]:
        alerts = (await stack.prometheus.api("alerts"))["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "RedressServiceDown"
            and a["labels"]["job"] == "redress-routing"
        ]

    (alert,) = await wait_until("RedressServiceDown for routing", routing_down, timeout_s=60)
    assert alert["state"] == "pending"  # `for: 2m`; the unit tests cover firing
    others = [
        s["metric"]["job"] for s in await stack.prometheus.query('up{job=~"redress-.+"} == 0')
    ]
    assert others == ["redress-routing"]
