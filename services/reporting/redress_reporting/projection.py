"""Pure projection of events into the complaint read model: no I/O, so replaying the log gives
exactly what live processing gave."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from redress_events import Envelope, EventData
from redress_events.catalogue import (
    ComplaintAssigned,
    ComplaintPrioritized,
    ComplaintReceived,
    ComplaintWithdrawn,
)


@dataclass(frozen=True)
class ComplaintView:
    complaint_id: str
    status: str = "unknown"
    priority: str | None = None
    queue: str | None = None
    customer_id: str | None = None
    tier: str | None = None
    channel: str | None = None
    public: bool = False
    category: str | None = None
    product: str | None = None
    jurisdiction: str | None = None
    remedy_sought: str | None = None
    received_at: datetime | None = None
    updated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelineEntry:
    event_id: str
    complaint_id: str
    type: str
    time: datetime
    source: str
    causation_id: str | None
    summary: dict[str, Any]


def timeline_entry(event: Envelope[EventData]) -> TimelineEntry:
    return TimelineEntry(
        event_id=str(event.id),
        complaint_id=event.subject,
        type=event.type,
        time=event.time,
        source=event.source,
        causation_id=str(event.causation_id) if event.causation_id else None,
        summary=summarize(event.data),
    )


def summarize(data: EventData) -> dict[str, Any]:
    """What the timeline shows of an event: its decision and the reason, never personal data."""
    dumped = data.model_dump(mode="json", exclude={"customer", "description", "message"})
    dumped.pop("complaint_id", None)
    return dumped


def project(view: ComplaintView | None, event: Envelope[EventData]) -> ComplaintView | None:
    """The complaint row after `event`; None when the event does not concern a complaint row."""
    data = event.data
    current = view or ComplaintView(complaint_id=event.subject)
    current = replace(current, updated_at=max_time(current.updated_at, event.time))
    match data:
        case ComplaintReceived():
            return replace(
                current,
                status="received" if current.status == "unknown" else current.status,
                customer_id=data.customer.id,
                tier=data.customer.tier.value,
                channel=data.channel.value,
                public=data.public,
                category=data.category,
                product=data.product,
                jurisdiction=data.jurisdiction,
                remedy_sought=data.remedy_sought.value if data.remedy_sought else None,
                received_at=data.received_at,
            )
        case ComplaintPrioritized():
            return replace(
                current,
                priority=data.priority.value,
                status="open" if current.status in ("unknown", "received") else current.status,
            )
        case ComplaintAssigned():
            return replace(current, queue=data.queue)
        case ComplaintWithdrawn():
            return replace(current, status="withdrawn")
    return current


def max_time(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a
