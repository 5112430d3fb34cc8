"""Composition root of routing: the faust app, its agents, and its web pages.

Agents are thin: decode the record, call the pure core, publish the decisions with the shared
idempotent producer (acks=all) and only then let faust commit the input offset. Concurrency
stays 1 per agent (faust-streaming #606).
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redress_events import Envelope, InvalidEvent, TopicName, decode_record, derived_event_id
from redress_events.catalogue import ComplaintPrioritized, ComplaintReceived
from redress_kafka.deadletter import DeadLetterWriter
from redress_kafka.producer import EventProducer
from redress_observability.metrics import EVENTS_PROCESSED, EVENTS_PUBLISHED

from redress_routing.rules import decide_priority, load_rules
from redress_routing.settings import RoutingSettings

log = logging.getLogger(__name__)


def create_app(settings: RoutingSettings | None = None) -> faust.App:
    settings = settings or RoutingSettings()
    rules = load_rules(settings.rules_file)  # a bad file stops the service here, with a message
    kafka = settings.kafka
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        store=settings.table_store,
        datadir=str(settings.data_dir),
        web_port=settings.port,
        web_bind=settings.host,
        web_host=settings.host,
        topic_allow_declare=True,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
    )
    producer = EventProducer(kafka, client_id="routing")
    deadletters = DeadLetterWriter(
        producer, settings=kafka, consumer=settings.app_id, service="routing"
    )

    complaints_topic = app.topic(
        kafka.topic(TopicName.COMPLAINTS), value_serializer="raw", key_serializer="raw"
    )

    @app.task
    async def connect_producer() -> None:
        await producer.start_in_background()

    @app.agent(complaints_topic, concurrency=1)
    async def route(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                envelope = decode_record(
                    message.key,
                    message.value,
                    message.headers,
                    position=(message.topic, message.partition, message.offset),
                )
            except InvalidEvent as exc:
                await deadletters.send(
                    message, reason=exc.reason, detail=exc.detail, errors=exc.errors
                )
                continue
            EVENTS_PROCESSED.labels("routing", TopicName.COMPLAINTS.value, envelope.type).inc()
            if isinstance(envelope.data, ComplaintReceived):
                await _prioritize(envelope)

    async def _prioritize(envelope: Envelope[Any]) -> None:
        complaint: ComplaintReceived = envelope.data
        decision = decide_priority(complaint, rules)
        out = Envelope.new(
            ComplaintPrioritized(
                complaint_id=complaint.complaint_id,
                priority=decision.priority,
                matched_rules=decision.matched_rules,
                rules_version=rules.version,
                reason=decision.reason,
            ),
            subject=envelope.subject,
            source=settings.source,
            cause=envelope,
            event_id=derived_event_id(envelope.id, "prioritized", rules.version),
        )
        await producer.start()
        await producer.publish(out)
        EVENTS_PUBLISHED.labels("routing", out.topic.value, out.type).inc()

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ok = await producer.is_connected() and app.rebalancing is False
        return web.json({"status": "ready" if ok else "not_ready"}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.on_before_shutdown.connect
    async def flush_producer(app: Any, **kwargs: Any) -> None:
        await producer.stop()

    app.conf.redress_producer = producer  # type: ignore[attr-defined]
    return app
