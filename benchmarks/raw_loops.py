"""Raw aiokafka baselines, each run as its own process (like the Redress service it is
compared with), printing one JSON line of what it measured.

    python -m benchmarks.raw_loops consume --bootstrap B --topics t1,t2 [--decode]
        read every partition of the topics from offset 0 to their end offsets (no decoding;
        --decode: json.loads of every record value, the least any consumer of JSON does)
    python -m benchmarks.raw_loops pipe --bootstrap B --source t1 --sink t2 --group g --expect N
        consume → produce one record per input (acks=all, idempotent) → commit per batch
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


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
    first = first or done
    return {
        "events": count,
        "bytes": value_bytes,
        "seconds": done - first,
        "wall_seconds": done - started,
        "events_per_s": count / (done - first) if done > first else 0.0,
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
    first = first or done
    return {
        "events": count,
        "seconds": done - first,
        "wall_seconds": done - started,
        "events_per_s": count / (done - first) if done > first else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.raw_loops")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("consume")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--topics", required=True)
    c.add_argument("--batch", type=int, default=500)
    c.add_argument("--decode", action="store_true", help="json.loads every record value")
    p = sub.add_parser("pipe")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if args.command == "consume":
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
