"""Adapter: consumes the event topics and feeds the pure projection, batch by batch.

Offsets live in the read-model store (same transaction as the projection); on every partition
assignment the consumer seeks to the stored offset. When the active store changes (a rebuild
switched reporting to a fresh store), the consumer is closed and reopened, so it seeks to the
new store's offsets and carries on from where the rebuild stopped. Offsets are also committed to
Kafka after each batch, only so that standard consumer-lag tooling sees the group's progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import Gauge
from redress_events import Envelope, EventData, InvalidEvent, TopicName, decode_record
from redress_kafka.deadletter import DeadLetterWriter
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings
from redress_observability.metrics import CONSUMER_LAG, DUPLICATES_DROPPED, EVENTS_PROCESSED

from redress_reporting import metrics as business_metrics
from redress_reporting.active import ActiveStore
from redress_reporting.store import ReadModelStore

log = logging.getLogger(__name__)

PROJECTED_TOPICS = (TopicName.COMPLAINTS, TopicName.ROUTING, TopicName.INCIDENTS, TopicName.CASES)

PROJECTION_LAG = Gauge(
    "redress_projection_lag_seconds",
    "Now minus the event time of the last event the read model applied",
)


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: Projector) -> None:
        self.projector = projector

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        stored = await asyncio.to_thread(self.projector.store.offsets, self.projector.group_id)
        consumer = self.projector.consumer
        assert consumer is not None
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)


class Projector:
    def __init__(
        self,
        *,
        stores: ActiveStore,
        kafka: KafkaSettings,
        group_id: str,
        batch_size: int,
        producer: EventProducer,
        batch_linger_s: float = 0.0,
    ) -> None:
        self.stores = stores
        # The store of the current consumer session: batches and seeks use it, never a mix.
        self.store: ReadModelStore = stores.current()
        self.kafka = kafka
        self.group_id = group_id
        self.batch_size = batch_size
        self.batch_linger_s = batch_linger_s
        self.consumer: AIOKafkaConsumer | None = None
        self.deadletters = DeadLetterWriter(
            producer, settings=kafka, consumer=group_id, service="reporting"
        )
        self.last_event_time: float | None = None
        self.lag: int | None = None
        self._stopping = asyncio.Event()
        self._lag_checked = 0.0

    async def run(self) -> None:
        """Consume until `stop()`; reconnects on broker loss, never stops on one bad record."""
        while not self._stopping.is_set():
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("projector failed; restarting in 1s")
                await asyncio.sleep(1.0)

    def stop(self) -> None:
        self._stopping.set()

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.kafka.client_kwargs(),  # type: ignore[arg-type]
            group_id=self.group_id,
            client_id=f"{self.kafka.client_id_prefix}-reporting",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            isolation_level="read_committed",
        )
        self.consumer = consumer
        self.store = self.stores.current()
        await consumer.start()
        try:
            consumer.subscribe(
                [self.kafka.topic(t) for t in PROJECTED_TOPICS],
                listener=_SeekToStoredOffsets(self),
            )
            while not self._stopping.is_set():
                if self.stores.current() is not self.store:
                    log.info("read-model store switched: reopening the consumer")
                    return
                batches = await consumer.getmany(timeout_ms=200, max_records=self.batch_size)
                if batches:
                    await self._apply(batches)
                await self._update_lag(consumer)
                if batches and sum(map(len, batches.values())) < self.batch_size:
                    # Caught up: let the next batch gather for a moment. Each batch costs a
                    # transaction, a commit and a few thread hops whatever its size, so at a
                    # live trickle this trades a few milliseconds of visibility for most of
                    # the CPU (while catching up, batches are full and nobody waits).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.batch_linger_s)
        finally:
            self.consumer = None
            await consumer.stop()

    async def _apply(self, batches: dict[TopicPartition, list[Any]]) -> None:
        # Decoding and applying run off the event loop (which keeps fetching meanwhile).
        events, invalid = await asyncio.to_thread(decode_batch, batches)
        for record, exc in invalid:  # dead-lettered before the batch's offsets are stored
            await self.deadletters.send(
                record, reason=exc.reason, detail=exc.detail, errors=exc.errors
            )
        next_offsets = {
            (tp.topic, tp.partition): records[-1].offset + 1
            for tp, records in batches.items()
            if records
        }
        result = await asyncio.to_thread(
            self.store.apply, events, group_id=self.group_id, next_offsets=next_offsets
        )
        await asyncio.to_thread(
            business_metrics.observe_applied, events, self.store.engine, stored=result.fresh
        )
        processed = Counter((envelope.data.topic.value, envelope.type) for envelope in events)
        for (topic, event_type), count in processed.items():
            EVENTS_PROCESSED.labels("reporting", topic, event_type).inc(count)
        if len(events) > result.applied:
            DUPLICATES_DROPPED.labels("reporting", "all").inc(len(events) - result.applied)
        if events:
            newest = max(e.time for e in events).timestamp()
            self.last_event_time = max(self.last_event_time or 0.0, newest)
            PROJECTION_LAG.set(max(0.0, time.time() - self.last_event_time))
        consumer = self.consumer
        if consumer is not None:
            try:
                await consumer.commit({tp: off for tp, off in _tps(next_offsets).items()})
            except Exception as exc:
                log.info("offset commit to kafka skipped", extra={"error": str(exc)})

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._lag_checked < 1.0:
            return
        self._lag_checked = now
        total = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await consumer.position(tp)
            lag = max(0, highwater - position)
            total += lag
            CONSUMER_LAG.labels("reporting", self.group_id, tp.topic, str(tp.partition)).set(lag)
        self.lag = total
        if self.last_event_time is not None:
            PROJECTION_LAG.set(0.0 if total == 0 else max(0.0, time.time() - self.last_event_time))


def tune_gc_for_batches(young_threshold: int = 50_000) -> None:
    """For a process that projects batches (the service, `redress rebuild`, `redress verify`).

    A batch allocates some fifty objects per event (envelope, data, views, rows) and frees
    nearly all of them by reference counting when it is done. CPython's cycle collector runs
    every 700 net allocations and then re-scans everything of the batch still alive: about a
    sixth of the projection's CPU. Here it runs every `young_threshold` allocations (memory
    stays bounded by the batch), and what start-up made (modules, schemas) is frozen out of
    the collections. Process-wide: call it once, from a `main`."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)


def decode_batch(
    batches: dict[TopicPartition, list[Any]],
) -> tuple[list[Envelope[EventData]], list[tuple[Any, InvalidEvent]]]:
    """The records of a fetch as events, in fetch order, and the records that are not valid
    events (with why)."""
    events: list[Envelope[EventData]] = []
    invalid: list[tuple[Any, InvalidEvent]] = []
    for records in batches.values():
        for record in records:
            try:
                events.append(
                    decode_record(
                        record.key,
                        record.value,
                        record.headers,
                        position=(record.topic, record.partition, record.offset),
                    )
                )
            except InvalidEvent as exc:
                invalid.append((record, exc))
    return events, invalid


def _tps(offsets: dict[tuple[str, int], int]) -> dict[TopicPartition, int]:
    return {TopicPartition(t, p): o for (t, p), o in offsets.items()}
