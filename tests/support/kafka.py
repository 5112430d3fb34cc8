"""Which Kafka the suite uses: KAFKA_BOOTSTRAP_SERVERS, else testcontainers when a Docker
engine answers, else a local KRaft broker from the Maven jars in a fresh temp dir."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from redress_events import Envelope, EventData, TopicName, decode_record
from redress_kafka.admin import ensure_topics
from redress_kafka.local_broker import LocalKafkaBroker
from redress_kafka.settings import KafkaSettings


@dataclass
class KafkaHandle:
    bootstrap_servers: str
    broker: LocalKafkaBroker | None = None  # set when the suite controls the broker's life

    def settings(self, topic_prefix: str = "") -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            topic_prefix=topic_prefix,
            produce_timeout_s=5.0,
            request_timeout_ms=5000,
        )


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def provide_kafka() -> Iterator[KafkaHandle]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield KafkaHandle(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield KafkaHandle(container.get_bootstrap_server())
        return
    with tempfile.TemporaryDirectory(prefix="redress-kafka-") as tmp:
        broker = LocalKafkaBroker(Path(tmp))
        broker.start()
        try:
            yield KafkaHandle(broker.bootstrap_servers, broker)
        finally:
            broker.kill()


def new_topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


async def create_topics(settings: KafkaSettings) -> None:
    await ensure_topics(settings)


async def read_topic(
    settings: KafkaSettings, topic: TopicName, *, timeout_s: float = 5.0
) -> list[Any]:
    """Every record of a topic from offset 0 to its current end (raw aiokafka records)."""
    name = settings.topic(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(name) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(name) or set()
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while remaining and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                records.extend(msgs)
                if msgs and msgs[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


async def read_events(
    settings: KafkaSettings, topic: TopicName, *, subject: str | None = None
) -> list[Envelope[EventData]]:
    events = [
        decode_record(r.key, r.value, r.headers, position=(r.topic, r.partition, r.offset))
        for r in await read_topic(settings, topic)
    ]
    return [e for e in events if subject is None or e.subject == subject]
