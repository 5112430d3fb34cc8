"""Decisions routing makes about a complaint, each with the rules behind it (writer: routing)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from redress_events.envelope import EventData
from redress_events.topics import TopicName
from redress_events.values import Priority

RuleId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class SlaTarget(StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_UPDATE = "next_update"
    RESOLUTION = "resolution"
    REGULATORY = "regulatory"  # e.g. FCA DISP final response, CFPB final response


class EscalationTier(StrEnum):
    AGENT = "agent"
    TEAM_LEAD = "team_lead"
    MANAGER = "manager"
    EXECUTIVE = "executive"


class ComplaintPrioritized(EventData):
    event_type = "redress.routing.prioritized.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    priority: Priority
    matched_rules: tuple[RuleId, ...] = Field(description="ids of every rule that matched")
    rules_version: str
    reason: str = Field(description="human-readable explanation of the decision")
    # Facts the SLA clocks need, so they start from this one event (topics are not ordered
    # with each other). Optional: absent in events written before they were added.
    received_at: datetime | None = Field(default=None, description="when the clocks start")
    jurisdiction: str | None = None
    product: str | None = None
    category: str | None = None
    public: bool | None = None


class ComplaintAssigned(EventData):
    event_type = "redress.routing.assigned.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    queue: str
    matched_rules: tuple[RuleId, ...]
    rules_version: str
    reason: str


class SlaDeadline(BaseModel):
    """One target's deadline inside SlaClockStarted (not an event on its own)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: SlaTarget
    due_at: datetime
    warn_at: datetime
    calendar: str = Field(description="business calendar id, or 'calendar' for 24x7")


class SlaClockStarted(EventData):
    event_type = "redress.routing.sla_clock_started.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    policy_id: str
    policy_version: str
    deadlines: tuple[SlaDeadline, ...]
    reason: str


class SlaClockPaused(EventData):
    event_type = "redress.routing.sla_clock_paused.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    paused_at: datetime
    reason: str


class SlaClockResumed(EventData):
    event_type = "redress.routing.sla_clock_resumed.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    resumed_at: datetime
    deadlines: tuple[SlaDeadline, ...] = Field(description="the deadlines moved by the pause")


class SlaWarning(EventData):
    event_type = "redress.routing.sla_warning.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    target: SlaTarget
    policy_id: str
    due_at: datetime
    share_elapsed: float
    generation: int = Field(default=0, description="bumped each time this deadline moves")


class SlaBreached(EventData):
    event_type = "redress.routing.sla_breached.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    target: SlaTarget
    policy_id: str
    due_at: datetime
    breached_at: datetime
    generation: int = Field(default=0, description="bumped each time this deadline moves")


class SlaMet(EventData):
    event_type = "redress.routing.sla_met.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    target: SlaTarget
    policy_id: str
    due_at: datetime
    met_at: datetime
    elapsed_seconds: float = Field(description="business seconds from start to the target event")
    generation: int = Field(default=0, description="bumped each time this deadline moves")


class SlaDeadlineExtended(EventData):
    """A deadline moved later by rule, e.g. FCA DISP payment services: 15 → 35 business days
    after a holding reply."""

    event_type = "redress.routing.sla_deadline_extended.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    target: SlaTarget
    policy_id: str
    deadline: SlaDeadline
    reason: str


class ComplaintEscalated(EventData):
    event_type = "redress.routing.escalated.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    from_tier: EscalationTier
    tier: EscalationTier
    trigger: str = Field(
        description="the breach or signal that moved it, e.g. sla_breached:resolution"
    )
    policy_rule: str
    reason: str


class ComplaintDeescalated(EventData):
    event_type = "redress.routing.deescalated.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    from_tier: EscalationTier
    tier: EscalationTier
    trigger: str
    policy_rule: str
    reason: str


class ComplaintLinkedToIncident(EventData):
    event_type = "redress.routing.linked_to_incident.v1"
    topic = TopicName.ROUTING

    complaint_id: uuid.UUID
    incident_id: uuid.UUID
    product: str
    category: str
    priority: Priority | None = Field(default=None, description="the incident's priority")
    policy_rule: str | None = None
    reason: str | None = None


class IncidentDetected(EventData):
    """Subject = incident id; one per incident, not per window."""

    event_type = "redress.incident.detected.v1"
    topic = TopicName.INCIDENTS

    incident_id: uuid.UUID
    product: str
    category: str
    window_seconds: int
    count: int
    baseline: float
    factor: float
    priority: Priority
    detected_at: datetime
    reason: str


class IncidentResolved(EventData):
    event_type = "redress.incident.resolved.v1"
    topic = TopicName.INCIDENTS

    incident_id: uuid.UUID
    product: str
    category: str
    resolved_at: datetime
    complaints_linked: int
    reason: str
