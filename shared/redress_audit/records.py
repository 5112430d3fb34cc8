"""Records as read from Kafka, kept raw: integrity needs the stored bytes, history the events."""

from __future__ import annotations

from dataclasses import dataclass

from redress_events import Envelope, EventData, InvalidEvent, TopicName, decode_record

# Event topics that hold complaint history (the inbound topic is input, not record).
AUDITED_TOPICS: tuple[TopicName, ...] = (
    TopicName.COMPLAINTS,
    TopicName.ROUTING,
    TopicName.INCIDENTS,
    TopicName.CASES,
)
COMPLAINT_TOPICS: tuple[TopicName, ...] = (
    TopicName.COMPLAINTS,
    TopicName.ROUTING,
    TopicName.CASES,
)


@dataclass(frozen=True)
class StoredRecord:
    topic: TopicName  # logical name (without the environment's prefix)
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def position(self) -> str:
        return f"{self.topic.value}/{self.partition}@{self.offset}"


def decode(record: StoredRecord) -> Envelope[EventData]:
    """The record's event (upcast to the current schema). Raises InvalidEvent."""
    return decode_record(
        record.key,
        record.value,
        record.headers,
        position=(record.topic.value, record.partition, record.offset),
    )


def decode_all(
    records: list[StoredRecord],
) -> tuple[list[Envelope[EventData]], list[tuple[StoredRecord, InvalidEvent]]]:
    """Events, and the records that are not valid events (with why)."""
    events: list[Envelope[EventData]] = []
    invalid: list[tuple[StoredRecord, InvalidEvent]] = []
    for record in records:
        try:
            events.append(decode(record))
        except InvalidEvent as exc:
            invalid.append((record, exc))
    return events, invalid
