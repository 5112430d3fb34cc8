"""Adapter: the guarantee processor. One consumer group across replicas reads the event topics;
on a triggering event (SlaBreached, SatisfactionRecorded) it asks the pure core which guarantees
fire, appends GuaranteeTriggered + CompensationIssued (acks=all), and only then commits the
trigger's offset.

Exactly once per (complaint, guarantee), across redelivery, restart, rebalance and replay:
- before it acts on newly assigned partitions it waits until the casebook has read every topic
  (the case topic above all) up to its end at that moment, so everything a previous owner
  appended (even one killed between the ack and the commit) is in the casebook and the
  guarantee is seen as paid;
- before it acts on a trigger it waits until the casebook has applied that trigger record;
- the events' ids are derived from (complaint id, guarantee id), so if anything slipped through
  it would be the same two events again, which every consumer drops;
- a revocation waits for the batch in flight, which commits before the partitions move.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import Counter
from redress_events import Envelope, EventData, InvalidEvent, TopicName, decode_record
from redress_kafka.deadletter import DeadLetterWriter
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings
from redress_observability.metrics import EVENTS_PUBLISHED

from redress_recovery.casebook import Casebook, complaint_id_of
from redress_recovery.domain import CaseStatus
from redress_recovery.follower import CaseFollower
from redress_recovery.guarantees import TRIGGER_EVENTS, GuaranteePayout, decide_guarantees
from redress_recovery.policy import RecoveryPolicy

log = logging.getLogger(__name__)

# Complaints are read only so that a bad record there is dead-lettered once per group.
PROCESSED_TOPICS = (TopicName.COMPLAINTS, TopicName.ROUTING, TopicName.CASES)

GUARANTEES_PAID = Counter(
    "redress_guarantees_paid_total",
    "Service guarantees triggered and compensated, by guarantee and compensation type",
    ["guarantee", "compensation_type"],
)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, processor: GuaranteeProcessor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The batch in flight finishes (and commits) before the partitions move on.
        async with self.processor.batch_lock:
            return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.processor.needs_catch_up = True


class GuaranteeProcessor:
    def __init__(
        self,
        *,
        casebook: Casebook,
        follower: CaseFollower,
        producer: EventProducer,
        kafka: KafkaSettings,
        policy: RecoveryPolicy,
        group_id: str,
        source: str,
        batch_size: int,
        clock: Callable[[], datetime],
        kill_after_compensation: bool = False,
    ) -> None:
        self.casebook = casebook
        self.follower = follower
        self.producer = producer
        self.kafka = kafka
        self.policy = policy
        self.group_id = group_id
        self.source = source
        self.batch_size = batch_size
        self.clock = clock
        self.kill_after_compensation = kill_after_compensation
        self.deadletters = DeadLetterWriter(
            producer, settings=kafka, consumer=group_id, service="recovery"
        )
        self.batch_lock = asyncio.Lock()
        self.needs_catch_up = True
        self.running = False
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Process until `stop()`. On any failure (the broker gone, an append not acknowledged)
        it starts over from the last committed offsets: nothing is skipped."""
        while not self._stopping.is_set():
            try:
                await self._process()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("guarantee processor failed; restarting in 1s")
                await asyncio.sleep(1.0)
            finally:
                self.running = False

    async def _process(self) -> None:
        await self.producer.start()
        consumer = AIOKafkaConsumer(
            **self.kafka.client_kwargs(),  # type: ignore[arg-type]
            group_id=self.group_id,
            client_id=f"{self.kafka.client_id_prefix}-recovery-guarantees",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.batch_size,
        )
        await consumer.start()
        self._consumer = consumer
        self.needs_catch_up = False  # set by every assignment, which comes with the first join
        try:
            consumer.subscribe(
                [self.kafka.topic(t) for t in PROCESSED_TOPICS], listener=_Rebalance(self)
            )
            self.running = True
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.batch_size)
                if not batches and not self.needs_catch_up:
                    continue
                async with self.batch_lock:
                    if self.needs_catch_up:
                        self.needs_catch_up = False
                        await self._catch_up(consumer)
                    if batches:
                        await self._handle(consumer, batches)
        finally:
            self._consumer = None
            await consumer.stop()

    async def _catch_up(
        self, consumer: AIOKafkaConsumer, topics: tuple[TopicName, ...] = PROCESSED_TOPICS
    ) -> None:
        """Wait until the casebook has read `topics` as far as they go right now."""
        ends: dict[TopicPartition, int] = {}
        for topic in topics:
            name = self.kafka.topic(topic)
            partitions = consumer.partitions_for_topic(name)
            if not partitions:
                # Waiting on nothing would let a redelivered trigger pay again: start over.
                raise RuntimeError(f"no metadata for {name} yet")
            ends.update(await consumer.end_offsets([TopicPartition(name, p) for p in partitions]))
        await self.follower.wait_until(ends)

    async def _handle(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Any]]
    ) -> None:
        for tp, records in batches.items():
            for record in records:
                await self._handle_record(tp, record)
        await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})

    async def _handle_record(self, tp: TopicPartition, record: Any) -> None:
        try:
            envelope = decode_record(
                record.key,
                record.value,
                record.headers,
                position=(record.topic, record.partition, record.offset),
            )
        except InvalidEvent as exc:
            await self.deadletters.send(
                record, reason=exc.reason, detail=exc.detail, errors=exc.errors
            )
            return
        if not isinstance(envelope.data, TRIGGER_EVENTS):
            return
        complaint_id = complaint_id_of(envelope.data)
        if complaint_id is None:
            return
        await self.follower.wait_until({tp: record.offset + 1})
        case = self.casebook.get(complaint_id)
        if case.status is CaseStatus.UNKNOWN and self._consumer is not None:
            # The complaint was received before its breach was written, but the follower may
            # not have read that far in the complaints topic yet: make sure before deciding.
            await self._catch_up(self._consumer, (TopicName.COMPLAINTS,))
            case = self.casebook.get(complaint_id)
        try:
            payouts = decide_guarantees(
                case,
                envelope.data,
                trigger_event_id=envelope.id,
                policy=self.policy,
                # The trigger's own time, not the wall clock: a redelivered or replayed trigger
                # then yields the very same events (same ids, same payloads).
                now=envelope.time,
            )
        except Exception as exc:
            # A trigger the core cannot decide on must not stop every other complaint's
            # guarantees. (Broker trouble is not caught here: it restarts from the commit.)
            log.exception("guarantee decision failed; dead-lettering the trigger")
            await self.deadletters.send(record, reason="processing_failed", detail=repr(exc))
            return
        for payout in payouts:
            await self._pay(payout, trigger=envelope, complaint_id=complaint_id)

    async def _pay(
        self, payout: GuaranteePayout, *, trigger: Envelope[EventData], complaint_id: uuid.UUID
    ) -> None:
        envelopes = [
            Envelope[EventData].new(
                data, subject=str(complaint_id), source=self.source, cause=trigger, event_id=eid
            )
            for eid, data in payout.events
        ]
        await self.producer.publish_many(envelopes)  # BrokerUnavailable: redelivered later
        for envelope in envelopes:
            self.casebook.apply(envelope)
            EVENTS_PUBLISHED.labels("recovery", envelope.topic.value, envelope.type).inc()
        GUARANTEES_PAID.labels(payout.guarantee.id, payout.guarantee.compensation.type.value).inc()
        log.info(
            "service guarantee paid",
            extra={"guarantee": payout.guarantee.id, "trigger_type": trigger.type},
        )
        if self.kill_after_compensation:
            # Fault injection (crash test): die after the ack, before the offset commit.
            os.kill(os.getpid(), signal.SIGKILL)
