"""The routing worker as a process on the real broker: decisions, clocks, escalation, surges.

Time is controlled through `REDRESS_ROUTING_CLOCK_OFFSET_FILE`: the test writes how many
seconds the worker's timer should think have passed, so deadlines days away are crossed at once
with the production policy file. Every wait polls the topic for an expected event (bounded by a
deadline that only limits how long a failure takes to report).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2
from redress_events import Envelope, EventData, TopicName
from redress_events.catalogue import (
    AgentResponded,
    ComplaintReceived,
    ComplaintResolved,
)
from redress_events.catalogue.recovery import Outcome
from redress_events.catalogue.routing import SlaTarget
from redress_kafka.admin import ensure_topics
from redress_kafka.producer import BrokerUnavailable, EventProducer
from redress_kafka.settings import KafkaSettings

from tests.support.kafka import read_events, read_topic
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka

WAIT_S = 60.0
EVENT_PARTITIONS = 6


def quiet_complaint(**overrides: Any) -> dict[str, Any]:
    """A complaint no priority rule cares about (P4), unless overridden."""
    defaults: dict[str, Any] = {
        "customer": {"id": f"C-{uuid.uuid4().hex[:8]}", "tier": "standard"},
        "channel": "email",
        "public": False,
        "category": "delivery",
        "product": "parcel-standard",
        "description": "The parcel arrived two days late.",
        "remedy_sought": "apology",
        "amount_at_stake": None,
        "jurisdiction": "GB",
    }
    return {**defaults, **overrides}


def make_received(complaint_id: uuid.UUID | None = None, **overrides: Any) -> Envelope[Any]:
    complaint_id = complaint_id or uuid.uuid4()
    data = ComplaintReceived(
        **quiet_complaint(**overrides), complaint_id=complaint_id, received_at=datetime.now(UTC)
    )
    return Envelope.new(data, subject=str(complaint_id), source="/tests/intake")


async def wait_for_events(
    settings: KafkaSettings,
    topic: TopicName,
    predicate: Callable[[list[Envelope[EventData]]], bool],
    *,
    subject: str | None = None,
    what: str,
) -> list[Envelope[EventData]]:
    deadline = time.monotonic() + WAIT_S
    while True:
        events = await read_events(settings, topic, subject=subject)
        if predicate(events):
            return events
        if time.monotonic() > deadline:
            summary = [(e.type, getattr(e.data, "target", None)) for e in events][-30:]
            raise AssertionError(f"timed out waiting for {what}; last events: {summary}")
        await asyncio.sleep(0.5)


async def publish_until_acknowledged(producer: EventProducer, envelope: Envelope[Any]) -> None:
    """Publish as a client would: retry while a just-restarted broker is still electing leaders
    (bounded by WAIT_S; the test is about the worker, not about this producer)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            await producer.publish(envelope)
            return
        except BrokerUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def logged(service: ServiceProcess) -> set[str]:
    """The messages of the service's JSON log lines."""
    lines = service.log_path.read_text(errors="replace").splitlines()
    return {json.loads(line).get("msg", "") for line in lines if line.startswith("{")}


async def wait_for_log(service: ServiceProcess, message: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while message not in logged(service):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message!r}: {service.log_tail(5)}")
        await asyncio.sleep(0.5)


async def wait_for_readiness(service: ServiceProcess, *, ready: bool, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    async with httpx.AsyncClient(base_url=service.url, timeout=5.0) as client:
        while True:
            with suppress(httpx.HTTPError):
                if ((await client.get("/readyz")).status_code == 200) == ready:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {service.log_tail(5)}")
            await asyncio.sleep(0.5)


def of_type(events: list[Envelope[EventData]], event_type: str) -> list[Any]:
    return [e for e in events if e.type == event_type]


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> Any:
    events = EventProducer(kafka_settings, client_id="test")
    await events.start()
    yield events
    await events.stop()


async def test_complaint_is_prioritized_assigned_clocked_and_escalated_with_reasons(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
) -> None:
    service_factory("routing").start()
    # The documented example: a public social post about a burn, in Great Britain.
    complaint = make_received(
        customer={"id": "C-1001", "tier": "vip"},
        channel="social",
        public=True,
        category="product_defect",
        product="kettle-2000",
        description="The handle snapped and burned my hand.",
    )
    await producer.publish(complaint)
    subject = complaint.subject

    events = await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.escalated.v1")),
        subject=subject,
        what="prioritized, assigned, clock started and escalated",
    )
    (prioritized,) = of_type(events, "redress.routing.prioritized.v1")
    (assigned,) = of_type(events, "redress.routing.assigned.v1")
    (started,) = of_type(events, "redress.routing.sla_clock_started.v1")
    (escalated,) = of_type(events, "redress.routing.escalated.v1")

    assert prioritized.data.priority == "P1"
    assert {"safety-injury", "public-social", "product-defect"} <= set(
        prioritized.data.matched_rules
    )
    assert "safety-injury" in prioritized.data.reason
    assert prioritized.data.rules_version == "2026.11.2"
    assert prioritized.causation_id == complaint.id
    # VIP may change the queue only when no substance rule picked one: safety comes first.
    assert assigned.data.queue == "product-safety"
    assert assigned.data.matched_rules == ("safety-injury",)

    deadlines = {d.target: d for d in started.data.deadlines}
    assert started.data.policy_id == "p1-safety-24x7"
    assert set(deadlines) == {
        SlaTarget.FIRST_RESPONSE,
        SlaTarget.NEXT_UPDATE,
        SlaTarget.RESOLUTION,
        SlaTarget.REGULATORY,
    }
    received_at = complaint.data.received_at
    assert deadlines[SlaTarget.FIRST_RESPONSE].due_at == received_at + timedelta(hours=1)
    assert deadlines[SlaTarget.REGULATORY].due_at == received_at + timedelta(days=56)
    assert "fca-disp" in started.data.reason

    assert escalated.data.tier == "executive"
    assert escalated.data.policy_rule == "p1-public-safety"
    assert escalated.data.trigger == "prioritized"


async def test_breach_escalates_and_the_response_stops_and_deescalates(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
    tmp_path: Path,
) -> None:
    offset_file = tmp_path / "clock-offset"
    offset_file.write_text("0")
    service_factory("routing", REDRESS_ROUTING_CLOCK_OFFSET_FILE=str(offset_file)).start()
    complaint = make_received()
    await producer.publish(complaint)
    subject = complaint.subject
    events = await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.sla_clock_started.v1")),
        subject=subject,
        what="the clock to start",
    )
    (started,) = of_type(events, "redress.routing.sla_clock_started.v1")
    due = {d.target: d.due_at for d in started.data.deadlines}
    assert started.data.policy_id == "p3-p4"

    def jump_past(moment: datetime) -> datetime:
        offset = (moment - datetime.now(UTC)).total_seconds() + 60
        offset_file.write_text(str(offset))
        return datetime.now(UTC) + timedelta(seconds=offset)

    def breaches(es: list[Envelope[EventData]], target: SlaTarget) -> list[Any]:
        return [
            e for e in of_type(es, "redress.routing.sla_breached.v1") if e.data.target == target
        ]

    # 1. The first response deadline passes: breach, then escalation to the team lead.
    now = jump_past(due[SlaTarget.FIRST_RESPONSE])
    events = await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.escalated.v1")),
        subject=subject,
        what="first response breach and escalation",
    )
    assert len(breaches(events, SlaTarget.FIRST_RESPONSE)) == 1
    (escalated,) = of_type(events, "redress.routing.escalated.v1")
    assert (escalated.data.from_tier, escalated.data.tier) == ("agent", "team_lead")
    assert escalated.data.trigger == "sla_breached:first_response"
    assert escalated.data.policy_rule == "first-response-breached"

    # 2. The agent answers (delivered twice, as after a consumer restart): one de-escalation.
    response = Envelope.new(
        AgentResponded(
            complaint_id=complaint.data.complaint_id,
            actor="agent-7",
            message="Sorry for the delay, a courier is on the way.",
            responded_at=now,
        ),
        subject=subject,
        source="/tests/recovery",
    )
    await producer.publish(response)
    await producer.publish(response)
    await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.deescalated.v1")),
        subject=subject,
        what="de-escalation after the response",
    )

    # 3. Much later the resolution deadline passes: manager. The answered first response
    #    does not breach again.
    now = jump_past(due[SlaTarget.RESOLUTION])
    events = await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: any(
            e.data.tier == "manager" for e in of_type(es, "redress.routing.escalated.v1")
        ),
        subject=subject,
        what="resolution breach escalating to a manager",
    )
    (to_manager,) = [
        e for e in of_type(events, "redress.routing.escalated.v1") if e.data.tier == "manager"
    ]
    assert to_manager.data.trigger == "sla_breached:resolution"

    # 4. Resolved: everything comes back down; this also proves the duplicate response above
    #    was read (same partition, earlier offset) before we count.
    await producer.publish(
        Envelope.new(
            ComplaintResolved(
                complaint_id=complaint.data.complaint_id,
                outcome=Outcome.UPHELD,
                reason="Redelivered and apologised.",
                actor="agent-7",
                resolved_at=now,
            ),
            subject=subject,
            source="/tests/recovery",
        )
    )
    events = await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: any(
            e.data.tier == "agent" and e.data.from_tier == "manager"
            for e in of_type(es, "redress.routing.deescalated.v1")
        ),
        subject=subject,
        what="de-escalation on resolution",
    )
    assert len(breaches(events, SlaTarget.FIRST_RESPONSE)) == 1
    assert len(breaches(events, SlaTarget.RESOLUTION)) == 1
    deescalated = of_type(events, "redress.routing.deescalated.v1")
    assert [e.data.trigger for e in deescalated] == ["responded", "resolved"]
    met = [e.data.target for e in of_type(events, "redress.routing.sla_met.v1")]
    assert met.count(SlaTarget.NEXT_UPDATE) == 1  # the duplicate response met nothing twice
    assert SlaTarget.FIRST_RESPONSE not in met  # it was late: breached, never met
    assert len({e.id for e in events}) == len(events)


def same_partition_id(as_key: str) -> uuid.UUID:
    """A fresh complaint id whose records land on the same partition as `as_key`'s."""
    wanted = (murmur2(as_key.encode()) & 0x7FFFFFFF) % EVENT_PARTITIONS
    while True:
        candidate = uuid.uuid4()
        if (murmur2(str(candidate).encode()) & 0x7FFFFFFF) % EVENT_PARTITIONS == wanted:
            return candidate


async def test_a_redelivered_complaint_yields_no_second_decision(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
) -> None:
    service_factory("routing").start()
    customer = {"id": "C-redelivery", "tier": "standard"}
    original = make_received(customer=customer)
    await producer.publish(original)
    await producer.publish(original)  # the same event again, as an at-least-once writer may
    # A later complaint by the same customer on the same partition: once it is decided, the
    # duplicate before it has certainly been read.
    marker = make_received(same_partition_id(original.subject), customer=customer)
    await producer.publish(marker)

    events = await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: any(
            e.subject == marker.subject for e in of_type(es, "redress.routing.assigned.v1")
        ),
        what="the marker complaint's decision",
    )
    await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.sla_clock_started.v1")),
        subject=marker.subject,
        what="the marker's clock",
    )
    events = await read_events(kafka_settings, TopicName.ROUTING, subject=original.subject)
    types = [e.type for e in events]
    assert types.count("redress.routing.prioritized.v1") == 1
    assert types.count("redress.routing.assigned.v1") == 1
    assert types.count("redress.routing.sla_clock_started.v1") == 1


async def test_repeat_complaints_count_from_the_customers_history_inside_its_window(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
) -> None:
    """The policy's `repeat-complainant` rule (at least 2 earlier complaints in 30 days) sees the
    worker's per-customer history: a complaint from 40 days ago no longer counts, two recent
    ones do."""
    service_factory("routing").start()
    customer = {"id": f"C-repeat-{uuid.uuid4().hex[:6]}", "tier": "standard"}
    now = datetime.now(UTC)
    priorities = []
    for age in (timedelta(days=40), timedelta(days=3), timedelta(seconds=2), timedelta(0)):
        complaint_id = uuid.uuid4()
        data = ComplaintReceived(
            **quiet_complaint(customer=customer), complaint_id=complaint_id, received_at=now - age
        )
        await producer.publish(Envelope.new(data, subject=str(complaint_id), source="/tests"))
        # One at a time: each is decided before the next arrives, in the order of arrival.
        events = await wait_for_events(
            kafka_settings,
            TopicName.ROUTING,
            lambda es: bool(of_type(es, "redress.routing.prioritized.v1")),
            subject=str(complaint_id),
            what=f"the decision on the complaint received {age} ago",
        )
        (prioritized,) = of_type(events, "redress.routing.prioritized.v1")
        priorities.append(
            (prioritized.data.priority, "repeat-complainant" in prioritized.data.matched_rules)
        )
    # 40 days ago: no history; 3 days ago: one earlier, outside the window; 2 s ago: one
    # earlier inside it; now: two earlier inside it.
    assert priorities == [("P4", False), ("P4", False), ("P4", False), ("P2", True)]


async def test_a_burst_on_one_product_is_one_incident_resolved_when_it_subsides(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
    tmp_path: Path,
) -> None:
    offset_file = tmp_path / "clock-offset"
    offset_file.write_text("0")
    service_factory(
        "routing",
        REDRESS_ROUTING_CLOCK_OFFSET_FILE=str(offset_file),
        REDRESS_ROUTING_SURGE_TICK_INTERVAL_S="1",
    ).start()
    burst = [make_received(product="router-x1", category="service") for _ in range(200)]
    # Quiet background on another product must not open anything.
    background = [make_received(product="kettle-2000", category="billing") for _ in range(5)]
    for start in range(0, len(burst), 50):
        await producer.publish_many(burst[start : start + 50])
    await producer.publish_many(background)
    min_count = 20  # rules.yaml surge.min_count; the baseline of a new product is the floor

    links = await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: (
            len(of_type(es, "redress.routing.linked_to_incident.v1")) >= len(burst) - min_count + 1
        ),
        what="every complaint after the threshold linked",
    )
    incidents = await read_events(kafka_settings, TopicName.INCIDENTS)
    detected = of_type(incidents, "redress.incident.detected.v1")
    assert len(detected) == 1, [e.data for e in detected]
    incident = detected[0].data
    assert (incident.product, incident.category, incident.count) == ("router-x1", "service", 20)
    assert incident.priority == "P2"
    linked = of_type(links, "redress.routing.linked_to_incident.v1")
    assert len(linked) == len(burst) - min_count + 1
    assert {e.data.incident_id for e in linked} == {incident.incident_id}
    assert {e.subject for e in linked} <= {c.subject for c in burst}

    # Three hours later with no new complaints the window is empty: the incident resolves, once.
    offset_file.write_text(str(3 * 3600))
    incidents = await wait_for_events(
        kafka_settings,
        TopicName.INCIDENTS,
        lambda es: bool(of_type(es, "redress.incident.resolved.v1")),
        what="the incident to resolve",
    )
    (resolved,) = of_type(incidents, "redress.incident.resolved.v1")
    assert resolved.data.incident_id == incident.incident_id
    assert resolved.data.complaints_linked == len(linked)
    assert len(of_type(incidents, "redress.incident.detected.v1")) == 1


async def test_clocks_survive_a_restart_on_another_machine(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
    tmp_path: Path,
) -> None:
    offset_file = tmp_path / "clock-offset"
    offset_file.write_text("0")
    clock_env = {"REDRESS_ROUTING_CLOCK_OFFSET_FILE": str(offset_file)}
    first = service_factory("routing", **clock_env).start()
    complaint = make_received()
    await producer.publish(complaint)
    events = await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.sla_clock_started.v1")),
        subject=complaint.subject,
        what="the clock to start",
    )
    (started,) = of_type(events, "redress.routing.sla_clock_started.v1")
    first.stop()
    # A new worker with an empty data directory: its tables can only come from the changelog.
    service_factory(
        "routing", REDRESS_ROUTING_DATA_DIR=str(tmp_path / "elsewhere"), **clock_env
    ).start()
    due = {d.target: d.due_at for d in started.data.deadlines}
    offset = (due[SlaTarget.FIRST_RESPONSE] - datetime.now(UTC)).total_seconds() + 60
    offset_file.write_text(str(offset))
    events = await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.sla_breached.v1")),
        subject=complaint.subject,
        what="the breach, noticed by the new worker",
    )
    (breach,) = of_type(events, "redress.routing.sla_breached.v1")
    assert breach.data.target == SlaTarget.FIRST_RESPONSE
    assert breach.data.due_at == due[SlaTarget.FIRST_RESPONSE]
    assert len(of_type(events, "redress.routing.sla_clock_started.v1")) == 1


def test_a_bad_policy_file_stops_the_worker_naming_the_line(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    from redress_routing.settings import DEFAULT_RULES

    text = DEFAULT_RULES.read_text().replace("factor: 3.0", "factor: lots")
    bad = tmp_path / "rules.yaml"
    bad.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "factor: lots" in row)
    worker = service_factory("routing", REDRESS_ROUTING_RULES_FILE=str(bad))
    worker.start(wait_ready=False)
    assert worker.process is not None
    assert worker.process.wait(timeout=WAIT_S) != 0
    log = worker.log_tail()
    assert f"{bad}:{line}: surge.factor" in log, log
    assert "refusing to start" in log


async def test_a_bad_record_is_dead_lettered_and_the_worker_carries_on(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
) -> None:
    service_factory("routing").start()
    complaint = make_received()
    await producer.send_raw(
        kafka_settings.topic(TopicName.COMPLAINTS),
        key=complaint.subject.encode(),
        value=b"{not json",
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_id", str(uuid.uuid4()).encode()),
            ("ce_source", b"/tests/garbage"),
            ("ce_type", b"redress.complaint.received.v1"),
            ("content-type", b"application/json"),
        ],
    )
    await producer.publish(complaint)  # same key: read after the bad record
    await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.prioritized.v1")),
        subject=complaint.subject,
        what="the good complaint after the bad record",
    )
    dead = await read_topic(kafka_settings, TopicName.DEADLETTER)
    reasons = [dict(r.headers).get("dlq_reason") for r in dead]
    consumers = {dict(r.headers).get("dlq_consumer", b"").decode() for r in dead}
    assert len(dead) == 1 and reasons[0], reasons
    assert any(c.endswith("redress-routing") for c in consumers)


async def test_a_broker_outage_loses_no_decision(
    kafka: Any,
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
) -> None:
    """A broker restart while the worker runs: every complaint still gets all its decisions.

    Under load a restart can leave the worker's idempotent producer refused for ever with
    OutOfOrderSequenceNumber (an agent then retries one publish indefinitely: nothing lost,
    nothing decided); the worker renews its producer. Decisions are counted by event id: a
    publish repeated across the outage may append the same event (same id) twice, which every
    reader drops (see tests/unit/routing/test_delivery.py for the retry rules themselves).
    """
    if kafka.broker is None:
        pytest.skip("needs the suite-controlled local broker")
    routing = service_factory("routing").start()
    before = make_received()
    await producer.publish(before)
    await asyncio.to_thread(kafka.broker.stop)
    try:
        await asyncio.sleep(2)  # not an assertion: lets the worker notice the broker is gone
    finally:
        await asyncio.to_thread(kafka.broker.start)
    after = make_received()
    await publish_until_acknowledged(producer, after)
    for complaint in (before, after):
        events = await wait_for_events(
            kafka_settings,
            TopicName.ROUTING,
            lambda es: bool(of_type(es, "redress.routing.sla_clock_started.v1")),
            subject=complaint.subject,
            what=f"decisions after the outage (worker log: {routing.log_path})",
        )
        assert len({e.id for e in of_type(events, "redress.routing.prioritized.v1")}) == 1
        assert len({e.id for e in of_type(events, "redress.routing.assigned.v1")}) == 1
    # Ready again, and its log says what happened (it used to be empty: see __main__.py).
    await asyncio.to_thread(routing.wait_ready, timeout_s=WAIT_S)
    said = logged(routing)
    assert {"routing agent started", "routing partitions assigned"} <= said
    assert "routing table recovery completed" in said
    assert not {"routing agent crashed", "routing could not process a record; dead-lettered"} & said


async def test_a_topic_missing_at_a_rebalance_is_taken_up_again(
    service_factory: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
) -> None:
    """A rebalance that does not see one of the worker's topics (as after a broker restart,
    while it is still loading) leaves the agent on it idle. The worker says so and is not
    ready; once the topic is back it rejoins the group (its own watch, or aiokafka noticing the
    metadata change) and the agent works again."""
    routing = service_factory("routing").start()
    cases = kafka_settings.topic(TopicName.CASES)
    admin = AIOKafkaAdminClient(**kafka_settings.client_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        await admin.delete_topics([cases])
        await wait_for_log(routing, "routing partitions assigned without some topics")
        async with httpx.AsyncClient(base_url=routing.url, timeout=5.0) as client:
            assert (await client.get("/readyz")).status_code == 503  # an agent is idle
        deadline = time.monotonic() + WAIT_S
        while cases not in await admin.list_topics():  # a deletion may still be finishing
            assert time.monotonic() < deadline, "could not re-create the cases topic"
            await ensure_topics(kafka_settings)
            await asyncio.sleep(0.5)
        await wait_for_readiness(routing, ready=True, what="ready again with the cases topic")
    finally:
        await admin.close()
    complaint = make_received()
    await producer.publish(complaint)
    await wait_for_events(
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.sla_clock_started.v1")),
        subject=complaint.subject,
        what="the clock to start",
    )
    response = Envelope.new(
        AgentResponded(
            complaint_id=complaint.data.complaint_id,
            actor="agent-7",
            message="We are on it.",
            responded_at=datetime.now(UTC),
        ),
        subject=complaint.subject,
        source="/tests/recovery",
    )
    await producer.publish(response)
    await wait_for_events(  # the response is on the re-created cases topic
        kafka_settings,
        TopicName.ROUTING,
        lambda es: bool(of_type(es, "redress.routing.sla_met.v1")),
        subject=complaint.subject,
        what="the response to stop the first response clock",
    )
