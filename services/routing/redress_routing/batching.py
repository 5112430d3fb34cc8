"""An agent's input processed in batches, keeping every promise of one record at a time.

An agent takes up to `batch_max_events` records (waiting at most `batch_within_s` for them) and:

1. *stages* them in order: each record is decoded and run through the pure core against the
   state its key has *as of the records before it in the batch* (a batch-local overlay over the
   table), so two records for one key in one batch see each other exactly as they would one at
   a time. A record the core finds already applied yields nothing (a duplicate). A record that
   cannot be decoded or processed is set aside for the dead-letter topic — its partial result
   is dropped and its key's state stays as it was — and the rest of the batch carries on.
2. *delivers* the batch: every output of every record (and every re-keyed copy) is handed to
   the producer in input order — one partition's records keep their order — and awaited
   together, retried until the broker acknowledges them all (acks=all, idempotent); only then
   is each key's final state written to its table, and the set-aside records dead-lettered.
3. returns; faust acks the batch's records, and only acked offsets are committed.

So a crash at any point repeats outputs (same deterministic ids; the state check then drops
the re-read inputs) but never loses one, and a table never holds state whose outputs the broker
does not have. If delivery fails for a reason that is not the broker (publishing retries broker
trouble for ever), the batch is processed again one record at a time, where such a failure
dead-letters that one record as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redress_routing.delivery import failure_of
from redress_routing.diagnostics import log_exception

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawRecord:
    """A record copied as it is to another topic (re-keying)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass
class Result:
    """What one input record produced: outputs, re-keyed copies, and its key's new state."""

    outputs: list[Any] = field(default_factory=list)
    raw: list[RawRecord] = field(default_factory=list)
    state: tuple[str, Any] | None = None


class StagedState:
    """Per-key state as of the records staged so far: the batch's own, else the table's."""

    def __init__(self, load: Callable[[str], Any]) -> None:
        self._load = load
        self.values: dict[str, Any] = {}
        # The last record that changed each key: a table write is made in its name (faust
        # writes a key's changelog to the partition of the record being processed).
        self.events: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        if key in self.values:
            return self.values[key]
        return self._load(key)

    def put(self, key: str, value: Any, event: Any) -> None:
        self.values[key] = value
        self.events[key] = event


@dataclass(frozen=True)
class DeadRecord:
    event: Any
    reason: str
    detail: str
    errors: Any


@dataclass
class Staged:
    """A staged batch: what to publish and send, the state to write, the records to dead-letter."""

    outputs: list[Any]
    raw: list[RawRecord]
    state: StagedState
    dead: list[DeadRecord]


Handler = Callable[[Any, StagedState], "Result | None"]


def where_of(event: Any, topic_label: Callable[[Any], str]) -> dict[str, Any]:
    message = event.message
    return {"topic": topic_label(message), "partition": message.partition, "offset": message.offset}


def stage(
    events: Sequence[Any],
    handle: Handler,
    load: Callable[[str], Any],
    *,
    topic_label: Callable[[Any], str],
) -> Staged:
    """Run `handle` over the events in order, threading each key's state through the batch."""
    state = StagedState(load)
    staged = Staged(outputs=[], raw=[], state=state, dead=[])
    for event in events:
        try:
            result = handle(event, state)
        except Exception as exc:  # undecodable, or a processing bug: this record only
            reason, detail, errors = failure_of(exc, where=where_of(event, topic_label))
            staged.dead.append(DeadRecord(event, reason, detail, errors))
            continue
        if result is None:
            continue
        staged.outputs.extend(result.outputs)
        staged.raw.extend(result.raw)
        if result.state is not None:
            key, value = result.state
            state.put(key, value, event)
    return staged


@dataclass
class BatchIO:
    """How a staged batch reaches Kafka and the table. `publish` and `send_raw` must retry
    until acknowledged (they return only once the broker has everything); `write` stores one
    key's state in the name of an event; `dead_letter` must also retry until acknowledged."""

    publish: Callable[[list[Any], list[RawRecord]], Awaitable[None]]
    write: Callable[[str, Any, Any], None]
    dead_letter: Callable[[DeadRecord], Awaitable[None]]
    topic_label: Callable[[Any], str]
    after_write: Callable[[str, Any], None] | None = None


async def deliver(staged: Staged, io: BatchIO) -> None:
    """Outputs acknowledged first, then the state written, then the dead letters."""
    await io.publish(staged.outputs, staged.raw)
    for key, value in staged.state.values.items():
        io.write(key, value, staged.state.events[key])
        if io.after_write is not None:
            io.after_write(key, value)
    for dead in staged.dead:
        await io.dead_letter(dead)


async def process_batch(
    events: Sequence[Any], handle: Handler, load: Callable[[str], Any], io: BatchIO
) -> None:
    """Stage and deliver one batch; see the module docstring for the guarantees."""
    if not events:
        return
    staged = stage(events, handle, load, topic_label=io.topic_label)
    try:
        await deliver(staged, io)
    except Exception as exc:  # not the broker: publishing retries that until acknowledged
        if len(events) == 1:
            reason, detail, errors = failure_of(exc, where=where_of(events[0], io.topic_label))
            await io.dead_letter(DeadRecord(events[0], reason, detail, errors))
            return
        log_exception(
            log,
            "routing could not deliver a batch; processing its records one at a time",
            exc,
            level=logging.WARNING,
            records=len(events),
        )
        for event in events:
            await process_batch([event], handle, load, io)
