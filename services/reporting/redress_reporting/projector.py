"""Adapter: consumes the event topics and feeds the pure projection, batch by batch.

Offsets live in the read-model store (same transaction as the projection); on every partition
assignment the consumer seeks to the stored offset. When the active store changes (a rebuild
switched reporting to a fresh store), the consumer is closed and reopened, so it seeks to the
new store's offsets and carries on from where the rebuild stopped. Offsets are also committed to
Kafka (at most every `KAFKA_COMMIT_INTERVAL_S`, and once more when the topics go quiet), only so
that standard consumer-lag tooling sees the group's progress: it is never read back.
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
from redress_reporting.store import Applied, ReadModelStore

log = logging.getLogger(__name__)

PROJECTED_TOPICS = (TopicName.COMPLAINTS, TopicName.ROUTING, TopicName.INCIDENTS, TopicName.CASES)

# The Kafka commit is for lag tooling only (the store's offsets are the ones the projector
# resumes from), so it need not cost a coordinator round trip per batch.
KAFKA_COMMIT_INTERVAL_S = 1.0

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
        fetch_max_wait_ms: int = 500,
    ) -> None:
        self.stores = stores
        # The store of the current consumer session: batches and seeks use it, never a mix.
        self.store: ReadModelStore = stores.current()
        self.kafka = kafka
        self.group_id = group_id
        self.batch_size = batch_size
        self.batch_linger_s = batch_linger_s
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.consumer: AIOKafkaConsumer | None = None
        self.deadletters = DeadLetterWriter(
            producer, settings=kafka, consumer=group_id, service="reporting"
        )
        self.last_event_time: float | None = None
        self.lag: int | None = None
        self._stopping = asyncio.Event()
        self._lag_checked = 0.0
        self._to_commit: dict[tuple[str, int], int] = {}
        self._kafka_committed = 0.0
        self._next_batch_at = 0.0

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
            # How long the broker may hold a fetch that finds no new records. While records of
            # some partitions wait in the client's buffer (a batch being applied), the client
            # fetches only the others, and cannot fetch again before that fetch returns: with
            # the client's default (500 ms) a fetch of quiet partitions kept the busy ones
            # waiting up to half a second.
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        self.consumer = consumer
        self.store = self.stores.current()
        self._to_commit = {}
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
                    await self._gather(consumer, batches)
                    await self._apply(batches)
                await self._commit_to_kafka(consumer, quiet=not batches)
                await self._update_lag(consumer)
        finally:
            self.consumer = None
            with contextlib.suppress(Exception):
                await self._commit_to_kafka(consumer, quiet=True)
            await consumer.stop()

    async def _gather(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Any]]
    ) -> None:
        """Caught up (the poll returned less than a full batch): let the batch gather what
        arrives until `batch_linger_s` after the previous batch started to be applied. Each
        batch costs a transaction and a trip to a worker thread whatever its size, so at a live
        trickle this trades a few milliseconds of visibility for most of the CPU: a batch
        starts at most every `batch_linger_s` (the time the previous one took counts), and while
        catching up batches are full and nobody waits. Records are taken from the client as
        they come rather than left in its buffer: the client fetches a partition again only
        once what it holds of it was taken, so what arrives meanwhile is in this batch, not
        held back until the one after."""
        count = sum(map(len, batches.values()))
        while count < self.batch_size and not self._stopping.is_set():
            remaining_ms = int((self._next_batch_at - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            more = await consumer.getmany(
                timeout_ms=remaining_ms, max_records=self.batch_size - count
            )
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)
        self._next_batch_at = time.monotonic() + self.batch_linger_s

    async def _apply(self, batches: dict[TopicPartition, list[Any]]) -> None:
        # (max: a batch gathered over several polls holds a partition's records in offset
        # order, unless a rebalance re-seeked it meanwhile; its duplicates are dropped by id.)
        next_offsets = {
            (tp.topic, tp.partition): max(record.offset for record in records) + 1
            for tp, records in batches.items()
            if records
        }
        # Decoding, applying and observing run off the event loop (which keeps fetching
        # meanwhile), in one trip to a worker thread when every record is a valid event.
        events, invalid, result = await asyncio.to_thread(
            self._decode_and_apply, batches, next_offsets
        )
        if result is None:
            for record, exc in invalid:  # dead-lettered before the batch's offsets are stored
                await self.deadletters.send(
                    record, reason=exc.reason, detail=exc.detail, errors=exc.errors
                )
            result = await asyncio.to_thread(self._apply_events, events, next_offsets)
        processed = Counter((envelope.data.topic.value, envelope.type) for envelope in events)
        for (topic, event_type), count in processed.items():
            EVENTS_PROCESSED.labels("reporting", topic, event_type).inc(count)
        if len(events) > result.applied:
            DUPLICATES_DROPPED.labels("reporting", "all").inc(len(events) - result.applied)
        if events:
            newest = max(e.time for e in events).timestamp()
            self.last_event_time = max(self.last_event_time or 0.0, newest)
            PROJECTION_LAG.set(max(0.0, time.time() - self.last_event_time))
        self._to_commit.update(next_offsets)

    def _decode_and_apply(
        self, batches: dict[TopicPartition, list[Any]], next_offsets: dict[tuple[str, int], int]
    ) -> tuple[list[Envelope[EventData]], list[tuple[Any, InvalidEvent]], Applied | None]:
        """Decode the batch and, unless some record is not a valid event (those must be
        dead-lettered first), apply it: (events, invalid records, what applying did or None)."""
        events, invalid = decode_batch(batches)
        if invalid:
            return events, invalid, None
        return events, invalid, self._apply_events(events, next_offsets)

    def _apply_events(
        self, events: list[Envelope[EventData]], next_offsets: dict[tuple[str, int], int]
    ) -> Applied:
        """Store the events with the offsets that follow them (one transaction), then move the
        business metrics for what that transaction stored."""
        result = self.store.apply(events, group_id=self.group_id, next_offsets=next_offsets)
        business_metrics.observe_applied(
            events, self.store.engine, stored=result.fresh, stored_ids=result.fresh_ids
        )
        return result

    async def _commit_to_kafka(self, consumer: AIOKafkaConsumer, *, quiet: bool) -> None:
        """Commit what the store has stored, to Kafka: at most every `KAFKA_COMMIT_INTERVAL_S`
        while batches keep coming, and at once when a poll found nothing (so that at rest the
        group's committed offsets are the end of the topics)."""
        if not self._to_commit:
            return
        now = time.monotonic()
        if not quiet and now - self._kafka_committed < KAFKA_COMMIT_INTERVAL_S:
            return
        assigned = consumer.assignment()
        offsets = {tp: off for tp, off in _tps(self._to_commit).items() if tp in assigned}
        self._to_commit = {}
        self._kafka_committed = now
        if not offsets:
            return
        try:
            await asyncio.wait_for(consumer.commit(offsets), timeout=10.0)
        except Exception as exc:
            # Tried again with the next commit (unless a newer batch moved the partition on).
            self._to_commit = {(tp.topic, tp.partition): off for tp, off in offsets.items()} | (
                self._to_commit
            )
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
