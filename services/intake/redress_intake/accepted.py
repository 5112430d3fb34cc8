"""Adapter: every intake replica reads the complaints topic (keys and headers, never a value)
and learns the request digest of each keyed complaint, so that an Idempotency-Key is known to
every replica, and to this one after a restart, whichever replica accepted it.

No consumer group. At start it reads back `ttl_s` (at most `max_keys` records per partition)
and marks the store complete once it reaches the end offsets seen at start; then it follows the
end of the topic, about `FETCH_MAX_WAIT_MS` (25 ms) behind the writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from redress_events import TopicName
from redress_kafka.following import follow_until_stopped, partitions_of, record_lag
from redress_kafka.settings import KafkaSettings

from redress_intake.idempotency import DIGEST_HEADER, IdempotencyStore

log = logging.getLogger(__name__)

LAG_GROUP = "accepted-keys"

# The follower reads every record intake writes. Fetching as soon as one byte is there made it a
# fetch round trip per produce batch under load (a tenth of intake's CPU at saturation, py-spy);
# batching fetches costs at most this much more delay before another replica knows a key.
FETCH_MAX_WAIT_MS = 25
FETCH_MIN_BYTES = 256 * 1024


def learn_accepted(store: IdempotencyStore, records: Iterable[object], *, now_s: float) -> int:
    """Teach `store` the keyed complaints among `records`; returns how many it learned."""
    learned = 0
    for record in records:
        digest = next(
            (v for k, v in record.headers if k == DIGEST_HEADER),  # type: ignore[attr-defined]
            None,
        )
        key = record.key  # type: ignore[attr-defined]
        if not digest or not key:
            continue
        age_s = max(0.0, now_s - record.timestamp / 1000)  # type: ignore[attr-defined]
        try:
            complaint_id = uuid.UUID(key.decode("ascii"))
            store.learn(complaint_id, digest.decode("ascii"), age_s=age_s)
        except (ValueError, UnicodeDecodeError):
            continue  # not written by intake; the consumers that own the topic dead-letter it
        learned += 1
    return learned


class AcceptedKeysFollower:
    def __init__(
        self,
        *,
        store: IdempotencyStore,
        kafka: KafkaSettings,
        ttl_s: float,
        max_keys: int,
        batch_size: int = 2000,
    ) -> None:
        self.store = store
        self.kafka = kafka
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self.batch_size = batch_size
        self.lag: int | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._start_ends: dict[TopicPartition, int] | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Follow until `stop()`; reconnects on broker loss, resuming from its own positions."""
        await follow_until_stopped(self._follow, self._stopping, what="following accepted keys")

    async def _starts(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        ends = await consumer.end_offsets(tps)
        since_ms = int((time.time() - self.ttl_s) * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        starts = {}
        for tp in tps:
            at = found.get(tp)
            start = ends[tp] if at is None else at.offset
            starts[tp] = max(start, ends[tp] - self.max_keys, self._positions.get(tp, 0))
        if self._start_ends is None:
            self._start_ends = dict(ends)
        return starts

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.kafka.client_kwargs(),  # type: ignore[arg-type]
            group_id=None,
            client_id=f"{self.kafka.client_id_prefix}-intake-accepted-keys",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        await consumer.start()
        try:
            tps = await partitions_of(consumer, [self.kafka.topic(TopicName.COMPLAINTS)])
            consumer.assign(tps)
            for tp, offset in (await self._starts(consumer, tps)).items():
                consumer.seek(tp, offset)
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.batch_size)
                now_s = time.time()
                for tp, records in batches.items():
                    learn_accepted(self.store, records, now_s=now_s)
                    self._positions[tp] = records[-1].offset + 1
                for tp in tps:
                    self._positions[tp] = max(
                        self._positions.get(tp, 0), await consumer.position(tp)
                    )
                self._observe(consumer)
        finally:
            await consumer.stop()

    def _observe(self, consumer: AIOKafkaConsumer) -> None:
        self.lag = record_lag(consumer, self._positions, service="intake", group=LAG_GROUP)
        ends = self._start_ends or {}
        if not self.store.complete and all(
            self._positions.get(tp, 0) >= end for tp, end in ends.items()
        ):
            self.store.mark_complete()
            log.info("accepted idempotency keys read from the log", extra={"partitions": len(ends)})
