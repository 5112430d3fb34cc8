"""Building blocks for recovery's unit tests: cases in every state, built only through `evolve`
from the events that would lead there, and one command of each kind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redress_events import EventData
from redress_events.catalogue import (
    ComplaintAcknowledged,
    ComplaintReceived,
    ComplaintResolved,
    ComplaintWithdrawn,
    InformationRequested,
    RemedyAccepted,
    RemedyDeclined,
    RemedyFulfilmentRecorded,
    RemedyProposed,
)
from redress_events.catalogue.recovery import FulfilmentStep, Outcome
from redress_events.values import Money, RemedyType
from redress_recovery.domain import (
    AcceptRemedy,
    Acknowledge,
    AnyCommand,
    Case,
    DeclineRemedy,
    ProposeRemedy,
    RecordCustomerReply,
    RecordFulfilment,
    RecordSatisfaction,
    Reopen,
    RequestInformation,
    Resolve,
    Respond,
    evolve,
)
from redress_recovery.policy import parse_policy

from tests.support.complaints import complaint_body

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CID = uuid.UUID("00000000-0000-4000-8000-00000000c1d0")
# One remedy in each remedy status, on every case that has remedies.
PROPOSED = uuid.UUID("00000000-0000-4000-8000-000000000001")
ACCEPTED = uuid.UUID("00000000-0000-4000-8000-000000000002")
DECLINED = uuid.UUID("00000000-0000-4000-8000-000000000003")
FULFILLED = uuid.UUID("00000000-0000-4000-8000-000000000004")
UNKNOWN_REMEDY = uuid.UUID("00000000-0000-4000-8000-000000000099")
NEW_REMEDY = uuid.UUID("00000000-0000-4000-8000-000000000100")

POLICY = parse_policy(
    """
version: "test-1"
guarantees:
  - id: first-response
    description: first response in time or a credit
    trigger: {kind: sla_breached, target: first_response}
    compensation: {type: account_credit, amount: {amount: "10.00", currency: EUR}}
  - id: satisfaction
    description: refund on a low score
    trigger: {kind: satisfaction_at_most, score: 3, within_days: 30}
    compensation: {type: refund, amount_from: amount_at_stake}
  - id: vip-resolution
    description: VIP customers get the fee waived when resolution is late
    trigger: {kind: sla_breached, target: resolution}
    compensation: {type: fee_waiver}
    applies_to: {tiers: [vip]}
bands:
  - failure_type: product_defect
    severity: critical
    remedies: [replacement, refund, account_credit]
    max_amount: {amount: "500.00", currency: GBP}
  - failure_type: product_defect
    remedies: [replacement, repair, refund, apology]
    max_amount: {amount: "100.00", currency: GBP}
jurisdictions:
  GB: {ombudsman: Financial Ombudsman Service, referral_window_months: 6}
"""
)


def received(**overrides: object) -> ComplaintReceived:
    return ComplaintReceived(
        **complaint_body(**overrides), complaint_id=CID, received_at=NOW - timedelta(days=1)
    )


def fold(*events: EventData, case: Case | None = None) -> Case:
    case = case or Case(complaint_id=CID)
    for event in events:
        case = evolve(case, event)
    return case


def _remedy_history() -> list[EventData]:
    def proposed(remedy_id: uuid.UUID, remedy_type: RemedyType) -> RemedyProposed:
        return RemedyProposed(
            complaint_id=CID,
            remedy_id=remedy_id,
            remedy_type=remedy_type,
            failure_type="product_defect",
            actor="agent",
            proposed_at=NOW,
        )

    return [
        proposed(PROPOSED, RemedyType.REPLACEMENT),
        proposed(ACCEPTED, RemedyType.REPLACEMENT),
        proposed(DECLINED, RemedyType.REPAIR),
        proposed(FULFILLED, RemedyType.APOLOGY),
        RemedyAccepted(complaint_id=CID, remedy_id=ACCEPTED, accepted_at=NOW),
        RemedyDeclined(complaint_id=CID, remedy_id=DECLINED, declined_at=NOW),
        RemedyAccepted(complaint_id=CID, remedy_id=FULFILLED, accepted_at=NOW),
        RemedyFulfilmentRecorded(
            complaint_id=CID, remedy_id=FULFILLED, step=FulfilmentStep.COMPLETED, recorded_at=NOW
        ),
    ]


ACK = ComplaintAcknowledged(complaint_id=CID, actor="agent", acknowledged_at=NOW)
ASKED = InformationRequested(complaint_id=CID, actor="agent", question="photo?", requested_at=NOW)
RESOLVED = ComplaintResolved(
    complaint_id=CID, outcome=Outcome.UPHELD, reason="fixed", actor="agent", resolved_at=NOW
)


def case_in(status: str) -> Case:
    """A case in `status`, reached through events (with one remedy in each remedy status)."""
    remedies = _remedy_history()
    histories: dict[str, list[EventData]] = {
        "unknown": [],
        "open": [received(), *remedies],
        "in_progress": [received(), ACK, *remedies],
        "awaiting_customer": [received(), ACK, *remedies, ASKED],
        "resolved": [received(), ACK, *remedies, RESOLVED],
        "withdrawn": [
            received(),
            ACK,
            *remedies,
            ComplaintWithdrawn(complaint_id=CID, withdrawn_at=NOW),
        ],
    }
    case = fold(*histories[status])
    assert case.status.value == status
    return case


STATUSES = ("unknown", "open", "in_progress", "awaiting_customer", "resolved", "withdrawn")


def command(name: str, remedy_id: uuid.UUID | None = None) -> AnyCommand:
    """One command of each kind. Remedy answers act on the proposed remedy and fulfilment on
    the accepted one, unless `remedy_id` says otherwise."""
    answer_to = remedy_id or PROPOSED
    fulfil = remedy_id or ACCEPTED
    common: dict[str, Any] = {"complaint_id": CID, "actor": "agent"}
    factories: dict[str, AnyCommand] = {
        "acknowledge": Acknowledge(**common),
        "respond": Respond(**common, message="We are on it"),
        "request_information": RequestInformation(**common, question="A photo?"),
        "customer_reply": RecordCustomerReply(**common, message="Here it is"),
        "propose_remedy": ProposeRemedy(
            **common,
            remedy_id=NEW_REMEDY,
            remedy_type=RemedyType.REPLACEMENT,
            failure_type="product_defect",
        ),
        "accept_remedy": AcceptRemedy(**common, remedy_id=answer_to),
        "decline_remedy": DeclineRemedy(**common, remedy_id=answer_to, reason="no"),
        "fulfil_remedy": RecordFulfilment(
            **common, remedy_id=fulfil, step=FulfilmentStep.COMPLETED
        ),
        "resolve": Resolve(**common, outcome=Outcome.UPHELD, reason="defect confirmed"),
        "reopen": Reopen(**common, reason="customer disputes"),
        "record_satisfaction": RecordSatisfaction(**common, score=7),
    }
    return factories[name]


COMMANDS = (
    "acknowledge",
    "respond",
    "request_information",
    "customer_reply",
    "propose_remedy",
    "accept_remedy",
    "decline_remedy",
    "fulfil_remedy",
    "resolve",
    "reopen",
    "record_satisfaction",
)

GBP = "GBP"


def money(amount: str, currency: str = GBP) -> Money:
    return Money(amount=amount, currency=currency)  # type: ignore[arg-type]
