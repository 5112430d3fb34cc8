"""Composition root of routing: the faust app, its agents, timers and web pages.

Three agents, each with concurrency 1 (faust-streaming #606) and each owning one table whose
key matches its input's partitioning:

- `clocks` reads complaints, routing decisions and case events (all keyed by complaint id) and
  keeps each complaint's SLA clocks and escalation. It also re-keys every ComplaintReceived to
  the two internal topics below, so that state about a customer and about a product lives on
  one partition however many workers run.
- `prioritize` reads complaints keyed by (a hash of) the customer id: priority and queue rules
  with the customer's recent complaints.
- `surge` reads complaints keyed by product/category: sliding windows and incidents.

Agents are thin: decode, call the pure core, publish with the shared idempotent producer
(acks=all) and await the ack, then update the table — so a crash can repeat an output (same
deterministic id) but never lose one. Timers cannot change tables (faust only allows that inside
a stream), so the SLA timer publishes warnings and breaches and the `clocks` agent records them
when it reads them back; the surge timer sends itself a tick through the surge topic.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from datetime import datetime
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redress_events import (
    Envelope,
    TopicName,
    decode_record,
    derived_event_id,
    registered_event_types,
)
from redress_events.catalogue import (
    AgentResponded,
    ComplaintAcknowledged,
    ComplaintAssigned,
    ComplaintLinkedToIncident,
    ComplaintPrioritized,
    ComplaintReceived,
    ComplaintResolved,
    ComplaintWithdrawn,
    CustomerReplied,
    ExternalAgentResponded,
    InformationRequested,
    SlaBreached,
    SlaWarning,
)
from redress_events.topics import EVENT_PARTITIONS
from redress_kafka.deadletter import DeadLetterWriter
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings
from redress_observability.metrics import DUPLICATES_DROPPED, EVENTS_PROCESSED, EVENTS_PUBLISHED

from redress_routing.clock import clock_from
from redress_routing.clocks import ClockMachine, ComplaintClock, Emit
from redress_routing.config import load_policy
from redress_routing.delivery import process_or_dead_letter
from redress_routing.delivery import until_acknowledged as retry_until_acknowledged
from redress_routing.diagnostics import (
    AgentRuns,
    AssignmentWatch,
    ConnectionWatch,
    StallWatch,
    by_topic,
    log_exception,
    logged_agent,
)
from redress_routing.rules import CustomerHistory, decide, longest_repeat_window_days
from redress_routing.settings import RoutingSettings
from redress_routing.surge import SurgeDetector, SurgeEmit, SurgeState, surge_key

log = logging.getLogger(__name__)

TICK_HEADER = "redress_surge_tick"
# Self-watch (see diagnostics.py): how often Kafka connectivity, the assignment and progress are
# checked; how long a partition with records waiting may not move before it is logged as
# stalled; how often the consumer refreshes metadata (aiokafka rejoins the group when a
# subscribed topic's partitions change in it); least time between two rejoins asked for an
# assignment lacking a topic.
WATCH_INTERVAL_S = 2.0
STALL_AFTER_S = 20.0
METADATA_MAX_AGE_S = 10.0
REJOIN_INTERVAL_S = 15.0
HISTORY_KEPT = 200
# Event types the clocks agent acts on; everything else on its topics is skipped unread.
CLOCK_INPUTS = {
    cls.event_type
    for cls in (
        ComplaintReceived,
        ComplaintWithdrawn,
        ExternalAgentResponded,
        ComplaintPrioritized,
        ComplaintLinkedToIncident,
        SlaWarning,
        SlaBreached,
        ComplaintAcknowledged,
        AgentResponded,
        InformationRequested,
        CustomerReplied,
        ComplaintResolved,
    )
}


def customer_key(customer_id: str) -> str:
    """Internal topics and tables key on a digest, so customer ids do not spread further."""
    return hashlib.sha256(customer_id.encode()).hexdigest()[:32]


def _header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", "replace") if value is not None else ""
    return None


class RoutingApp(faust.App):
    """A faust app that creates its internal topics before its consumer subscribes.

    faust declares internal topics while the consumer is already joining the group; the
    assignor then skips any topic missing from the metadata it has ("Ignoring missing topic")
    and the agent on it receives nothing until the next rebalance. Creating them first, and
    waiting until the broker's metadata shows every topic the worker reads, closes that race.
    (A rebalance can still meet a broker whose metadata is incomplete, e.g. just after it
    restarted: `create_app` watches for an assignment that lacks a topic and rejoins.)
    """

    internal_topics: dict[str, dict[str, str]] = {}
    source_topics: set[str] = set()

    async def on_first_start(self) -> None:
        await create_internal_topics(self.redress_kafka, self.internal_topics, self.source_topics)
        await super().on_first_start()

    redress_kafka: KafkaSettings


def unready_topics(described: Iterable[dict[str, Any]], names: Iterable[str]) -> list[str]:
    """Which of `names` a metadata answer does not show whole: unknown, in error, with fewer
    partitions than expected, or with a partition that has no leader."""
    by_name = {t["topic"]: t for t in described}
    missing = []
    for name in sorted(set(names)):
        topic = by_name.get(name)
        partitions = (topic or {}).get("partitions") or []
        if (
            topic is None
            or topic.get("error_code")
            or len(partitions) < EVENT_PARTITIONS
            or any(p.get("error_code") or p.get("leader", -1) < 0 for p in partitions)
        ):
            missing.append(name)
    return missing


async def create_internal_topics(
    kafka: KafkaSettings, topics: dict[str, dict[str, str]], wait_for: Iterable[str] = ()
) -> None:
    """Create the internal topics, then wait until metadata shows them and `wait_for` whole."""
    expected = set(topics) | set(wait_for)
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())  # type: ignore[arg-type]
    delay = 0.5
    while True:
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, EVENT_PARTITIONS, 1, topic_configs=config)
                for name, config in topics.items()
                if name not in existing
            ]
            if missing:
                with suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
            unready = unready_topics(await admin.describe_topics(sorted(expected)), expected)
            if not unready:
                return
            log.info(
                "routing waiting for topics to appear in kafka metadata",
                extra={"topics": [t.removeprefix(kafka.topic_prefix) for t in unready]},
            )
        except (KafkaError, OSError) as exc:
            log.warning("routing waiting for kafka to create topics", extra={"error": str(exc)})
        finally:
            await admin.close()
            admin = AIOKafkaAdminClient(**kafka.client_kwargs())  # type: ignore[arg-type]
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def create_app(settings: RoutingSettings | None = None) -> faust.App:
    settings = settings or RoutingSettings()
    policy = load_policy(settings.rules_file)  # a bad file stops the service here, with a message
    machine = ClockMachine(policy)
    detector = SurgeDetector(policy.surge)
    clock = clock_from(settings.clock_offset_file)
    repeat_days = longest_repeat_window_days(policy)
    kafka = settings.kafka
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Group, tables and internal topics carry the topic prefix: environments sharing a cluster
    # must not share (or recover) each other's state.
    app_id = f"{kafka.topic_prefix}{settings.app_id}"

    app = RoutingApp(
        app_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        store=settings.table_store,
        datadir=str(settings.data_dir),
        web_port=settings.port,
        web_bind=settings.host,
        web_host=settings.host,
        topic_allow_declare=True,
        topic_replication_factor=1,
        topic_partitions=EVENT_PARTITIONS,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        # aiokafka rejoins the group when a subscribed topic's partitions change in metadata;
        # refreshing often lets a worker whose assignment skipped a topic (missing from the
        # broker's metadata at the rebalance, e.g. just after a restart) notice it soon.
        consumer_metadata_max_age_ms=int(METADATA_MAX_AGE_S * 1000),
    )
    producer = EventProducer(kafka, client_id="routing")
    deadletters = DeadLetterWriter(producer, settings=kafka, consumer=app_id, service="routing")

    def raw_topic(*names: str, internal: bool = False) -> Any:
        return app.topic(
            *names,
            value_serializer="raw",
            key_serializer="raw",
            partitions=EVENT_PARTITIONS if internal else None,
            internal=internal,
        )

    clock_inputs = raw_topic(
        kafka.topic(TopicName.COMPLAINTS),
        kafka.topic(TopicName.ROUTING),
        kafka.topic(TopicName.CASES),
    )
    by_customer_name = f"{app_id}-complaints-by-customer"
    by_product_name = f"{app_id}-complaints-by-product"
    by_customer = raw_topic(by_customer_name, internal=True)
    by_product = raw_topic(by_product_name, internal=True)

    def table(name: str) -> Any:
        return app.Table(
            name,
            partitions=EVENT_PARTITIONS,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
        )

    clocks = table("sla-clocks")
    histories = table("customer-history")
    surges = table("surge-windows")
    app.redress_kafka = kafka
    app.source_topics = {
        kafka.topic(TopicName.COMPLAINTS),
        kafka.topic(TopicName.ROUTING),
        kafka.topic(TopicName.CASES),
    }
    week_ms = str(7 * 24 * 3600 * 1000)
    app.internal_topics = {
        by_customer_name: {"retention.ms": week_ms},
        by_product_name: {"retention.ms": week_ms},
        **{
            f"{app_id}-{name}-changelog": {"cleanup.policy": "compact"}
            for name in ("sla-clocks", "customer-history", "surge-windows")
        },
    }

    # ------------------------------------------------------------------ publishing

    async def until_acknowledged(what: str, send: Callable[[], Awaitable[Any]]) -> None:
        """Retry while the broker is away: an agent never moves past an input whose outputs
        are not acknowledged (the offset is committed only after this returns)."""
        await retry_until_acknowledged(what, send, connect=producer.start, renew=producer.renew)

    async def publish(envelopes: list[Envelope[Any]]) -> None:
        if not envelopes:
            return
        await until_acknowledged("publish", lambda: producer.publish_many(envelopes))
        for out in envelopes:
            EVENTS_PUBLISHED.labels("routing", out.topic.value, out.type).inc()

    async def send_raw(topic: str, key: bytes, value: bytes | None, headers: Any) -> None:
        await until_acknowledged(
            "re-key",
            # Bounded like publish_many: an idempotent send never expires by itself.
            lambda: asyncio.wait_for(
                producer.send_raw(topic, key=key, value=value, headers=list(headers or ())),
                timeout=kafka.produce_timeout_s,
            ),
        )

    def wrap(emits: Iterable[Emit], *, subject: str, cause: Envelope[Any] | None) -> list[Any]:
        return [
            Envelope.new(
                e.data, subject=subject, source=settings.source, cause=cause, event_id=e.event_id
            )
            for e in emits
        ]

    def topic_label(message: Any) -> str:
        """The logical topic name: metric labels must not vary with the environment prefix."""
        return str(message.topic).removeprefix(kafka.topic_prefix)

    def decode(message: Any) -> Envelope[Any]:
        return decode_record(
            message.key,
            message.value,
            message.headers,
            position=(message.topic, message.partition, message.offset),
        )

    async def handle_safely(message: Any, handler: Any) -> None:
        """One bad record goes to the dead-letter topic; the agent carries on."""

        async def dead_letter(reason: str, detail: str, errors: Any) -> None:
            await until_acknowledged(
                "dead-letter",
                lambda: deadletters.send(message, reason=reason, detail=detail, errors=errors),
            )

        await process_or_dead_letter(
            handler,
            dead_letter,
            where={
                "topic": topic_label(message),
                "partition": message.partition,
                "offset": message.offset,
            },
        )

    # ------------------------------------------------------------------ clocks and escalation

    next_due: dict[str, datetime] = {}

    def remember_due(key: str, state: ComplaintClock) -> None:
        upcoming = [
            t.due_at if t.warned else t.warn_at
            for t in state.targets.values()
            if t.open and not t.breached
        ]
        if state.closed or not upcoming:
            next_due.pop(key, None)
        else:
            next_due[key] = min(upcoming)

    async def on_clock_event(envelope: Envelope[Any], message: Any) -> None:
        data = envelope.data
        EVENTS_PROCESSED.labels("routing", topic_label(message), envelope.type).inc()
        if isinstance(data, ComplaintReceived):
            customer = customer_key(data.customer.id).encode()
            product = surge_key(data.product, data.category).encode()
            await asyncio.gather(
                send_raw(by_customer_name, customer, message.value, message.headers),
                send_raw(by_product_name, product, message.value, message.headers),
            )
            return
        key = str(data.complaint_id)
        raw = clocks.get(key)
        state = ComplaintClock.model_validate(raw) if raw else machine.new(data.complaint_id)
        event_id = str(envelope.id)
        if isinstance(data, ComplaintPrioritized):
            new, emits = machine.on_prioritized(
                state, data, event_id=event_id, occurred_at=envelope.time
            )
        elif isinstance(data, SlaWarning | SlaBreached):
            new, emits = machine.on_signal(
                state,
                "sla_warning" if isinstance(data, SlaWarning) else "sla_breached",
                data.target,
                data.generation,
                event_id=event_id,
            )
        elif isinstance(data, ComplaintLinkedToIncident):
            new, emits = machine.on_incident_link(
                state,
                incident_id=str(data.incident_id),
                incident_priority=data.priority or policy.surge.incident_priority,
                policy_rule=data.policy_rule or policy.surge.policy_rule,
                event_id=event_id,
            )
        elif isinstance(data, ComplaintAcknowledged):
            new, emits = machine.on_fact(
                state, "acknowledged", at=data.acknowledged_at, event_id=event_id
            )
        elif isinstance(data, AgentResponded):
            new, emits = machine.on_fact(
                state,
                "responded",
                at=data.responded_at,
                event_id=event_id,
                holding_reply=data.holding_reply,
            )
        elif isinstance(data, ExternalAgentResponded):
            new, emits = machine.on_fact(
                state, "responded", at=data.responded_at, event_id=event_id
            )
        elif isinstance(data, InformationRequested):
            new, emits = machine.on_fact(state, "paused", at=data.requested_at, event_id=event_id)
        elif isinstance(data, CustomerReplied):
            new, emits = machine.on_fact(state, "resumed", at=data.replied_at, event_id=event_id)
        elif isinstance(data, ComplaintResolved):
            new, emits = machine.on_fact(state, "resolved", at=data.resolved_at, event_id=event_id)
        elif isinstance(data, ComplaintWithdrawn):
            new, emits = machine.on_fact(
                state, "withdrawn", at=data.withdrawn_at, event_id=event_id
            )
        else:
            return
        if new is state:
            DUPLICATES_DROPPED.labels("routing", topic_label(message)).inc()
            return
        await publish(wrap(emits, subject=key, cause=envelope))
        clocks[key] = new.model_dump(mode="json")
        remember_due(key, new)

    known_types = set(registered_event_types())
    agent_runs = AgentRuns()

    @app.agent(clock_inputs, concurrency=1)
    @logged_agent(agent_runs)
    async def track_clocks(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            event_type = _header(message.headers, "ce_type")
            if event_type in known_types and event_type not in CLOCK_INPUTS:
                continue  # a valid event this agent has no use for: skip without decoding

            async def handle(message: Any = message) -> None:
                envelope = decode(message)
                if envelope is not None:
                    await on_clock_event(envelope, message)

            await handle_safely(message, handle)

    in_flight: dict[Any, float] = {}
    last_full_scan = [0.0]

    @clocks.on_recover
    async def rescan_after_recovery() -> None:
        # Partitions (and their clocks) may have moved here: rebuild the index on the next tick.
        last_full_scan[0] = 0.0

    @app.timer(interval=settings.timer_interval_s)
    async def sla_timer() -> None:
        now = clock.now()
        if (
            not last_full_scan[0]
            or time.monotonic() - last_full_scan[0] >= settings.full_scan_interval_s
        ):
            # After a restart or rebalance the index is rebuilt from the (recovered) table.
            next_due.clear()
            for key, raw in list(clocks.items()):
                remember_due(key, ComplaintClock.model_validate(raw))
            last_full_scan[0] = time.monotonic()
        horizon = time.monotonic() - 120
        for stale in [i for i, at in in_flight.items() if at < horizon]:
            del in_flight[stale]
        for key in [k for k, at in next_due.items() if at <= now]:
            raw = clocks.get(key)
            if not raw:
                next_due.pop(key, None)
                continue
            state = ComplaintClock.model_validate(raw)
            fresh = [e for e in machine.due_signals(state, now) if e.event_id not in in_flight]
            if fresh:
                await publish(wrap(fresh, subject=key, cause=None))
                for emit in fresh:
                    in_flight[emit.event_id] = time.monotonic()

    # ------------------------------------------------------------------ priority and queue

    async def on_customer_complaint(envelope: Envelope[Any], message: Any) -> None:
        complaint = envelope.data
        if not isinstance(complaint, ComplaintReceived):
            return
        key = customer_key(complaint.customer.id)
        history: dict[str, str] = dict((histories.get(key) or {}).get("complaints", {}))
        complaint_id = str(complaint.complaint_id)
        if complaint_id in history:
            DUPLICATES_DROPPED.labels("routing", topic_label(message)).inc()
            return
        earlier = tuple(
            datetime.fromisoformat(at) for cid, at in history.items() if cid != complaint_id
        )
        decision = decide(complaint, policy, CustomerHistory(earlier=earlier))
        common = {"complaint_id": complaint.complaint_id, "rules_version": policy.version}
        prioritized = ComplaintPrioritized(
            **common,
            priority=decision.priority,
            matched_rules=decision.priority_rules,
            reason=decision.priority_reason,
            received_at=complaint.received_at,
            jurisdiction=complaint.jurisdiction,
            product=complaint.product,
            category=complaint.category,
            public=complaint.public,
        )
        assigned = ComplaintAssigned(
            **common,
            queue=decision.queue,
            matched_rules=decision.queue_rules,
            reason=decision.queue_reason,
        )
        await publish(
            [
                Envelope.new(
                    data,
                    subject=envelope.subject,
                    source=settings.source,
                    cause=envelope,
                    event_id=derived_event_id(envelope.id, kind, policy.version),
                )
                for kind, data in (("prioritized", prioritized), ("assigned", assigned))
            ]
        )
        history[complaint_id] = complaint.received_at.isoformat()
        if repeat_days:
            cutoff = complaint.received_at.timestamp() - repeat_days * 86400
            history = {
                cid: at
                for cid, at in history.items()
                if datetime.fromisoformat(at).timestamp() >= cutoff
            }
        else:
            history = {complaint_id: history[complaint_id]}
        kept = sorted(history.items(), key=lambda item: item[1])[-HISTORY_KEPT:]
        histories[key] = {"complaints": dict(kept)}

    @app.agent(by_customer, concurrency=1)
    @logged_agent(agent_runs)
    async def prioritize(stream: Any) -> None:
        async for event in stream.events():
            message = event.message

            async def handle(message: Any = message) -> None:
                envelope = decode(message)
                if envelope is not None:
                    EVENTS_PROCESSED.labels(
                        "routing", "complaints-by-customer", envelope.type
                    ).inc()
                    await on_customer_complaint(envelope, message)

            await handle_safely(message, handle)

    # ------------------------------------------------------------------ surge detection

    def surge_envelopes(emits: list[SurgeEmit], cause: Envelope[Any] | None) -> list[Any]:
        return [
            Envelope.new(
                e.data,
                subject=e.subject,
                source=settings.source,
                cause=cause,
                event_id=e.event_id,
            )
            for e in emits
        ]

    async def on_product_record(message: Any) -> None:
        key = message.key.decode()
        raw = surges.get(key)
        tick = _header(message.headers, TICK_HEADER)
        if tick is not None:
            if not raw:
                return
            state = SurgeState.model_validate(raw)
            new, emits = detector.on_tick(state, now=datetime.fromisoformat(tick))
            cause = None
        else:
            envelope = decode(message)
            complaint = envelope.data
            if not isinstance(complaint, ComplaintReceived):
                return
            EVENTS_PROCESSED.labels("routing", "complaints-by-product", envelope.type).inc()
            if raw:
                state = SurgeState.model_validate(raw)
            else:
                state = SurgeState(product=complaint.product, category=complaint.category)
            new, emits = detector.on_complaint(
                state, complaint_id=complaint.complaint_id, received_at=complaint.received_at
            )
            cause = envelope
        if new is state:
            DUPLICATES_DROPPED.labels("routing", topic_label(message)).inc()
            return
        await publish(surge_envelopes(emits, cause))
        surges[key] = new.model_dump(mode="json")

    @app.agent(by_product, concurrency=1)
    @logged_agent(agent_runs)
    async def detect_surges(stream: Any) -> None:
        async for event in stream.events():
            message = event.message

            async def handle(message: Any = message) -> None:
                await on_product_record(message)

            await handle_safely(message, handle)

    @app.timer(interval=settings.surge_tick_interval_s)
    async def surge_timer() -> None:
        now = clock.now()
        for key, raw in list(surges.items()):
            if (
                raw
                and raw.get("incident")
                and detector.resolution_due(SurgeState.model_validate(raw), now)
            ):
                await send_raw(
                    by_product_name, key.encode(), None, [(TICK_HEADER, now.isoformat().encode())]
                )

    # ------------------------------------------------------------------ diagnostics

    prefix = kafka.topic_prefix
    assignment = AssignmentWatch(
        app.source_topics | set(app.internal_topics),
        prefix=prefix,
        grace_s=WATCH_INTERVAL_S,
        every_s=REJOIN_INTERVAL_S,
    )
    progress_topics = app.source_topics | {by_customer_name, by_product_name}

    def assigned_topics() -> set[str]:
        return {tp.topic for tp in app.consumer.assignment()}

    def assignment_gaps() -> list[str]:
        """Consumed topics missing from a non-empty assignment (the agent on them is idle)."""
        return assignment.gaps(assigned_topics())

    async def request_rejoin() -> None:
        """Refresh metadata and rejoin the group, so the assignor sees every topic again."""
        thread = app.consumer._thread  # type: ignore[attr-defined]

        async def rejoin() -> None:
            consumer = thread._ensure_consumer()
            await consumer._client.force_metadata_update()
            consumer._coordinator.request_rejoin()

        await thread.call_thread(rejoin)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def log_revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        log.info("routing partitions revoked", extra={"partitions": by_topic(revoked, prefix)})

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def log_assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        gaps = assignment_gaps()
        log.log(
            logging.WARNING if gaps else logging.INFO,
            "routing partitions assigned" + (" without some topics" if gaps else ""),
            extra={
                "partitions": by_topic(assigned, prefix),
                "generation": app.consumer_generation_id,
                **({"missing_topics": gaps} if gaps else {}),
            },
        )

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def log_recovered(app: Any, **kwargs: Any) -> None:
        log.info(
            "routing table recovery completed",
            extra={"generation": app.consumer_generation_id},
        )

    connection = ConnectionWatch(lambda: producer.is_connected())
    stalls = StallWatch(STALL_AFTER_S, prefix)

    async def positions() -> dict[Any, tuple[int | None, int]]:
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in progress_topics]
        if not tps:
            return {}
        highwaters = await asyncio.wait_for(consumer.highwaters(*tps), timeout=10.0)
        committed = consumer._committed_offset  # type: ignore[attr-defined]
        return {tp: (committed.get(tp), int(highwaters.get(tp) or 0)) for tp in tps}

    @app.timer(interval=WATCH_INTERVAL_S)
    async def watch() -> None:
        if not producer.started:  # renewed (or never connected): connect even when idle
            with suppress(Exception):
                await asyncio.wait_for(producer.start(), timeout=WATCH_INTERVAL_S * 5)
        await connection.check()
        if app.rebalancing or not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return
        try:
            now = time.monotonic()
            if assignment.rejoin_due(assigned_topics(), now):
                await request_rejoin()
            stalls.observe(await positions(), now)
        except (TimeoutError, KafkaError):
            pass  # the broker is away: ConnectionWatch has said so; look again next time
        except Exception as exc:  # a diagnostic must never take the worker down
            log_exception(log, "routing progress check failed", exc, level=logging.WARNING)

    # ------------------------------------------------------------------ web

    @app.task
    async def connect_producer() -> None:
        await producer.start_in_background()

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        # Ready only once partitions are assigned and tables recovered: before that, records
        # already on the topics wait, and a worker that says ready should be working.
        # An assignment that lacks a topic leaves an agent idle: not ready until repaired.
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        ok = (
            recovered
            and app.rebalancing is False
            and not assignment_gaps()
            and await producer.is_connected()
        )
        return web.json({"status": "ready" if ok else "not_ready"}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def flush_producer(app: Any, **kwargs: Any) -> None:
        await producer.stop()

    app.conf.redress_producer = producer  # type: ignore[attr-defined]
    app.conf.redress_policy = policy  # type: ignore[attr-defined]
    return app
