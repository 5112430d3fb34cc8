"""Helpers for recovery's integration tests: seed complaints and SLA breaches the way intake and
routing would (through the shared EventProducer), and wait for what recovery does with them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redress_events import Envelope, EventData, TopicName
from redress_events.catalogue import ComplaintReceived, SlaBreached
from redress_events.catalogue.routing import SlaTarget
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings

from tests.support.complaints import complaint_body
from tests.support.kafka import read_events
from tests.support.services import ServiceProcess

GUARANTEE_GROUP = "redress-recovery-guarantees"


async def publish(settings: KafkaSettings, *envelopes: Envelope[Any]) -> list[tuple[str, int, int]]:
    """Append events (acks=all); returns where each landed as (topic, partition, offset)."""
    producer = EventProducer(settings, client_id="recovery-tests")
    await producer.start()
    try:
        acks = await producer.publish_many(envelopes)
    finally:
        await producer.stop()
    return [(ack.topic, ack.partition, ack.offset) for ack in acks]


async def publish_raw(
    settings: KafkaSettings, topic: TopicName, *, key: bytes, value: bytes
) -> tuple[str, int, int]:
    """Append a record that is not a valid event (no CloudEvents headers)."""
    producer = EventProducer(settings, client_id="recovery-tests")
    await producer.start()
    try:
        ack = await producer.send_raw(settings.topic(topic), key=key, value=value, headers=[])
    finally:
        await producer.stop()
    return (ack.topic, ack.partition, ack.offset)


def complaint_received(**overrides: Any) -> Envelope[ComplaintReceived]:
    complaint_id = uuid.uuid4()
    data = ComplaintReceived(
        **complaint_body(**overrides),
        complaint_id=complaint_id,
        received_at=datetime.now(UTC),
    )
    return Envelope[ComplaintReceived].new(data, subject=str(complaint_id), source="/tests/intake")


def sla_breached(
    complaint_id: uuid.UUID, target: SlaTarget = SlaTarget.FIRST_RESPONSE
) -> Envelope[SlaBreached]:
    now = datetime.now(UTC)
    data = SlaBreached(
        complaint_id=complaint_id,
        target=target,
        policy_id="standard",
        due_at=now - timedelta(minutes=1),
        breached_at=now,
    )
    return Envelope[SlaBreached].new(data, subject=str(complaint_id), source="/tests/routing")


async def wait_until_known(service: ServiceProcess, complaint_id: uuid.UUID) -> None:
    deadline = time.monotonic() + 60
    async with service.client() as client:
        while True:
            response = await client.get(f"/v1/complaints/{complaint_id}/case")
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert response.status_code == 200, response.text


async def case_events(
    settings: KafkaSettings, complaint_id: uuid.UUID, event_type: type[EventData] | None = None
) -> list[Envelope[EventData]]:
    events = await read_events(settings, TopicName.CASES, subject=str(complaint_id))
    return [e for e in events if event_type is None or isinstance(e.data, event_type)]


async def wait_for_case_events(
    settings: KafkaSettings,
    complaint_id: uuid.UUID,
    predicate: Callable[[list[Envelope[EventData]]], bool],
    *,
    timeout_s: float = 60.0,
) -> list[Envelope[EventData]]:
    deadline = time.monotonic() + timeout_s
    while True:
        events = await case_events(settings, complaint_id)
        if predicate(events) or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.3)


def count(events: list[Envelope[EventData]], event_type: type[EventData]) -> int:
    return sum(isinstance(e.data, event_type) for e in events)


async def committed_offsets(settings: KafkaSettings, group_id: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta is not None}


async def wait_until_committed_past(
    settings: KafkaSettings, group_id: str, position: tuple[str, int, int], *, timeout_s: float = 60
) -> bool:
    """True once `group_id` has committed past the record at `position` (topic, partition,
    offset): the processor has handled it for good."""
    topic, partition, offset = position
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        committed = await committed_offsets(settings, group_id)
        if committed.get(TopicPartition(topic, partition), -1) > offset:
            return True
        await asyncio.sleep(0.5)
    return False


async def wait_for_stable_group(
    settings: KafkaSettings, group_id: str, members: int, *, timeout_s: float = 60
) -> bool:
    """True once `group_id` is Stable with exactly `members` members (rebalance finished)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        try:
            (response,) = await admin.describe_consumer_groups([group_id])
        finally:
            await admin.close()
        # DescribeGroups: (error_code, group_id, state, protocol_type, protocol, members, ...)
        group = response.groups[0]
        if group[2] == "Stable" and len(group[5]) == members:
            return True
        await asyncio.sleep(0.5)
    return False
