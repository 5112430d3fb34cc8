"""Reads event topics for the audit tool (the only module here that does I/O; it never writes).

A complaint's records are keyed by its id, so by default only the partition Kafka's default
partitioner (murmur2 of the key) chose is read, from offset 0 to the end it had when the read
began. `scan=True` reads every partition (needed only if a topic's partition count changed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from redress_events import TopicName
from redress_kafka.settings import KafkaSettings

from redress_audit.records import StoredRecord


class AuditReadError(Exception):
    """The log could not be read; the message is one line, fit for an operator."""


class BrokerUnreachable(AuditReadError):
    pass


@dataclass(frozen=True)
class ReadScope:
    """What to read of one topic: every partition, or the one a key hashes to."""

    topic: TopicName
    key: bytes | None = None  # None: every record of every partition
    scan: bool = False  # read every partition but keep only `key`'s records


def partition_for_key(key: bytes, partitions: Sequence[int]) -> int:
    """The partition Kafka's default partitioner (and aiokafka's) gives a keyed record."""
    ordered = sorted(partitions)
    return int(DefaultPartitioner()(key, ordered, ordered))


class LogReader:
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 300.0,
    ) -> None:
        self._settings = settings
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._cluster: Any = None  # aiokafka ClusterMetadata, fetched once per reader

    async def __aenter__(self) -> LogReader:
        consumer = AIOKafkaConsumer(
            **self._settings.client_kwargs(),  # type: ignore[arg-type]
            client_id=f"{self._settings.client_id_prefix}-audit",
            group_id=None,  # no consumer group: nothing is committed anywhere
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        try:
            await asyncio.wait_for(consumer.start(), timeout=self._connect_timeout_s)
        except Exception as exc:  # refused, unresolvable, timed out: all unreachable
            await consumer.stop()
            servers = self._settings.bootstrap_servers
            raise BrokerUnreachable(
                f"cannot reach Kafka at {servers} within {self._connect_timeout_s:g}s "
                f"({type(exc).__name__})"
            ) from exc
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def partitions(self, topic: TopicName) -> list[int]:
        """The topic's partitions ([] when it does not exist), from fresh cluster metadata."""
        consumer = self._require()
        if self._cluster is None:
            try:
                # The consumer's own metadata only covers assigned topics; ask for all of them.
                self._cluster = await asyncio.wait_for(
                    consumer._client.fetch_all_metadata(), timeout=self._connect_timeout_s
                )
            except Exception as exc:
                raise BrokerUnreachable(
                    f"Kafka did not answer a metadata request ({type(exc).__name__})"
                ) from exc
        return sorted(self._cluster.partitions_for_topic(self._settings.topic(topic)) or ())

    async def require_topics(self, topics: Sequence[TopicName]) -> None:
        """AuditReadError naming the physical topics when none of them exists."""
        for topic in topics:
            if await self.partitions(topic):
                return
        names = ", ".join(self._settings.topic(t) for t in topics)
        raise AuditReadError(f"no topic {names} on this cluster (check REDRESS_KAFKA_TOPIC_PREFIX)")

    async def read(self, scopes: Sequence[ReadScope]) -> list[StoredRecord]:
        """Every record in scope, per partition in offset order."""
        consumer = self._require()
        topics: dict[TopicPartition, TopicName] = {}
        keys: dict[TopicPartition, set[bytes] | None] = {}
        for scope in scopes:
            partitions = await self.partitions(scope.topic)
            if not partitions:
                continue
            name = self._settings.topic(scope.topic)
            if scope.key is not None and not scope.scan:
                chosen = [partition_for_key(scope.key, partitions)]
            else:
                chosen = partitions
            for partition in chosen:
                tp = TopicPartition(name, partition)
                topics[tp] = scope.topic
                if scope.key is None or (tp in keys and keys[tp] is None):
                    keys[tp] = None
                else:
                    keys.setdefault(tp, set()).add(scope.key)  # type: ignore[union-attr]
        if not topics:
            return []
        tps = list(topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: dict[TopicPartition, list[StoredRecord]] = {tp: [] for tp in tps}
        remaining = {tp for tp in tps if ends[tp] > 0}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._read_timeout_s
        while remaining:
            if loop.time() > deadline:
                raise AuditReadError(
                    f"reading {len(remaining)} partition(s) did not finish in "
                    f"{self._read_timeout_s:g}s"
                )
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, messages in batch.items():
                wanted = keys[tp]
                for message in messages:
                    if message.offset >= ends[tp]:
                        break
                    if wanted is None or message.key in wanted:
                        records[tp].append(
                            StoredRecord(
                                topic=topics[tp],
                                partition=tp.partition,
                                offset=message.offset,
                                key=message.key,
                                value=message.value,
                                headers=tuple(message.headers or ()),
                            )
                        )
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return [record for tp in tps for record in records[tp]]

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("use LogReader in `async with`")
        return self._consumer
