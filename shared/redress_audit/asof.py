"""A complaint's state as it stood at one moment, folded from its events alone. Pure.

"As it stood" means: the events the log had recorded by then (event time <= the moment), applied
in the history order (`history.ordered`). Nothing is read from a read model, so the answer
depends on the log only and is the same on every replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from redress_events import Envelope, EventData
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

from redress_audit.history import ordered

SLA_DEADLINE_EXTENDED = "redress.routing.sla_deadline_extended.v1"


@dataclass(frozen=True)
class Clock:
    target: str
    policy_id: str | None
    due_at: datetime
    warn_at: datetime | None
    calendar: str | None
    state: str = "running"  # running | paused | met | breached
    warned: bool = False
    met_at: datetime | None = None
    breached_at: datetime | None = None


@dataclass(frozen=True)
class Remedy:
    remedy_id: str
    remedy_type: str
    amount: str | None
    state: str = "proposed"  # proposed | accepted | declined | in_fulfilment | fulfilled
    steps: tuple[str, ...] = ()
    outside_band: bool = False


@dataclass(frozen=True)
class Guarantee:
    guarantee_id: str
    guarantee_version: str
    trigger: str
    triggered_at: datetime
    compensation: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resolution:
    outcome: str
    resolved_at: datetime
    ombudsman: str | None
    referral_deadline: datetime | None


@dataclass(frozen=True)
class Incident:
    incident_id: str
    priority: str | None = None
    state: str = "active"  # active | resolved (a complaint is only linked to a detected one)


@dataclass(frozen=True)
class ComplaintState:
    complaint_id: str
    as_of: datetime
    events_applied: int = 0
    last_event_at: datetime | None = None
    status: str = "unknown"  # received | open | awaiting_customer | resolved | withdrawn
    received_at: datetime | None = None
    channel: str | None = None
    category: str | None = None
    product: str | None = None
    jurisdiction: str | None = None
    remedy_sought: str | None = None
    priority: str | None = None
    priority_rules: tuple[str, ...] = ()
    rules_version: str | None = None
    queue: str | None = None
    escalation_tier: str = "agent"
    sla_policy: str | None = None
    clocks_paused_at: datetime | None = None
    clocks: tuple[Clock, ...] = ()
    acknowledged_at: datetime | None = None
    first_response_at: datetime | None = None
    last_response_at: datetime | None = None
    holding_reply_at: datetime | None = None
    last_customer_message_at: datetime | None = None
    remedies: tuple[Remedy, ...] = ()
    guarantees: tuple[Guarantee, ...] = ()
    resolution: Resolution | None = None
    reopened: int = 0
    withdrawn_at: datetime | None = None
    satisfaction: int | None = None
    incidents: tuple[Incident, ...] = ()
    unhandled_types: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))  # type: ignore[no-any-return]


def state_as_of(
    *, complaint_id: str, events: Iterable[Envelope[EventData]], at: datetime
) -> ComplaintState:
    """The complaint at `at`. `events` may include its linked incidents' events."""
    state = ComplaintState(complaint_id=complaint_id, as_of=at)
    for event in ordered(events):
        if event.time <= at:
            state = evolve(state, event)
    return state


def evolve(state: ComplaintState, event: Envelope[EventData]) -> ComplaintState:
    """The state after one event (a new object; `state` is not changed)."""
    state = replace(
        state,
        events_applied=state.events_applied + 1,
        last_event_at=event.time
        if state.last_event_at is None or event.time > state.last_event_at
        else state.last_event_at,
    )
    data = event.data
    match data:
        case ComplaintReceived():
            return replace(
                state,
                status="received" if state.status == "unknown" else state.status,
                received_at=data.received_at,
                channel=data.channel.value,
                category=data.category,
                product=data.product,
                jurisdiction=data.jurisdiction,
                remedy_sought=data.remedy_sought.value if data.remedy_sought else None,
            )
        case ComplaintPrioritized():
            return replace(
                state,
                status="open" if state.status in ("unknown", "received") else state.status,
                priority=data.priority.value,
                priority_rules=tuple(data.matched_rules),
                rules_version=data.rules_version,
            )
        case ComplaintAssigned():
            return replace(state, queue=data.queue)
        case SlaClockStarted():
            clocks = tuple(
                Clock(
                    target=d.target.value,
                    policy_id=data.policy_id,
                    due_at=d.due_at,
                    warn_at=d.warn_at,
                    calendar=d.calendar,
                )
                for d in data.deadlines
            )
            return replace(state, sla_policy=data.policy_id, clocks=clocks, clocks_paused_at=None)
        case SlaClockPaused():
            return replace(
                state,
                clocks_paused_at=data.paused_at,
                clocks=_each_running(state.clocks, state="paused"),
            )
        case SlaClockResumed():
            clocks = _each_running(state.clocks, state="running", include_paused=True)
            for d in data.deadlines:
                clocks = _set_deadline(clocks, d.target.value, d.due_at, d.warn_at, d.calendar)
            return replace(state, clocks_paused_at=None, clocks=clocks)
        case SlaWarning():
            return replace(
                state, clocks=_update_clock(state.clocks, data.target.value, warned=True)
            )
        case SlaBreached():
            return replace(
                state,
                clocks=_update_clock(
                    state.clocks,
                    data.target.value,
                    state="breached",
                    breached_at=data.breached_at,
                ),
            )
        case SlaMet():
            return replace(
                state,
                clocks=_update_clock(
                    state.clocks, data.target.value, state="met", met_at=data.met_at
                ),
            )
        case ComplaintEscalated() | ComplaintDeescalated():
            return replace(state, escalation_tier=data.tier.value)
        case ComplaintLinkedToIncident():
            linked = _incident(state.incidents, str(data.incident_id))
            incident = Incident(
                str(data.incident_id),
                data.priority.value if data.priority else None,
                linked.state if linked else "active",
            )
            return replace(state, incidents=_upsert_incident(state.incidents, incident))
        case IncidentDetected():
            found = _incident(state.incidents, str(data.incident_id))
            if found is None:
                return state
            return replace(
                state,
                incidents=_upsert_incident(
                    state.incidents, replace(found, priority=data.priority.value)
                ),
            )
        case IncidentResolved():
            found = _incident(state.incidents, str(data.incident_id))
            if found is None:
                return state
            return replace(
                state,
                incidents=_upsert_incident(state.incidents, replace(found, state="resolved")),
            )
        case ComplaintAcknowledged():
            return replace(state, acknowledged_at=state.acknowledged_at or data.acknowledged_at)
        case AgentResponded() | ExternalAgentResponded():
            return replace(
                state,
                first_response_at=state.first_response_at or data.responded_at,
                last_response_at=data.responded_at,
                holding_reply_at=data.responded_at
                if isinstance(data, AgentResponded) and data.holding_reply
                else state.holding_reply_at,
            )
        case InformationRequested():
            return replace(
                state, status="awaiting_customer" if state.status == "open" else state.status
            )
        case CustomerReplied():
            return replace(
                state,
                status="open" if state.status == "awaiting_customer" else state.status,
                last_customer_message_at=data.replied_at,
            )
        case CustomerMessageReceived():
            return replace(state, last_customer_message_at=data.received_at)
        case RemedyProposed():
            remedy = Remedy(
                remedy_id=str(data.remedy_id),
                remedy_type=data.remedy_type.value,
                amount=f"{data.amount.amount} {data.amount.currency}" if data.amount else None,
                outside_band=data.outside_band,
            )
            return replace(state, remedies=_upsert_remedy(state.remedies, remedy))
        case RemedyAccepted() | RemedyDeclined():
            found_remedy = _remedy(state.remedies, str(data.remedy_id))
            if found_remedy is None:
                return state
            new_state = "accepted" if isinstance(data, RemedyAccepted) else "declined"
            return replace(
                state,
                remedies=_upsert_remedy(state.remedies, replace(found_remedy, state=new_state)),
            )
        case RemedyFulfilmentRecorded():
            found_remedy = _remedy(state.remedies, str(data.remedy_id))
            if found_remedy is None:
                return state
            step = data.step.value
            return replace(
                state,
                remedies=_upsert_remedy(
                    state.remedies,
                    replace(
                        found_remedy,
                        steps=(*found_remedy.steps, step),
                        state="fulfilled" if step == "completed" else "in_fulfilment",
                    ),
                ),
            )
        case GuaranteeTriggered():
            guarantee = Guarantee(
                guarantee_id=data.guarantee_id,
                guarantee_version=data.guarantee_version,
                trigger=data.trigger,
                triggered_at=data.triggered_at,
            )
            if any(g.guarantee_id == data.guarantee_id for g in state.guarantees):
                return state  # paid exactly once: a second trigger changes nothing
            return replace(state, guarantees=(*state.guarantees, guarantee))
        case CompensationIssued():
            amount = f" {data.amount.amount} {data.amount.currency}" if data.amount else ""
            given = f"{data.compensation_type.value}{amount}"
            return replace(
                state,
                guarantees=tuple(
                    replace(g, compensation=(*g.compensation, given))
                    if g.guarantee_id == data.guarantee_id
                    else g
                    for g in state.guarantees
                ),
            )
        case ComplaintResolved():
            return replace(
                state,
                status="resolved" if state.status != "withdrawn" else state.status,
                resolution=Resolution(
                    outcome=data.outcome.value,
                    resolved_at=data.resolved_at,
                    ombudsman=data.ombudsman,
                    referral_deadline=data.referral_deadline,
                ),
            )
        case ComplaintReopened():
            return replace(state, status="open", resolution=None, reopened=state.reopened + 1)
        case ComplaintWithdrawn():
            return replace(state, status="withdrawn", withdrawn_at=data.withdrawn_at)
        case SatisfactionRecorded():
            return replace(state, satisfaction=data.score)
    if event.type == SLA_DEADLINE_EXTENDED:
        deadline: Any = data.deadline  # type: ignore[attr-defined]
        return replace(
            state,
            clocks=_set_deadline(
                state.clocks,
                deadline.target.value,
                deadline.due_at,
                deadline.warn_at,
                deadline.calendar,
            ),
        )
    if event.type in state.unhandled_types:
        return state
    return replace(state, unhandled_types=(*state.unhandled_types, event.type))


def _each_running(
    clocks: tuple[Clock, ...], *, state: str, include_paused: bool = False
) -> tuple[Clock, ...]:
    moving = {"running", "paused"} if include_paused else {"running"}
    return tuple(replace(c, state=state) if c.state in moving else c for c in clocks)


def _update_clock(clocks: tuple[Clock, ...], target: str, **changes: Any) -> tuple[Clock, ...]:
    return tuple(replace(c, **changes) if c.target == target else c for c in clocks)


def _set_deadline(
    clocks: tuple[Clock, ...],
    target: str,
    due_at: datetime,
    warn_at: datetime | None,
    calendar: str | None,
) -> tuple[Clock, ...]:
    """A moved deadline: the clock runs again towards it (a breach or warning is history)."""
    if not any(c.target == target for c in clocks):
        return (*clocks, Clock(target, None, due_at, warn_at, calendar))
    return tuple(
        replace(
            c,
            due_at=due_at,
            warn_at=warn_at,
            calendar=calendar,
            warned=False if c.state != "met" else c.warned,
            state=c.state if c.state in ("met", "paused") else "running",
        )
        if c.target == target
        else c
        for c in clocks
    )


def _remedy(remedies: tuple[Remedy, ...], remedy_id: str) -> Remedy | None:
    return next((r for r in remedies if r.remedy_id == remedy_id), None)


def _upsert_remedy(remedies: tuple[Remedy, ...], remedy: Remedy) -> tuple[Remedy, ...]:
    if _remedy(remedies, remedy.remedy_id) is None:
        return (*remedies, remedy)
    return tuple(remedy if r.remedy_id == remedy.remedy_id else r for r in remedies)


def _incident(incidents: tuple[Incident, ...], incident_id: str) -> Incident | None:
    return next((i for i in incidents if i.incident_id == incident_id), None)


def _upsert_incident(incidents: tuple[Incident, ...], incident: Incident) -> tuple[Incident, ...]:
    found = _incident(incidents, incident.incident_id)
    if found is None:
        return (*incidents, incident)
    merged = replace(found, priority=incident.priority or found.priority, state=incident.state)
    return tuple(merged if i.incident_id == incident.incident_id else i for i in incidents)
