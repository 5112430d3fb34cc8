"""Event stories for reporting tests: whole complaint histories using every catalogued event,
with deterministic ids and times so two runs build the same events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from redress_events import Envelope, EventData, TopicName, derived_event_id
from redress_events.catalogue import (
    AgentResponded,
    CompensationIssued,
    ComplaintAcknowledged,
    ComplaintAssigned,
    ComplaintDeescalated,
    ComplaintEscalated,
    ComplaintLinkedToIncident,
    ComplaintPrioritized,
    ComplaintReceived,
    ComplaintReopened,
    ComplaintResolved,
    ComplaintWithdrawn,
    CustomerMessageReceived,
    CustomerReplied,
    ExternalAgentResponded,
    GuaranteeTriggered,
    IncidentDetected,
    IncidentResolved,
    InformationRequested,
    RemedyAccepted,
    RemedyDeclined,
    RemedyFulfilmentRecorded,
    RemedyProposed,
    SatisfactionRecorded,
    SlaBreached,
    SlaClockPaused,
    SlaClockResumed,
    SlaClockStarted,
    SlaMet,
    SlaWarning,
)
from redress_events.catalogue.routing import SlaDeadline, SlaDeadlineExtended
from redress_events.values import Money

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NAMESPACE = uuid.UUID("0b7f1d52-6a0e-4c1b-9d0e-5a1c2b3d4e5f")
SOURCES = {
    TopicName.COMPLAINTS: "redress/intake",
    TopicName.ROUTING: "redress/routing",
    TopicName.INCIDENTS: "redress/routing",
    TopicName.CASES: "redress/recovery",
}


def cid(n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"complaint-{n}"))


def incident_id(n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"incident-{n}"))


@dataclass
class Story:
    """Builds one complaint's events; `at(minutes)` is the time `minutes` after receipt."""

    n: int
    received_at: datetime = T0
    customer_id: str = "C-1"
    tier: str = "standard"
    channel: str = "web"
    product: str = "kettle-2000"

    def __post_init__(self) -> None:
        self.complaint_id = cid(self.n)
        self.events: list[Envelope[EventData]] = []
        self._cause: Envelope[EventData] | None = None

    def at(self, minutes: float) -> datetime:
        return self.received_at + timedelta(minutes=minutes)

    def add(self, data: EventData, minutes: float, *, subject: str | None = None) -> Story:
        index = len(self.events)
        event_id = derived_event_id(self.complaint_id, data.event_type, str(index))
        self.events.append(
            Envelope[EventData](
                id=event_id,
                source=SOURCES[data.topic],
                type=data.event_type,
                subject=subject or self.complaint_id,
                time=self.at(minutes),
                causation_id=self._cause.id if self._cause else None,
                data=data,
            )
        )
        self._cause = self._cause or self.events[0]
        return self

    # -- the steps of a complaint's life --------------------------------------------------

    def received(self, **overrides: Any) -> Story:
        body: dict[str, Any] = {
            "complaint_id": self.complaint_id,
            "customer": {
                "id": self.customer_id,
                "tier": self.tier,
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "phone": "+44 20 7946 0000",
            },
            "channel": self.channel,
            "category": "product_defect",
            "product": self.product,
            "description": "The handle snapped and burned my hand.",
            "remedy_sought": "replacement",
            "amount_at_stake": {"amount": "49.99", "currency": "GBP"},
            "jurisdiction": "GB",
            "received_at": self.received_at,
            **overrides,
        }
        return self.add(ComplaintReceived.model_validate(body), 0)

    def routed(self, priority: str = "P2", queue: str = "defects") -> Story:
        cid_ = uuid.UUID(self.complaint_id)
        self.add(
            ComplaintPrioritized(
                complaint_id=cid_,
                priority=priority,  # type: ignore[arg-type]
                matched_rules=("safety-injury",),
                rules_version="r7",
                reason="injury reported",
            ),
            0.1,
        )
        self.add(
            ComplaintAssigned(
                complaint_id=cid_,
                queue=queue,
                matched_rules=("defects-queue",),
                rules_version="r7",
                reason="product defect",
            ),
            0.2,
        )
        return self.add(
            SlaClockStarted(
                complaint_id=cid_,
                policy_id="uk-standard",
                policy_version="3",
                deadlines=(
                    _deadline("first_response", self.at(60)),
                    _deadline("resolution", self.at(60 * 24 * 7)),
                    _deadline("regulatory", self.at(60 * 24 * 56)),
                ),
                reason="GB retail policy",
            ),
            0.3,
        )

    def full_life(self, *, breach: bool = False, satisfaction: int = 8) -> Story:
        """Every complaint, routing and case event, in a plausible order."""
        cid_ = uuid.UUID(self.complaint_id)
        remedy = uuid.uuid5(NAMESPACE, f"remedy-{self.n}")
        declined = uuid.uuid5(NAMESPACE, f"remedy-declined-{self.n}")
        self.received().routed()
        self.add(
            ComplaintAcknowledged(complaint_id=cid_, actor="agent-7", acknowledged_at=self.at(5)), 5
        )
        self.add(
            CustomerMessageReceived(
                complaint_id=cid_,
                message="Any news?",
                channel="email",
                received_at=self.at(20),  # type: ignore[arg-type]
            ),
            20,
        )
        self.add(
            AgentResponded(
                complaint_id=cid_,
                actor="agent-7",
                message="Sorry, looking now.",
                responded_at=self.at(30),
            ),
            30,
        )
        self.add(
            SlaMet(
                complaint_id=cid_,
                target="first_response",  # type: ignore[arg-type]
                policy_id="uk-standard",
                due_at=self.at(60),
                met_at=self.at(30),
                elapsed_seconds=1800.0,
            ),
            30.1,
        )
        self.add(
            InformationRequested(
                complaint_id=cid_,
                actor="agent-7",
                question="Photo of the handle?",
                requested_at=self.at(40),
            ),
            40,
        )
        self.add(
            SlaClockPaused(complaint_id=cid_, paused_at=self.at(40), reason="awaiting customer"),
            40.1,
        )
        self.add(
            CustomerReplied(complaint_id=cid_, message="Here it is.", replied_at=self.at(100)), 100
        )
        self.add(
            SlaClockResumed(
                complaint_id=cid_,
                resumed_at=self.at(100),
                deadlines=(_deadline("resolution", self.at(60 * 24 * 7 + 60)),),
            ),
            100.1,
        )
        self.add(
            SlaDeadlineExtended(
                complaint_id=cid_,
                target="regulatory",  # type: ignore[arg-type]
                policy_id="uk-standard",
                deadline=_deadline("regulatory", self.at(60 * 24 * 70)),
                reason="holding reply sent",
            ),
            101,
        )
        self.add(
            SlaWarning(
                complaint_id=cid_,
                target="resolution",  # type: ignore[arg-type]
                policy_id="uk-standard",
                due_at=self.at(60 * 24 * 7 + 60),
                share_elapsed=0.8,
            ),
            60 * 24 * 5,
        )
        if breach:
            self.add(
                SlaBreached(
                    complaint_id=cid_,
                    target="resolution",  # type: ignore[arg-type]
                    policy_id="uk-standard",
                    due_at=self.at(60 * 24 * 7 + 60),
                    breached_at=self.at(60 * 24 * 7 + 60),
                ),
                60 * 24 * 7 + 60,
            )
            self.add(
                ComplaintEscalated(
                    complaint_id=cid_,
                    from_tier="agent",  # type: ignore[arg-type]
                    tier="team_lead",  # type: ignore[arg-type]
                    trigger="sla_breached:resolution",
                    policy_rule="esc-resolution-1",
                    reason="resolution SLA breached",
                ),
                60 * 24 * 7 + 61,
            )
            self.add(
                ComplaintDeescalated(
                    complaint_id=cid_,
                    from_tier="team_lead",  # type: ignore[arg-type]
                    tier="agent",  # type: ignore[arg-type]
                    trigger="resolved",
                    policy_rule="esc-down",
                    reason="back in hand",
                ),
                60 * 24 * 7 + 90,
            )
            self.add(
                GuaranteeTriggered(
                    complaint_id=cid_,
                    guarantee_id="late-resolution",
                    guarantee_version="1",
                    trigger_event_id=self.events[-3].id,
                    trigger="sla_breached:resolution",
                    triggered_at=self.at(60 * 24 * 7 + 62),
                ),
                60 * 24 * 7 + 62,
            )
            self.add(
                CompensationIssued(
                    complaint_id=cid_,
                    guarantee_id="late-resolution",
                    compensation_type="account_credit",  # type: ignore[arg-type]
                    amount=Money(amount=Decimal("10.00"), currency="GBP"),
                    issued_at=self.at(60 * 24 * 7 + 63),
                ),
                60 * 24 * 7 + 63,
            )
        self.add(
            RemedyProposed(
                complaint_id=cid_,
                remedy_id=declined,
                remedy_type="repair",  # type: ignore[arg-type]
                failure_type="product_defect",
                severity="high",
                actor="agent-7",
                remedy_sought="replacement",  # type: ignore[arg-type]
                proposed_at=self.at(200),
            ),
            200,
        )
        self.add(
            RemedyDeclined(
                complaint_id=cid_, remedy_id=declined, reason="wants new", declined_at=self.at(210)
            ),
            210,
        )
        self.add(
            RemedyProposed(
                complaint_id=cid_,
                remedy_id=remedy,
                remedy_type="refund",  # type: ignore[arg-type]
                failure_type="product_defect",
                severity="high",
                amount=Money(amount=Decimal("49.99"), currency="GBP"),
                outside_band=True,
                band_reason="injury",
                actor="agent-7",
                remedy_sought="replacement",  # type: ignore[arg-type]
                proposed_at=self.at(220),
            ),
            220,
        )
        self.add(RemedyAccepted(complaint_id=cid_, remedy_id=remedy, accepted_at=self.at(230)), 230)
        self.add(
            RemedyFulfilmentRecorded(
                complaint_id=cid_,
                remedy_id=remedy,
                step="refund_paid",
                reference="PAY-1",
                recorded_at=self.at(240),  # type: ignore[arg-type]
            ),
            240,
        )
        self.add(
            ComplaintResolved(
                complaint_id=cid_,
                outcome="upheld",  # type: ignore[arg-type]
                reason="defect confirmed",
                actor="agent-7",
                ombudsman="FOS",
                referral_deadline=self.at(60 * 24 * 180),
                resolved_at=self.at(250),
            ),
            250,
        )
        self.add(
            ComplaintReopened(complaint_id=cid_, reason="refund missing", reopened_at=self.at(300)),
            300,
        )
        self.add(
            ExternalAgentResponded(
                complaint_id=cid_,
                agent="crm-agent-2",
                message="Refund re-sent.",
                responded_at=self.at(310),
            ),
            310,
        )
        self.add(
            ComplaintResolved(
                complaint_id=cid_,
                outcome="upheld",  # type: ignore[arg-type]
                reason="refund re-sent",
                actor="agent-7",
                resolved_at=self.at(320),
            ),
            320,
        )
        return self.add(
            SatisfactionRecorded(
                complaint_id=cid_,
                score=satisfaction,
                comment="ok in the end",
                recorded_at=self.at(400),
            ),
            400,
        )

    def withdrawn(self, minutes: float = 50) -> Story:
        return self.add(
            ComplaintWithdrawn(
                complaint_id=uuid.UUID(self.complaint_id),
                reason="sorted",
                withdrawn_at=self.at(minutes),
            ),
            minutes,
        )

    def linked(self, incident: str, minutes: float = 1) -> Story:
        return self.add(
            ComplaintLinkedToIncident(
                complaint_id=uuid.UUID(self.complaint_id),
                incident_id=uuid.UUID(incident),
                product=self.product,
                category="product_defect",
                priority="P1",  # type: ignore[arg-type]
                policy_rule="surge-x3",
                reason="surge",
            ),
            minutes,
        )


def _deadline(target: str, due: datetime) -> SlaDeadline:
    return SlaDeadline(
        target=target, due_at=due, warn_at=due - timedelta(minutes=10), calendar="calendar"
    )  # type: ignore[arg-type]


def incident_events(
    n: int, *, detected_at: datetime = T0, resolved: bool = True
) -> list[Envelope[EventData]]:
    iid = incident_id(n)
    events: list[Envelope[EventData]] = [
        Envelope[EventData](
            id=derived_event_id(iid, "detected"),
            source="redress/routing",
            type=IncidentDetected.event_type,
            subject=iid,
            time=detected_at,
            data=IncidentDetected(
                incident_id=uuid.UUID(iid),
                product="kettle-2000",
                category="product_defect",
                window_seconds=3600,
                count=12,
                baseline=2.0,
                factor=6.0,
                priority="P1",  # type: ignore[arg-type]
                detected_at=detected_at,
                reason="12 in an hour vs 2",
            ),
        )
    ]
    if resolved:
        events.append(
            Envelope[EventData](
                id=derived_event_id(iid, "resolved"),
                source="redress/routing",
                type=IncidentResolved.event_type,
                subject=iid,
                time=detected_at + timedelta(hours=5),
                data=IncidentResolved(
                    incident_id=uuid.UUID(iid),
                    product="kettle-2000",
                    category="product_defect",
                    resolved_at=detected_at + timedelta(hours=5),
                    complaints_linked=3,
                    reason="back to baseline",
                ),
            )
        )
    return events


def with_positions(events: list[Envelope[EventData]]) -> list[Envelope[EventData]]:
    """The events as a consumer reads them: topic/partition/offset set, one partition per
    topic, offsets in list order."""
    next_offset: dict[str, int] = {}
    positioned = []
    for event in events:
        topic = event.data.topic.value
        offset = next_offset.get(topic, 0)
        next_offset[topic] = offset + 1
        positioned.append(event.model_copy(update={"position": (topic, 0, offset)}))
    return positioned


def every_event_type_used(events: list[Envelope[EventData]]) -> set[str]:
    return {e.type for e in events}
