"""Raw aiokafka baselines, each run as its own process (like the Redress service it is
compared with), printing one JSON line of what it measured.

    python -m benchmarks.raw_loops consume --bootstrap B --topics t1,t2 [--decode]
        read every partition of the topics from offset 0 to their end offsets (no decoding;
        --decode: json.loads of every record value, the least any consumer of JSON does)
    python -m benchmarks.raw_loops pipe --bootstrap B --source t1 --sink t2 --group g --expect N
        consume → produce one record per input (acks=all, idempotent) → commit per batch
    python -m benchmarks.raw_loops routing-shaped --bootstrap B --complaints t --decisions t
            --prefix p --expect N
        the same Kafka traffic per complaint as routing, with no framework and no logic (see
        `routing_shaped`)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redress_events.catalogue import (
    ComplaintAssigned,
    ComplaintEscalated,
    ComplaintLinkedToIncident,
    ComplaintPrioritized,
    SlaClockStarted,
)


def _timed(count: int, *, first: float | None, done: float, started: float) -> dict[str, float]:
    """What a loop reports: `count` events from the first one's arrival (`first`) to `done`."""
    first = first or done
    return {
        "events": count,
        "seconds": done - first,
        "wall_seconds": done - started,
        "events_per_s": count / (done - first) if done > first else 0.0,
    }


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def consume(
    bootstrap: str, topics: list[str], batch: int, decode: bool = False
) -> dict[str, float]:
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch,
    )
    await consumer.start()
    try:
        tps = [tp for topic in topics for tp in await _partitions(consumer, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        count, value_bytes = 0, 0
        first: float | None = None
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000, max_records=batch)
            for tp, records in batches.items():
                if first is None:
                    first = time.monotonic()
                count += len(records)
                value_bytes += sum(len(r.value or b"") for r in records)
                if decode:
                    for record in records:
                        json.loads(record.value or b"null")
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        done = time.monotonic()
    finally:
        await consumer.stop()
    return {
        **_timed(count, first=first, done=done, started=started),
        "bytes": value_bytes,
    }


async def pipe(
    bootstrap: str, source: str, sink: str, group: str, expect: int, batch: int
) -> dict[str, float]:
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=1
    )
    await producer.start()
    await consumer.start()
    count = 0
    first: float | None = None
    try:
        while count < expect:
            batches = await consumer.getmany(timeout_ms=1000, max_records=batch)
            if not batches:
                continue
            if first is None:
                first = time.monotonic()
            futures = []
            for records in batches.values():
                for record in records:
                    futures.append(
                        await producer.send(
                            sink, key=record.key, value=record.value, headers=list(record.headers)
                        )
                    )
            await asyncio.gather(*futures)
            await consumer.commit(
                {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
            )
            count += len(futures)
        done = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    return _timed(count, first=first, done=done, started=started)


# The `ce_type` headers routing writes, from the catalogue (the loops copy values, never decode).
PRIORITIZED, ASSIGNED, CLOCK_STARTED, LINKED, ESCALATED = (
    cls.event_type.encode()
    for cls in (
        ComplaintPrioritized,
        ComplaintAssigned,
        SlaClockStarted,
        ComplaintLinkedToIncident,
        ComplaintEscalated,
    )
)
# The internal topics routing_shaped writes beside the two shared ones (routing's by-customer and
# by-product copies and its table changelogs); the caller creates them, `prefix` + name.
ROUTING_SHAPED_TOPICS = ("by-customer", "by-product", "history-changelog", "clocks-changelog")


async def routing_shaped(
    bootstrap: str, complaints: str, decisions: str, prefix: str, expect: int, batch: int
) -> dict[str, float]:
    """What routing's worker does on Kafka per complaint of the routing bench, done by four raw
    aiokafka loops in one process with one producer, as faust runs routing's four agents.

    The bench's complaints arrive all at once on a few products, so nearly every one is part of
    a surge: routing links it to an incident, prioritizes it again by the incident's policy,
    restarts its clock and escalates it (measured on 10,000 such complaints: 6.8 decision
    records and 4 changelog records each). The loops copy that:

    - re-key: read complaints, write two copies (by-customer, by-product);
    - prioritize: read by-customer, write prioritized, assigned and a changelog record;
    - surge: read by-product, write the link to the incident;
    - clocks: read complaints and decisions; for a prioritized one write the clock start and a
      changelog record, for a link write the new prioritized, the escalation and a changelog
      record (so each complaint's second prioritized comes back for its second clock).

    11 records read and 13 written per complaint, each loop committing per batch after its
    writes are acknowledged (acks=all, idempotent). Values are the input's bytes, copied: no
    decoding, no rules, no state. The run ends when every complaint's first prioritized
    decision is written; the bench times the prioritized decisions as it times routing's.
    """
    by_customer, by_product, history, clocks = (prefix + name for name in ROUTING_SHAPED_TOPICS)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=1
    )
    await producer.start()
    prioritized = 0
    first: float | None = None
    all_prioritized = asyncio.Event()

    def out(topic: str, record: Any, ce_type: bytes | None = None) -> Awaitable[Any]:
        headers = list(record.headers)
        if ce_type is not None:
            headers = [(k, v) for k, v in headers if k != "ce_type"] + [("ce_type", ce_type)]
        return producer.send(topic, key=record.key, value=record.value, headers=headers)

    def rekey(record: Any) -> list[Awaitable[Any]]:
        return [out(by_customer, record), out(by_product, record)]

    def prioritize(record: Any) -> list[Awaitable[Any]]:
        return [
            out(decisions, record, PRIORITIZED),
            out(decisions, record, ASSIGNED),
            out(history, record),
        ]

    def surge(record: Any) -> list[Awaitable[Any]]:
        return [out(decisions, record, LINKED)]

    def track_clocks(record: Any) -> list[Awaitable[Any]]:
        ce_type = dict(record.headers or ()).get("ce_type")
        if ce_type == PRIORITIZED:
            return [out(decisions, record, CLOCK_STARTED), out(clocks, record)]
        if ce_type == LINKED:
            return [
                out(decisions, record, PRIORITIZED),
                out(decisions, record, ESCALATED),
                out(clocks, record),
            ]
        return []

    async def loop(
        name: str,
        topics: list[str],
        handle: Callable[[Any], list[Any]],
        committed: Callable[[int], None] | None = None,
    ) -> None:
        """Read `topics` in a group, hand each batch's writes to the producer, await their acks,
        commit, then tell `committed` how many records the batch had."""
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=f"{prefix}{name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch,
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=batch)
                if not batches:
                    continue
                sends = [
                    send for records in batches.values() for r in records for send in handle(r)
                ]
                await asyncio.gather(*[await send for send in sends])
                await consumer.commit(
                    {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
                )
                if committed is not None:
                    committed(sum(len(records) for records in batches.values()))
        finally:
            await consumer.stop()

    def count_prioritized(written: int) -> None:
        nonlocal prioritized, first
        first = first or time.monotonic()
        prioritized += written
        if prioritized >= expect:
            all_prioritized.set()

    started = time.monotonic()
    loops = [
        asyncio.create_task(loop("rekey", [complaints], rekey)),
        asyncio.create_task(loop("prioritize", [by_customer], prioritize, count_prioritized)),
        asyncio.create_task(loop("surge", [by_product], surge)),
        asyncio.create_task(loop("clocks", [complaints, decisions], track_clocks)),
    ]
    waiting = asyncio.create_task(all_prioritized.wait())
    try:
        await asyncio.wait([waiting, *loops], return_when=asyncio.FIRST_COMPLETED)
        for task in loops:
            if task.done():
                task.result()  # a loop that ended early raised: say why
        done = time.monotonic()
    finally:
        waiting.cancel()
        for task in loops:
            task.cancel()
        await asyncio.gather(waiting, *loops, return_exceptions=True)
        await producer.stop()
    return _timed(prioritized, first=first, done=done, started=started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.raw_loops")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, *required: str, expect: bool = False) -> argparse.ArgumentParser:
        options = sub.add_parser(name)
        for option in ("--bootstrap", *required):
            options.add_argument(option, required=True)
        if expect:
            options.add_argument("--expect", type=int, required=True)
        options.add_argument("--batch", type=int, default=500)
        return options

    command("consume", "--topics").add_argument(
        "--decode", action="store_true", help="json.loads every record value"
    )
    command("pipe", "--source", "--sink", "--group", expect=True)
    command("routing-shaped", "--complaints", "--decisions", "--prefix", expect=True)
    args = parser.parse_args()
    if args.command == "routing-shaped":
        result = asyncio.run(
            routing_shaped(
                args.bootstrap,
                args.complaints,
                args.decisions,
                args.prefix,
                args.expect,
                args.batch,
            )
        )
    elif args.command == "consume":
        result = asyncio.run(
            consume(args.bootstrap, args.topics.split(","), args.batch, decode=args.decode)
        )
    else:
        result = asyncio.run(
            pipe(args.bootstrap, args.source, args.sink, args.group, args.expect, args.batch)
        )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
