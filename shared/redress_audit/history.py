"""A complaint's history: its events across topics in one order, each with its cause and the rule
or policy behind it. Pure."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redress_events import Envelope, EventData, TopicName

_TOPIC_RANK = {
    TopicName.COMPLAINTS: 0,
    TopicName.ROUTING: 1,
    TopicName.INCIDENTS: 2,
    TopicName.CASES: 3,
}
# Fields that name the rule, policy or guarantee behind a decision, in display order.
RULE_FIELDS = (
    "matched_rules",
    "rules_version",
    "policy_id",
    "policy_version",
    "policy_rule",
    "guarantee_id",
    "guarantee_version",
    "trigger",
)
# Free text written by or about the customer: never shown by the audit tool.
PERSONAL_FIELDS = frozenset({"customer", "description", "message", "question", "comment"})


def _sort_key(event: Envelope[EventData], index: int) -> tuple[datetime, int, int, int, int]:
    position = event.position
    return (
        event.time,
        _TOPIC_RANK.get(event.data.topic, 9),
        position[1] if position else 0,
        position[2] if position else 0,
        index,
    )


def ordered(events: Iterable[Envelope[EventData]]) -> list[Envelope[EventData]]:
    """Each event once (the first copy of an id, as every consumer keeps), by time, with a cause
    always before its effects even when the writers' clocks disagree."""
    unique: dict[str, Envelope[EventData]] = {}
    for event in events:
        unique.setdefault(str(event.id), event)
    items = list(unique.values())
    keys = {str(e.id): _sort_key(e, i) for i, e in enumerate(items)}
    waiting_on: dict[str, list[str]] = {}
    blocked: dict[str, int] = {}
    for event in items:
        cause = str(event.causation_id) if event.causation_id else None
        if cause is not None and cause in unique and cause != str(event.id):
            waiting_on.setdefault(cause, []).append(str(event.id))
            blocked[str(event.id)] = 1
    heap = [(keys[i], i) for i in unique if i not in blocked]
    heapq.heapify(heap)
    result: list[Envelope[EventData]] = []
    while heap:
        _, event_id = heapq.heappop(heap)
        result.append(unique[event_id])
        for effect in waiting_on.get(event_id, ()):
            heapq.heappush(heap, (keys[effect], effect))
    return result


@dataclass(frozen=True)
class HistoryRow:
    seq: int
    time: datetime
    type: str
    source: str
    subject: str
    event_id: str
    cause_id: str | None
    cause_type: str | None  # None when the cause is not among the events read
    rule: dict[str, Any]
    detail: dict[str, Any]
    position: str | None

    @property
    def cause(self) -> str:
        if self.cause_id is None:
            return ""
        return f"{self.cause_type or '(not found)'} {self.cause_id}"

    @property
    def rule_text(self) -> str:
        parts = []
        for name, value in self.rule.items():
            shown = ",".join(value) if isinstance(value, list) else str(value)
            parts.append(f"{name}={shown}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time.isoformat(),
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "event_id": self.event_id,
            "cause_id": self.cause_id,
            "cause_type": self.cause_type,
            "rule": self.rule,
            "detail": self.detail,
            "position": self.position,
        }


def rule_of(data: EventData) -> dict[str, Any]:
    dumped = data.model_dump(mode="json")
    return {name: dumped[name] for name in RULE_FIELDS if dumped.get(name) not in (None, [], "")}


def detail_of(data: EventData) -> dict[str, Any]:
    """What the event decided or recorded, without personal data and without the rule fields."""
    dumped = data.model_dump(mode="json", exclude=set(PERSONAL_FIELDS))
    return {
        name: value
        for name, value in dumped.items()
        if name not in RULE_FIELDS and name != "complaint_id" and value is not None
    }


def history_rows(events: Sequence[Envelope[EventData]]) -> list[HistoryRow]:
    chronology = ordered(events)
    types = {str(e.id): e.type for e in events}
    rows = []
    for seq, event in enumerate(chronology, start=1):
        cause_id = str(event.causation_id) if event.causation_id else None
        position = event.position
        rows.append(
            HistoryRow(
                seq=seq,
                time=event.time,
                type=event.type,
                source=event.source,
                subject=event.subject,
                event_id=str(event.id),
                cause_id=cause_id,
                cause_type=types.get(cause_id) if cause_id else None,
                rule=rule_of(event.data),
                detail=detail_of(event.data),
                position=f"{position[0]}/{position[1]}@{position[2]}" if position else None,
            )
        )
    return rows


def linked_incidents(events: Iterable[Envelope[EventData]]) -> list[str]:
    """Ids of the incidents a complaint's events link it to, in first-seen order."""
    found: dict[str, None] = {}
    for event in events:
        incident = getattr(event.data, "incident_id", None)
        if incident is not None and event.type == "redress.routing.linked_to_incident.v1":
            found.setdefault(str(incident), None)
    return list(found)
