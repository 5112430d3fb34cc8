"""Decisions routing makes about a complaint, each with the rules behind it (writer: routing)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, StringConstraints

from redress_events.envelope import EventData
from redress_events.topics import TopicName
from redress_events.values import Priority

RuleId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ComplaintPrioritized(EventData):
    event_type = "redress.routing.prioritized.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    priority: Priority
    matched_rules: tuple[RuleId, ...] = Field(description="ids of every rule that matched")
    rules_version: str
    reason: str = Field(description="human-readable explanation of the decision")


class ComplaintAssigned(EventData):
    event_type = "redress.routing.assigned.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    queue: str
    matched_rules: tuple[RuleId, ...]
    rules_version: str
    reason: str
