"""Case work: what the company did to put a complaint right (writer: recovery)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from redress_events.envelope import EventData
from redress_events.topics import TopicName
from redress_events.values import Money, RemedyType

Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
Actor = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Outcome(StrEnum):
    UPHELD = "upheld"
    PARTIALLY_UPHELD = "partially_upheld"
    REJECTED = "rejected"


class FulfilmentStep(StrEnum):
    LABEL_ISSUED = "label_issued"
    ITEM_RECEIVED = "item_received"
    REPLACEMENT_SHIPPED = "replacement_shipped"
    REFUND_PAID = "refund_paid"
    CREDIT_APPLIED = "credit_applied"
    COMPLETED = "completed"


class ComplaintAcknowledged(EventData):
    event_type = "redress.case.acknowledged.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    actor: Actor
    acknowledged_at: datetime


class AgentResponded(EventData):
    """An agent replied to the customer: a first response or an update for the SLA clocks."""

    event_type = "redress.case.responded.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    actor: Actor
    message: Text
    holding_reply: bool = Field(default=False, description="a holding reply (e.g. DISP 35 days)")
    responded_at: datetime


class InformationRequested(EventData):
    """The clock pauses until the customer replies."""

    event_type = "redress.case.information_requested.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    actor: Actor
    question: Text
    requested_at: datetime


class CustomerReplied(EventData):
    event_type = "redress.case.customer_replied.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    message: Text
    replied_at: datetime
    actor: Actor | None = Field(default=None, description="who recorded the reply")


class RemedyProposed(EventData):
    event_type = "redress.case.remedy_proposed.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    remedy_id: uuid.UUID
    remedy_type: RemedyType
    failure_type: str
    amount: Money | None = None
    severity: str | None = None
    outside_band: bool = Field(default=False, description="outside its (failure, severity) band")
    band_reason: str | None = Field(default=None, description="why, when outside its band")
    remedy_sought: RemedyType | None = Field(
        default=None, description="what the customer asked for"
    )
    actor: Actor
    proposed_at: datetime


class RemedyAccepted(EventData):
    event_type = "redress.case.remedy_accepted.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    remedy_id: uuid.UUID
    accepted_at: datetime
    actor: Actor | None = Field(default=None, description="who recorded the acceptance")


class RemedyDeclined(EventData):
    event_type = "redress.case.remedy_declined.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    remedy_id: uuid.UUID
    reason: str | None = None
    declined_at: datetime
    actor: Actor | None = Field(default=None, description="who recorded the decline")


class RemedyFulfilmentRecorded(EventData):
    event_type = "redress.case.remedy_fulfilment.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    remedy_id: uuid.UUID
    step: FulfilmentStep
    reference: str | None = None
    recorded_at: datetime
    remedy_type: RemedyType | None = Field(default=None, description="the remedy being given")
    actor: Actor | None = None


class ComplaintResolved(EventData):
    event_type = "redress.case.resolved.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    outcome: Outcome
    reason: Text
    actor: Actor
    ombudsman: str | None = Field(default=None, description="where the customer may refer it")
    referral_deadline: datetime | None = Field(default=None, description="e.g. FOS: 6 months")
    resolved_at: datetime
    # Customers judge by comparison: what was sought, offered and given, side by side.
    remedy_sought: RemedyType | None = Field(default=None, description="asked for at intake")
    remedies_offered: tuple[RemedyType, ...] = Field(default=(), description="proposed so far")
    remedies_given: tuple[RemedyType, ...] = Field(
        default=(), description="accepted by the customer (being or already fulfilled)"
    )


class ComplaintReopened(EventData):
    event_type = "redress.case.reopened.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    reason: Text
    reopened_at: datetime
    actor: Actor | None = None


class SatisfactionRecorded(EventData):
    event_type = "redress.case.satisfaction_recorded.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    score: int = Field(ge=1, le=10)
    comment: Annotated[str, StringConstraints(max_length=5000)] | None = None
    recorded_at: datetime
    actor: Actor | None = None


class GuaranteeTriggered(EventData):
    """Exactly once per (complaint, guarantee): id derived from both."""

    event_type = "redress.case.guarantee_triggered.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    guarantee_id: str
    guarantee_version: str
    trigger_event_id: uuid.UUID
    trigger: str
    triggered_at: datetime


class CompensationIssued(EventData):
    event_type = "redress.case.compensation_issued.v1"
    topic = TopicName.CASES

    complaint_id: uuid.UUID
    guarantee_id: str
    compensation_type: RemedyType
    amount: Money | None = None
    issued_at: datetime
    guarantee_version: str | None = Field(default=None, description="policy file version")
