"""The event envelope (CloudEvents 1.0 attributes) and the base class of every event's data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from redress_events.topics import TopicName

# Fixed namespace so that derived ids are the same on every machine, in every replay.
REDRESS_NAMESPACE = uuid.UUID("6f1c3c2e-8d0b-5b7e-9a55-1f2a7c4e0d11")


def new_event_id() -> uuid.UUID:
    return uuid.uuid4()


def derived_event_id(cause_id: uuid.UUID | str, *discriminators: str) -> uuid.UUID:
    """Id of an event caused by another: the same cause and reason always give the same id,
    so a redelivered input can never yield a second, different output."""
    return uuid.uuid5(REDRESS_NAMESPACE, ":".join([str(cause_id), *discriminators]))


class EventData(BaseModel):
    """Base of every event's payload. Subclasses declare their CloudEvents type and topic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    topic: ClassVar[TopicName]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" in cls.__dict__:
            from redress_events.registry import register

            register(cls)


D = TypeVar("D", bound=EventData)


class Envelope(BaseModel, Generic[D]):
    """One event as stored in Kafka: CloudEvents context attributes plus typed data."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    source: str
    type: str
    subject: str
    time: datetime
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    data: D
    # Tamper evidence (see the audit tool): hash chain per subject and writer, set by producers.
    chain_hash: str | None = Field(default=None)
    # Where it was read from, when it was read from Kafka (not part of the event itself).
    position: tuple[str, int, int] | None = Field(default=None, exclude=True)

    @classmethod
    def new(
        cls,
        data: D,
        *,
        subject: str,
        source: str,
        cause: Envelope[Any] | None = None,
        event_id: uuid.UUID | None = None,
        time: datetime | None = None,
    ) -> Self:
        """Wrap data in an envelope. A derived event (one with a cause) must pass a
        deterministic `event_id` (see `derived_event_id`)."""
        if cause is not None and event_id is None:
            raise ValueError("derived events need a deterministic event_id")
        return cls(
            id=event_id or new_event_id(),
            source=source,
            type=data.event_type,
            subject=subject,
            time=time or datetime.now(UTC),
            correlation_id=(cause.correlation_id or cause.id) if cause else None,
            causation_id=cause.id if cause else None,
            data=data,
        )

    @property
    def topic(self) -> TopicName:
        return self.data.topic
