"""The projector's batch step without a broker: one batch is decoded, applied and observed in
one trip to a worker thread; a record that is not a valid event is dead-lettered before the
batch's offsets are stored; offsets go to Kafka (for lag tooling only) at most once per interval
while batches keep coming, at once when a poll finds nothing, and a failed commit is retried."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from redress_events import encode_envelope
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings
from redress_reporting import projector as projector_module
from redress_reporting.active import ActiveStore
from redress_reporting.projector import Projector

from tests.unit.reporting.stories import Story, cid


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass
class FakeConsumer:
    assigned: set[TopicPartition]
    fail: bool = False
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail:
            raise RuntimeError("coordinator not available")
        self.commits.append(dict(offsets))


class FakeDeadLetters:
    def __init__(self, projector: Projector) -> None:
        self.projector = projector
        self.sent: list[tuple[int, dict[tuple[str, int], int]]] = []

    async def send(self, record: Any, **_: Any) -> None:
        # What the store holds when the record is dead-lettered: not this batch's offsets yet.
        self.sent.append((record.offset, self.projector.store.offsets("g")))


def _projector(tmp_path: Path) -> Projector:
    kafka = KafkaSettings()
    stores = ActiveStore(data_dir=tmp_path, configured_url=f"sqlite:///{tmp_path / 'r.db'}")
    return Projector(
        stores=stores,
        kafka=kafka,
        group_id="g",
        batch_size=100,
        producer=EventProducer(kafka, client_id="test"),
    )


def _records(topic: str, story: Story, *, start: int = 0) -> list[Record]:
    records = []
    for n, envelope in enumerate(story.events):
        key, value, headers = encode_envelope(envelope)
        records.append(Record(topic, 0, start + n, key, value, headers))
    return records


async def test_a_batch_of_valid_records_is_applied_with_its_offsets(tmp_path: Path) -> None:
    projector = _projector(tmp_path)
    tp = TopicPartition("t", 0)
    await projector._apply({tp: _records("t", Story(1).received().routed())})
    assert projector.store.offsets("g") == {("t", 0): 4}
    complaint = projector.store.complaint(cid(1))
    assert complaint is not None and complaint["priority"] == "P2"
    assert projector._to_commit == {("t", 0): 4}
    projector.stores.dispose()


async def test_an_invalid_record_is_dead_lettered_before_the_offsets_are_stored(
    tmp_path: Path,
) -> None:
    projector = _projector(tmp_path)
    deadletters = FakeDeadLetters(projector)
    projector.deadletters = deadletters  # type: ignore[assignment]
    tp = TopicPartition("t", 0)
    good = _records("t", Story(2).received())
    bad = Record("t", 0, 1, b"k", b"not an event", [])
    await projector._apply({tp: [*good, bad]})
    assert deadletters.sent == [(1, {})]
    assert projector.store.offsets("g") == {("t", 0): 2}
    assert projector.store.complaint(cid(2)) is not None
    projector.stores.dispose()


async def test_offsets_go_to_kafka_at_most_once_per_interval_and_at_once_when_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(projector_module.time, "monotonic", lambda: now[0])
    projector = _projector(tmp_path)
    mine, theirs = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer = FakeConsumer({mine})

    projector._to_commit = {("t", 0): 5, ("t", 1): 7}
    await projector._commit_to_kafka(consumer, quiet=False)  # type: ignore[arg-type]
    assert consumer.commits == [{mine: 5}]  # only what this consumer is assigned

    now[0] += projector_module.KAFKA_COMMIT_INTERVAL_S / 2
    projector._to_commit = {("t", 0): 9}
    await projector._commit_to_kafka(consumer, quiet=False)  # type: ignore[arg-type]
    assert len(consumer.commits) == 1  # batches keep coming: wait for the interval
    await projector._commit_to_kafka(consumer, quiet=True)  # type: ignore[arg-type]
    assert consumer.commits[-1] == {mine: 9}  # a poll found nothing: commit now

    consumer.fail = True
    projector._to_commit = {("t", 0): 11}
    await projector._commit_to_kafka(consumer, quiet=True)  # type: ignore[arg-type]
    assert projector._to_commit == {("t", 0): 11}  # kept for the next try
    consumer.fail = False
    await projector._commit_to_kafka(consumer, quiet=True)  # type: ignore[arg-type]
    assert consumer.commits[-1] == {mine: 11}
    assert projector._to_commit == {}
    assert theirs not in consumer.commits[-1]
    projector.stores.dispose()


class PollingConsumer:
    """Hands out prepared polls, one per getmany, then nothing."""

    def __init__(self, polls: list[dict[TopicPartition, list[Record]]]) -> None:
        self.polls = polls

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        if not self.polls:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        poll = self.polls.pop(0)
        assert sum(map(len, poll.values())) <= max_records
        return poll


async def test_a_batch_gathers_what_arrives_within_the_linger_and_stops_when_full(
    tmp_path: Path,
) -> None:
    projector = _projector(tmp_path)
    projector.batch_linger_s = 0.05
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    r = [Record("t", 0, n, None, None, []) for n in range(4)]
    s = [Record("t", 1, n, None, None, []) for n in range(2)]
    projector._next_batch_at = projector_module.time.monotonic() + 60  # a batch just started
    batches: dict[TopicPartition, list[Any]] = {a: r[:1]}
    projector.batch_size = 5
    await projector._gather(PollingConsumer([{a: r[1:3], b: s[:1]}, {a: r[3:4]}]), batches)  # type: ignore[arg-type]
    assert batches == {a: r, b: s[:1]}  # full at 5: the rest waits for the next batch

    projector.batch_size = 100
    projector._next_batch_at = 0.0  # the linger since the previous batch is over
    batches = {b: s[1:]}
    await projector._gather(PollingConsumer([{a: r}]), batches)  # type: ignore[arg-type]
    assert batches == {b: s[1:]}  # applied at once
    projector.stores.dispose()
