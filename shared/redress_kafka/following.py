"""Helpers for consumers without a group that follow whole topics (every replica reads every
partition): recovery's casebook, intake's accepted idempotency keys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from redress_observability.metrics import CONSUMER_LAG

log = logging.getLogger(__name__)


async def partitions_of(
    consumer: AIOKafkaConsumer, names: Iterable[str], *, attempts: int = 30, interval_s: float = 0.5
) -> list[TopicPartition]:
    """Every partition of the topics `names`, asking the broker for metadata until all are known;
    LookupError naming the missing ones after `attempts` tries."""
    names = list(names)
    found: dict[str, set[int] | None] = {}
    for _ in range(attempts):
        found = {name: consumer.partitions_for_topic(name) for name in names}
        if all(found.values()):
            return [TopicPartition(n, p) for n, parts in found.items() for p in sorted(parts or ())]
        # A consumer without a group subscription has no public way to ask for metadata.
        await consumer._client.force_metadata_update()
        await asyncio.sleep(interval_s)
    raise LookupError(f"topics not found: {[n for n, parts in found.items() if not parts]}")


async def follow_until_stopped(
    follow: Callable[[], Awaitable[None]], stopping: asyncio.Event, *, what: str
) -> None:
    """Run `follow` until `stopping` is set, starting it again a second after it fails (broker
    loss, a missing topic); it resumes from positions it keeps itself."""
    while not stopping.is_set():
        try:
            await follow()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; restarting in 1s", what)
            await asyncio.sleep(1.0)


def record_lag(
    consumer: AIOKafkaConsumer,
    positions: Mapping[TopicPartition, int],
    *,
    service: str,
    group: str,
) -> int:
    """Set `redress_consumer_lag_messages` for each partition the consumer knows a high
    watermark of (records between it and `positions`); returns the total."""
    total = 0
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        lag = max(0, highwater - positions.get(tp, 0))
        total += lag
        CONSUMER_LAG.labels(service, group, tp.topic, str(tp.partition)).set(lag)
    return total
