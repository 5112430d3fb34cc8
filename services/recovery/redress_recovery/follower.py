"""Adapter: reads every partition of the complaints, routing and case topics from the start
into the casebook, so that any replica can answer for any complaint.

No consumer group: each replica follows the whole log. `caught_up` turns true once the
positions reach the end offsets seen at start (readiness waits for it), and `wait_until` lets
the guarantee processor wait until the casebook has seen everything up to given offsets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from redress_events import InvalidEvent, TopicName, decode_record
from redress_kafka.following import follow_until_stopped, partitions_of, record_lag
from redress_kafka.settings import KafkaSettings
from redress_observability.metrics import EVENTS_PROCESSED

from redress_recovery.casebook import Casebook

log = logging.getLogger(__name__)

FOLLOWED_TOPICS = (TopicName.COMPLAINTS, TopicName.ROUTING, TopicName.CASES)


class CaseFollower:
    def __init__(self, *, casebook: Casebook, kafka: KafkaSettings, batch_size: int = 500) -> None:
        self.casebook = casebook
        self.kafka = kafka
        self.batch_size = batch_size
        self.positions: dict[TopicPartition, int] = {}
        self.caught_up = False
        self.lag: int | None = None
        self._start_ends: dict[TopicPartition, int] | None = None
        self._progress = asyncio.Condition()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Follow until `stop()`; reconnects on broker loss, resuming from its own positions."""
        await follow_until_stopped(self._follow, self._stopping, what="case follower")

    def reached(self, targets: Mapping[TopicPartition, int]) -> bool:
        return all(self.positions.get(tp, 0) >= offset for tp, offset in targets.items())

    async def wait_until(self, targets: Mapping[TopicPartition, int]) -> None:
        """Return once the casebook holds every record before `targets` (next offsets)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.reached(targets))

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.kafka.client_kwargs(),  # type: ignore[arg-type]
            group_id=None,
            client_id=f"{self.kafka.client_id_prefix}-recovery-follower",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            tps = await partitions_of(consumer, [self.kafka.topic(t) for t in FOLLOWED_TOPICS])
            consumer.assign(tps)
            # One ListOffsets request for all partitions (seeking one by one costs seconds).
            beginnings = await consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(self.positions.get(tp, 0), beginnings[tp]))
            if self._start_ends is None:
                self._start_ends = dict(await consumer.end_offsets(tps))
            await self._notify()
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.batch_size)
                for tp, records in batches.items():
                    self._apply(records)
                    self.positions[tp] = records[-1].offset + 1
                for tp in tps:
                    # An empty partition (or one past compacted gaps) still counts as read.
                    position = await consumer.position(tp)
                    self.positions[tp] = max(self.positions.get(tp, 0), position)
                self._update_lag(consumer)
                await self._notify()
        finally:
            await consumer.stop()

    def _apply(self, records: Iterable[object]) -> None:
        for record in records:
            try:
                envelope = decode_record(
                    record.key,  # type: ignore[attr-defined]
                    record.value,  # type: ignore[attr-defined]
                    record.headers,  # type: ignore[attr-defined]
                )
            except InvalidEvent as exc:
                # The guarantee processor's consumer group dead-letters it once; every replica
                # following the log just skips it.
                log.info("skipping an invalid record", extra={"reason": exc.reason})
                continue
            if self.casebook.apply(envelope):
                EVENTS_PROCESSED.labels("recovery", envelope.data.topic.value, envelope.type).inc()

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        self.lag = record_lag(consumer, self.positions, service="recovery", group="follower")
        if not self.caught_up and self._start_ends is not None:
            self.caught_up = self.reached(self._start_ends)
            if self.caught_up:
                log.info("casebook caught up with the log", extra={"cases": len(self.casebook)})

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()
