"""Rebuilding read models from offset zero, and comparing two stores (issue 6).

`replay` reads the projected topics from their beginning up to fixed end offsets (the ends at
the start, or the live store's offsets for `verify`) and applies them batch by batch through
the same `ReadModelStore.apply` the live projector uses, offsets included: memory stays flat
(one batch applied at a time, the next one decoded meanwhile) and the rebuilt store can take
over from the live one exactly where the rebuild stopped. It reads only: nothing is written to
any topic, an undecodable record is counted and skipped (the live projector dead-letters it;
neither applies it).

`differences` compares two stores table by table in chunks, in both directions, without relying
on the backends sorting keys alike (SQLite and PostgreSQL collate strings differently).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from redress_kafka.settings import KafkaSettings
from sqlalchemy import select

from redress_reporting.projector import PROJECTED_TOPICS, decode_batch
from redress_reporting.store import READ_MODEL_TABLES, Applied, ReadModelStore

log = logging.getLogger(__name__)

PERSONAL_COLUMNS = frozenset(
    {"customer_name", "customer_email", "customer_phone", "description", "personal"}
)

Position = tuple[str, int]


class BrokerUnreachable(Exception):
    pass


@dataclass
class ReplayResult:
    events: int = 0
    applied: int = 0
    skipped_invalid: int = 0
    seconds: float = 0.0
    ends: dict[Position, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[int, int], None]  # (records read, records in total)


async def replay(
    *,
    kafka: KafkaSettings,
    store: ReadModelStore,
    group_id: str,
    stop_at: dict[Position, int] | None = None,
    batch_size: int = 1000,
    on_progress: ProgressCallback | None = None,
    idle_timeout_s: float = 60.0,
    fresh_store: bool = False,
) -> ReplayResult:
    """Apply every record of the projected topics below the end offsets into `store`, storing
    offsets for `group_id` so a projector can continue from there. `fresh_store` (the store
    is empty, nobody reads it yet and only this replay writes it): fill it as a bulk load: its
    secondary indexes are dropped first and made at the end (`ReadModelStore.drop_indexes`),
    within the time reported, and the views written lately are kept in memory rather than read
    back (`ReadModelStore.remember_views`)."""
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(),  # type: ignore[arg-type]
        group_id=None,
        client_id=f"{kafka.client_id_prefix}-rebuild",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=batch_size,
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout=kafka.request_timeout_ms / 1000 + 5)
    except Exception as exc:
        await consumer.stop()
        raise BrokerUnreachable(
            f"kafka at {kafka.bootstrap_servers} is unreachable: {exc}"
        ) from exc
    started = time.monotonic()
    result = ReplayResult()
    applying: asyncio.Future[Applied] | None = None
    try:
        if fresh_store:
            await asyncio.to_thread(store.drop_indexes)
            store.remember_views()
        tps = await _partitions(consumer, kafka)
        begins = await consumer.beginning_offsets(tps)
        if stop_at is None:
            ends = await consumer.end_offsets(tps)
        else:
            ends = {tp: stop_at.get((tp.topic, tp.partition), 0) for tp in tps}
        result.ends = {(tp.topic, tp.partition): off for tp, off in ends.items() if off > 0}
        remaining = {tp for tp in tps if ends[tp] > begins[tp]}
        total = sum(max(0, ends[tp] - begins[tp]) for tp in tps)
        consumer.assign(sorted(remaining, key=lambda tp: (tp.topic, tp.partition)))
        if remaining:
            await consumer.seek_to_beginning(*remaining)
        read = 0
        if on_progress:
            on_progress(0, total)
        last_progress = time.monotonic()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=batch_size)
            kept: dict[TopicPartition, list[Any]] = {}
            for tp, records in batches.items():
                below = [r for r in records if r.offset < ends[tp]]
                if below:
                    kept[tp] = below
                    read += len(below)
            if kept:
                # Off the event loop (which keeps fetching), and while the previous batch is
                # still being applied: decoding overlaps its SQL. Batches are applied one at a
                # time, in order, so offsets only move forward.
                events, invalid = await asyncio.to_thread(decode_batch, kept)
                result.skipped_invalid += len(invalid)
                next_offsets = {
                    (tp.topic, tp.partition): records[-1].offset + 1 for tp, records in kept.items()
                }
                result.applied += await _settled(applying)
                applying = asyncio.ensure_future(
                    asyncio.to_thread(
                        store.apply, events, group_id=group_id, next_offsets=next_offsets
                    )
                )
                result.events += len(events)
                last_progress = time.monotonic()
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if on_progress:
                on_progress(read, total)
            if time.monotonic() - last_progress > idle_timeout_s:
                raise BrokerUnreachable(f"no records from kafka for {idle_timeout_s:.0f}s")
        result.applied += await _settled(applying)
        applying = None
        # Offsets at the ends even where the last records were transaction markers.
        await asyncio.to_thread(store.apply, [], group_id=group_id, next_offsets=result.ends)
    finally:
        if applying is not None:  # failed meanwhile: let the batch in flight finish first
            await asyncio.gather(applying, return_exceptions=True)
        await consumer.stop()
        if fresh_store:
            await asyncio.to_thread(store.create_indexes)
    result.seconds = time.monotonic() - started
    return result


async def _settled(applying: asyncio.Future[Applied] | None) -> int:
    """Wait for the batch in flight (if any); how many events it applied."""
    return 0 if applying is None else (await applying).applied


async def _partitions(consumer: AIOKafkaConsumer, kafka: KafkaSettings) -> list[TopicPartition]:
    tps: list[TopicPartition] = []
    for topic in PROJECTED_TOPICS:
        name = kafka.topic(topic)
        partitions = consumer.partitions_for_topic(name)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(name) or set()
        tps.extend(TopicPartition(name, p) for p in sorted(partitions))
    return tps


@dataclass(frozen=True)
class Difference:
    table: str
    key: tuple[Any, ...]
    kind: str  # "missing_in_live" | "extra_in_live" | "differs"
    column: str | None = None
    live: Any = None
    rebuilt: Any = None

    def describe(self) -> str:
        where = f"{self.table}[{', '.join(map(str, self.key))}]"
        if self.kind == "missing_in_live":
            return f"{where}: in the rebuild but missing from the live read model"
        if self.kind == "extra_in_live":
            return f"{where}: in the live read model but not in the rebuild"
        if self.column in PERSONAL_COLUMNS:
            return f"{where}.{self.column}: personal data differs (values not shown)"
        return f"{where}.{self.column}: live={self.live!r} rebuilt={self.rebuilt!r}"


def differences(
    live: ReadModelStore, rebuilt: ReadModelStore, *, chunk: int = 500
) -> Iterator[Difference]:
    """Every difference between the read models of two stores (offsets excluded)."""
    for name in READ_MODEL_TABLES:
        key_columns = live.primary_key(name)
        yield from _one_way(name, key_columns, live, rebuilt, chunk, live_first=True)
        yield from _one_way(name, key_columns, rebuilt, live, chunk, live_first=False)


def _one_way(
    name: str,
    key_columns: tuple[str, ...],
    first: ReadModelStore,
    second: ReadModelStore,
    chunk: int,
    *,
    live_first: bool,
) -> Iterator[Difference]:
    batch: list[dict[str, Any]] = []
    for row in first.iter_table(name):
        batch.append(row)
        if len(batch) >= chunk:
            yield from _compare_chunk(name, key_columns, batch, second, live_first=live_first)
            batch = []
    if batch:
        yield from _compare_chunk(name, key_columns, batch, second, live_first=live_first)


def _compare_chunk(
    name: str,
    key_columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    other: ReadModelStore,
    *,
    live_first: bool,
) -> Iterator[Difference]:
    table = READ_MODEL_TABLES[name]
    lead = key_columns[0]
    wanted = sorted({row[lead] for row in rows})
    with other.engine.connect() as conn:
        found = {
            tuple(r._mapping[k] for k in key_columns): dict(r._mapping)
            for r in conn.execute(select(table).where(table.c[lead].in_(wanted)))
        }
    for row in rows:
        key = tuple(row[k] for k in key_columns)
        counterpart = found.get(key)
        if counterpart is None:
            yield Difference(name, key, "extra_in_live" if live_first else "missing_in_live")
            continue
        if not live_first:
            continue  # rows present on both sides were compared in the live-first pass
        for column, value in row.items():
            if not _same(value, counterpart.get(column)):
                yield Difference(name, key, "differs", column, value, counterpart.get(column))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(a == b)
