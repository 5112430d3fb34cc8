"""Facts about a complaint as the customer or an outside system reported them (writer: intake)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from redress_events.envelope import EventData
from redress_events.topics import TopicName
from redress_events.values import Channel, CountryCode, Customer, Money, RemedyType, Slug

Description = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class ComplaintSubmission(BaseModel):
    """What a caller sends to `POST /v1/complaints` or as `redress.complaint.submitted.v1` data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer: Customer
    channel: Channel
    public: bool = Field(default=False, description="posted where others can see it")
    category: Slug = Field(description="e.g. product_defect, billing, delivery, service")
    product: Slug
    description: Description
    remedy_sought: RemedyType | None = None
    amount_at_stake: Money | None = None
    jurisdiction: CountryCode = Field(description="ISO 3166-1 alpha-2 country code")
    external_reference: Annotated[str, StringConstraints(max_length=128)] | None = None


class ComplaintReceived(ComplaintSubmission, EventData):
    event_type = "redress.complaint.received.v1"
    topic = TopicName.COMPLAINTS

    complaint_id: uuid.UUID
    received_at: datetime
    submitted_via: Literal["http", "kafka"] = "http"


class CustomerMessageReceived(EventData):
    event_type = "redress.complaint.customer_message.v1"
    topic = TopicName.COMPLAINTS

    complaint_id: uuid.UUID
    message: Description
    channel: Channel
    received_at: datetime


class ComplaintWithdrawn(EventData):
    event_type = "redress.complaint.withdrawn.v1"
    topic = TopicName.COMPLAINTS

    complaint_id: uuid.UUID
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None
    withdrawn_at: datetime


class ExternalAgentResponded(EventData):
    """An agent answered the customer in an outside tool (counts as a response for SLA clocks)."""

    event_type = "redress.complaint.external_response.v1"
    topic = TopicName.COMPLAINTS

    complaint_id: uuid.UUID
    agent: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    message: Description
    responded_at: datetime
