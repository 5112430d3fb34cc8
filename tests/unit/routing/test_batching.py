"""Batches keep the promises of one record at a time: per-key order inside a batch, a poison
record dead-lettered without costing the others, outputs acknowledged before any state is
written, and a redelivered batch producing nothing twice."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redress_events import InvalidEvent
from redress_routing.batching import (
    BatchIO,
    DeadRecord,
    RawRecord,
    Result,
    StagedState,
    process_batch,
)


@dataclass
class Message:
    key: str
    value: str
    topic: str = "t"
    partition: int = 0
    offset: int = 0


@dataclass
class Event:
    message: Message


def batch(*records: tuple[str, str]) -> list[Event]:
    return [Event(Message(key, value, offset=n)) for n, (key, value) in enumerate(records)]


def handle(event: Event, staged: StagedState) -> Result | None:
    """A toy core: a key's state is the list of values applied to it; a value seen before is a
    duplicate; "bad" cannot be decoded and "boom" is a processing bug."""
    message = event.message
    if message.value == "bad":
        raise InvalidEvent("invalid_json", "not JSON")
    if message.value == "boom":
        raise RuntimeError("a bug")
    applied: list[str] = staged.get(message.key) or []
    if message.value in applied:
        return None
    output = f"{message.key}:{message.value} after {len(applied)}"
    raw = RawRecord("copies", message.key.encode(), message.value.encode(), [])
    return Result(outputs=[output], raw=[raw], state=(message.key, [*applied, message.value]))


class World:
    """Fake Kafka and table, recording the order in which things happen."""

    def __init__(self) -> None:
        self.table: dict[str, list[str]] = {}
        self.published: list[Any] = []
        self.copied: list[RawRecord] = []
        self.dead: list[DeadRecord] = []
        self.writes: list[tuple[str, list[str], int]] = []
        self.log: list[str] = []
        self.publish_fails_with: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def publish(self, outputs: list[Any], raw: list[RawRecord]) -> None:
        if self.gate is not None:
            await self.gate.wait()  # the broker has not acknowledged yet
        if self.publish_fails_with is not None and len(outputs) > 1:
            raise self.publish_fails_with
        self.published.extend(outputs)
        self.copied.extend(raw)
        self.log.append(f"publish {len(outputs)}")

    def write(self, key: str, value: Any, event: Any) -> None:
        self.table[key] = value
        self.writes.append((key, value, event.message.offset))
        self.log.append(f"write {key}")

    async def dead_letter(self, dead: DeadRecord) -> None:
        self.dead.append(dead)
        self.log.append(f"dead {dead.event.message.offset}")

    def io(self) -> BatchIO:
        return BatchIO(
            publish=self.publish,
            write=self.write,
            dead_letter=self.dead_letter,
            topic_label=lambda message: message.topic,
        )

    async def run(self, events: list[Event]) -> None:
        await process_batch(events, handle, self.table.get, self.io())


async def test_two_records_for_one_key_in_one_batch_apply_in_order() -> None:
    world = World()
    await world.run(batch(("k", "a"), ("other", "x"), ("k", "b")))
    assert world.published == ["k:a after 0", "other:x after 0", "k:b after 1"]
    assert [r.value for r in world.copied] == [b"a", b"x", b"b"]
    assert world.table == {"k": ["a", "b"], "other": ["x"]}
    # One write per key, its final state, in the name of the last record that changed it.
    assert sorted(world.writes) == [("k", ["a", "b"], 2), ("other", ["x"], 1)]


async def test_state_from_earlier_batches_is_read_from_the_table() -> None:
    world = World()
    await world.run(batch(("k", "a")))
    await world.run(batch(("k", "b")))
    assert world.published == ["k:a after 0", "k:b after 1"]
    assert world.table == {"k": ["a", "b"]}


async def test_a_poison_record_mid_batch_is_dead_lettered_and_the_others_are_processed() -> None:
    world = World()
    await world.run(batch(("k", "a"), ("k", "bad"), ("k", "boom"), ("k", "b"), ("j", "c")))
    assert world.published == ["k:a after 0", "k:b after 1", "j:c after 0"]
    assert world.table == {"k": ["a", "b"], "j": ["c"]}
    assert [(d.event.message.offset, d.reason) for d in world.dead] == [
        (1, "invalid_json"),
        (2, "processing_failed"),
    ]
    assert "RuntimeError: a bug" in world.dead[1].detail


async def test_a_redelivered_batch_produces_no_second_output() -> None:
    world = World()
    records = batch(("k", "a"), ("k", "b"), ("j", "c"))
    await world.run(records)
    published, writes = list(world.published), list(world.writes)
    await world.run(records)  # e.g. a crash after the writes, before the offsets' commit
    assert world.published == published
    assert world.writes == writes  # nothing changed, nothing written
    # Redelivered inside a later batch, next to new records: only the new ones count.
    await world.run(batch(("k", "b"), ("k", "d")))
    assert world.published == [*published, "k:d after 2"]


async def test_outputs_are_acknowledged_before_any_state_is_written() -> None:
    world = World()
    world.gate = asyncio.Event()
    running = asyncio.create_task(world.run(batch(("k", "a"), ("j", "b"), ("k", "bad"))))
    await asyncio.sleep(0.01)
    assert not running.done()
    assert world.writes == [] and world.dead == []  # the broker has not acknowledged
    world.gate.set()
    await running
    assert world.log == ["publish 2", "write k", "write j", "dead 2"]


async def test_a_batch_that_cannot_be_delivered_is_retried_one_record_at_a_time() -> None:
    world = World()
    world.publish_fails_with = ValueError("an output that cannot be encoded")
    await world.run(batch(("k", "a"), ("k", "b"), ("j", "bad")))
    # Nothing of the failed attempt was written; one at a time, every record went through.
    assert world.published == ["k:a after 0", "k:b after 1"]
    assert world.table == {"k": ["a", "b"]}
    assert [d.reason for d in world.dead] == ["invalid_json"]


async def test_a_record_whose_delivery_fails_on_its_own_is_dead_lettered() -> None:
    world = World()

    async def publish(outputs: list[Any], raw: list[RawRecord]) -> None:
        if "k:b after 1" in outputs:
            raise ValueError("cannot encode")
        world.published.extend(outputs)

    io = world.io()
    io.publish = publish
    await process_batch(batch(("k", "a"), ("k", "b"), ("j", "c")), handle, world.table.get, io)
    assert world.published == ["k:a after 0", "j:c after 0"]
    assert world.table == {"k": ["a"], "j": ["c"]}
    assert [(d.event.message.offset, d.reason) for d in world.dead] == [(1, "processing_failed")]
