"""Pure projection of events into the read models: no I/O, so replaying the log gives exactly
what live processing gave.

Topics are ordered per partition only: a complaint's intake, routing and case events may be
applied in any interleaving. So every field is a fact that commutes: a "latest" value is chosen by
the event's own time (not by the order of application), a "first" value is a minimum, a count is
a count of distinct events, and the status is derived from the facts, never set by transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from redress_events import Envelope, EventData, TopicName
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

# Fulfilment steps after which a remedy counts as given (not only offered).
GIVEN_STEPS = frozenset(
    {"completed", "refund_paid", "credit_applied", "replacement_shipped"},
)
# Fields of event data that are personal: kept apart from the timeline's summary.
PERSONAL_FIELDS = frozenset(
    {"customer", "description", "message", "question", "comment", "name", "email", "phone"}
)


_T = TypeVar("_T")
_FIELD_NAMES: dict[type, frozenset[str]] = {}


def replace(obj: _T, /, **changes: Any) -> _T:
    """`dataclasses.replace` for the projection's frozen views, without its cost (it rebuilds
    every field through `__init__`; views have up to 60 fields and change a few per event).
    Same result: a new object, the old one untouched. Unknown field names are refused."""
    cls = type(obj)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))  # type: ignore[arg-type]
    if not names.issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(set(changes) - names)}")
    new = object.__new__(cls)
    state = new.__dict__
    state.update(obj.__dict__)
    state.update(changes)
    return new


def cents(money: Money | None) -> int | None:
    """Money as whole minor units (Money has at most 2 decimal places): exact on every backend."""
    return None if money is None else int(money.amount * 100)


def from_cents(value: int | None) -> Decimal | None:
    return None if value is None else (Decimal(value) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class SlaClock:
    """One SLA target of one complaint: its deadline and what became of it."""

    target: str
    policy_id: str | None = None
    policy_version: str | None = None
    calendar: str | None = None
    due_at: datetime | None = None
    warn_at: datetime | None = None
    deadline_set_at: datetime | None = None  # event time of the deadline in force (latest wins)
    extensions: int = 0
    warned_at: datetime | None = None
    met_at: datetime | None = None
    elapsed_seconds: float | None = None
    breached_at: datetime | None = None

    @property
    def state(self) -> str:
        if self.breached_at is not None:
            return "breached"
        if self.met_at is not None:
            return "met"
        return "warned" if self.warned_at is not None else "running"


@dataclass(frozen=True)
class RemedyView:
    """A remedy offered, and whether it was accepted, declined and given."""

    remedy_id: str
    remedy_type: str | None = None
    failure_type: str | None = None
    severity: str | None = None
    amount_cents: int | None = None
    currency: str | None = None
    outside_band: bool = False
    band_reason: str | None = None
    remedy_sought: str | None = None
    proposed_by: str | None = None
    proposed_at: datetime | None = None
    accepted_at: datetime | None = None
    declined_at: datetime | None = None
    decline_reason: str | None = None
    given_at: datetime | None = None
    last_step: str | None = None
    last_step_at: datetime | None = None

    @property
    def status(self) -> str:
        if self.given_at is not None:
            return "given"
        if self.declined_at is not None:
            return "declined"
        if self.accepted_at is not None:
            return "accepted"
        return "proposed" if self.proposed_at is not None else "unknown"


@dataclass(frozen=True)
class GuaranteeView:
    guarantee_id: str
    guarantee_version: str | None = None
    trigger: str | None = None
    trigger_event_id: str | None = None
    triggered_at: datetime | None = None
    compensation_type: str | None = None
    amount_cents: int | None = None
    currency: str | None = None
    issued_at: datetime | None = None


@dataclass(frozen=True)
class ComplaintView:
    complaint_id: str
    status: str = "unknown"
    priority: str | None = None
    priority_rules: tuple[str, ...] = ()
    priority_set_at: datetime | None = None
    queue: str | None = None
    queue_set_at: datetime | None = None
    customer_id: str | None = None
    tier: str | None = None
    channel: str | None = None
    public: bool = False
    category: str | None = None
    product: str | None = None
    jurisdiction: str | None = None
    remedy_sought: str | None = None
    amount_at_stake_cents: int | None = None
    amount_at_stake_currency: str | None = None
    external_reference: str | None = None
    # Personal data: stored, returned only to callers holding pii:read.
    customer_name: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    customer_vulnerable: bool = False
    description: str | None = None
    # Lifecycle facts.
    received_at: datetime | None = None
    first_seen_at: datetime | None = None
    updated_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    first_response_at: datetime | None = None
    last_response_at: datetime | None = None
    responses: int = 0
    info_requested_at: datetime | None = None
    customer_replied_at: datetime | None = None
    customer_messages: int = 0
    clock_paused_at: datetime | None = None
    clock_resumed_at: datetime | None = None
    first_resolved_at: datetime | None = None
    resolved_at: datetime | None = None
    outcome: str | None = None
    resolved_by: str | None = None
    ombudsman: str | None = None
    referral_deadline: datetime | None = None
    reopen_count: int = 0
    reopened_at: datetime | None = None
    withdrawn_at: datetime | None = None
    satisfaction_score: int | None = None
    satisfaction_at: datetime | None = None
    escalation_tier: str | None = None
    escalation_set_at: datetime | None = None
    escalations: int = 0
    escalation_peak: str | None = None  # the highest tier it ever reached
    incident_id: str | None = None
    incident_priority: str | None = None
    breached: bool = False
    sla: tuple[SlaClock, ...] = ()
    remedies: tuple[RemedyView, ...] = ()
    guarantees: tuple[GuaranteeView, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IncidentView:
    incident_id: str
    product: str | None = None
    category: str | None = None
    priority: str | None = None
    window_seconds: int | None = None
    count: int | None = None
    baseline: float | None = None
    factor: float | None = None
    detected_at: datetime | None = None
    detection_reason: str | None = None
    resolved_at: datetime | None = None
    resolution_reason: str | None = None
    complaints_linked: int | None = None

    @property
    def status(self) -> str:
        return "resolved" if self.resolved_at is not None else "open"


@dataclass(frozen=True)
class TimelineEntry:
    event_id: str
    complaint_id: str
    type: str
    time: datetime
    source: str
    causation_id: str | None
    actor: str
    rule: str | None
    reason: str | None
    summary: dict[str, Any]
    personal: dict[str, Any]


def is_incident_event(event: Envelope[EventData]) -> bool:
    return event.data.topic == TopicName.INCIDENTS


def timeline_entry(event: Envelope[EventData]) -> TimelineEntry:
    return TimelineEntry(**timeline_fields(event))


def timeline_fields(event: Envelope[EventData], event_id: str | None = None) -> dict[str, Any]:
    """`timeline_entry(event)`'s fields as a new dict, in the entry's order (what the store
    writes, without building the frozen entry); `event_id`: `str(event.id)`, where the caller
    has it already."""
    data = event.data
    summary, private = _split(data)
    return {
        "event_id": str(event.id) if event_id is None else event_id,
        "complaint_id": event.subject,
        "type": event.type,
        "time": event.time,
        "source": event.source,
        "causation_id": str(event.causation_id) if event.causation_id else None,
        "actor": actor_of(event),
        "rule": rule_of(data),
        "reason": _field(data, "reason"),
        "summary": summary,
        "personal": private,
    }


_MODEL_FIELDS: dict[type, frozenset[str]] = {}


def _field(data: EventData, name: str) -> Any:
    """`getattr(data, name, None)`, without pydantic's slow path for a missing attribute (nor
    its `model_fields` accessor, slow on a class too)."""
    cls = type(data)
    names = _MODEL_FIELDS.get(cls)
    if names is None:
        names = _MODEL_FIELDS[cls] = frozenset(cls.model_fields)
    return getattr(data, name) if name in names else None


def _split(data: EventData) -> tuple[dict[str, Any], dict[str, Any]]:
    """`summarize(data), personal(data)` from one dump of the data."""
    dumped = data.model_dump(mode="json")
    private: dict[str, Any] = {}
    for name in [name for name in dumped if name in PERSONAL_FIELDS]:  # in the data's order
        value = dumped.pop(name)
        if value is not None:
            private[name] = value
    dumped.pop("complaint_id", None)
    return dumped, private


def summarize(data: EventData) -> dict[str, Any]:
    """What the timeline shows of an event: its decision and the reason, never personal data."""
    dumped = data.model_dump(mode="json", exclude=set(PERSONAL_FIELDS))
    dumped.pop("complaint_id", None)
    return dumped


def personal(data: EventData) -> dict[str, Any]:
    """The personal part of an event (shown only to callers holding pii:read)."""
    dumped = data.model_dump(mode="json", include=set(PERSONAL_FIELDS))
    return {k: v for k, v in dumped.items() if v is not None}


def actor_of(event: Envelope[EventData]) -> str:
    """Who or what caused the event: a named person, else the writing service."""
    data = event.data
    for attribute in ("actor", "agent"):
        value = _field(data, attribute)
        if value:
            return str(value)
    if isinstance(data, ComplaintReceived | CustomerMessageReceived | CustomerReplied):
        return "customer"
    if isinstance(data, SatisfactionRecorded | ComplaintWithdrawn | ComplaintReopened):
        return "customer"
    return event.source


# Event classes no case of `rule_of` matches (most of them): known after their first event,
# then answered without trying each case in turn.
_RULELESS: set[type] = set()


def rule_of(data: EventData) -> str | None:
    """The rule or policy behind a decision, as `id@version` where versions are known."""
    if type(data) in _RULELESS:
        return None
    match data:
        case ComplaintPrioritized() | ComplaintAssigned():
            return f"{','.join(data.matched_rules)}@{data.rules_version}"
        case SlaClockStarted():
            return f"{data.policy_id}@{data.policy_version}"
        case SlaWarning() | SlaBreached() | SlaMet() | SlaDeadlineExtended():
            return data.policy_id
        case ComplaintEscalated() | ComplaintDeescalated():
            return data.policy_rule
        case ComplaintLinkedToIncident():
            return data.policy_rule
        case GuaranteeTriggered():
            return f"{data.guarantee_id}@{data.guarantee_version}"
        case CompensationIssued():
            return data.guarantee_id
        case RemedyProposed():
            return f"band:{data.failure_type}/{data.severity or '-'}" + (
                ":outside" if data.outside_band else ""
            )
    _RULELESS.add(type(data))  # every case returns: none matches this class
    return None


def project_incident(view: IncidentView | None, event: Envelope[EventData]) -> IncidentView | None:
    """The incident row after `event`; None when the event is not about an incident."""
    data = event.data
    current = view or IncidentView(incident_id=event.subject)
    match data:
        case IncidentDetected():
            return replace(
                current,
                product=data.product,
                category=data.category,
                priority=data.priority.value,
                window_seconds=data.window_seconds,
                count=data.count,
                baseline=data.baseline,
                factor=data.factor,
                detected_at=data.detected_at,
                detection_reason=data.reason,
            )
        case IncidentResolved():
            return replace(
                current,
                product=current.product or data.product,
                category=current.category or data.category,
                resolved_at=data.resolved_at,
                resolution_reason=data.reason,
                complaints_linked=data.complaints_linked,
            )
    return None


def project(view: ComplaintView | None, event: Envelope[EventData]) -> ComplaintView | None:
    """The complaint row after `event`; None when the event does not concern a complaint row."""
    if is_incident_event(event):
        return None
    return project_complaint(view, event)


def project_complaint(view: ComplaintView | None, event: Envelope[EventData]) -> ComplaintView:
    """`project`, for an event known not to be an incident's."""
    base = view or ComplaintView(complaint_id=event.subject)
    current = _apply(base, event)
    derived = {
        "updated_at": latest(current.updated_at, event.time),
        "first_seen_at": earliest(current.first_seen_at, event.time),
        "status": derive_status(current),
        "breached": _any_breach(current),
    }
    if current is base:
        return replace(current, **derived)
    # A view `_apply` has just made, nobody else holds it yet: finished in place rather than
    # copied once more (a copy of some 60 fields per event).
    current.__dict__.update(derived)
    return current


def _apply(current: ComplaintView, event: Envelope[EventData]) -> ComplaintView:
    data = event.data
    match data:
        case ComplaintReceived():
            customer = data.customer
            return replace(
                current,
                customer_id=customer.id,
                tier=customer.tier.value,
                customer_name=customer.name,
                customer_email=str(customer.email) if customer.email else None,
                customer_phone=customer.phone,
                customer_vulnerable=customer.vulnerable,
                description=data.description,
                channel=data.channel.value,
                public=data.public,
                category=data.category,
                product=data.product,
                jurisdiction=data.jurisdiction,
                remedy_sought=data.remedy_sought.value if data.remedy_sought else None,
                amount_at_stake_cents=cents(data.amount_at_stake),
                amount_at_stake_currency=(
                    data.amount_at_stake.currency if data.amount_at_stake else None
                ),
                external_reference=data.external_reference,
                received_at=data.received_at,
            )
        case ComplaintPrioritized():
            if not is_newer(event.time, current.priority_set_at):
                return current
            return replace(
                current,
                priority=data.priority.value,
                priority_rules=tuple(data.matched_rules),
                priority_set_at=event.time,
                category=current.category or data.category,
                product=current.product or data.product,
                jurisdiction=current.jurisdiction or data.jurisdiction,
            )
        case ComplaintAssigned():
            if not is_newer(event.time, current.queue_set_at):
                return current
            return replace(current, queue=data.queue, queue_set_at=event.time)
        case ComplaintWithdrawn():
            return replace(current, withdrawn_at=latest(current.withdrawn_at, data.withdrawn_at))
        case CustomerMessageReceived():
            return replace(current, customer_messages=current.customer_messages + 1)
        case ExternalAgentResponded():
            return _responded(current, data.responded_at)
        case ComplaintAcknowledged():
            if current.acknowledged_at is not None and current.acknowledged_at <= (
                data.acknowledged_at
            ):
                return current
            return replace(
                current, acknowledged_at=data.acknowledged_at, acknowledged_by=data.actor
            )
        case AgentResponded():
            return _responded(current, data.responded_at)
        case InformationRequested():
            return replace(
                current, info_requested_at=latest(current.info_requested_at, data.requested_at)
            )
        case CustomerReplied():
            return replace(
                current,
                customer_replied_at=latest(current.customer_replied_at, data.replied_at),
                customer_messages=current.customer_messages + 1,
            )
        case RemedyProposed():
            return _remedy(
                current,
                RemedyView(
                    remedy_id=str(data.remedy_id),
                    remedy_type=data.remedy_type.value,
                    failure_type=data.failure_type,
                    severity=data.severity,
                    amount_cents=cents(data.amount),
                    currency=data.amount.currency if data.amount else None,
                    outside_band=data.outside_band,
                    band_reason=data.band_reason,
                    remedy_sought=(
                        data.remedy_sought.value if data.remedy_sought else current.remedy_sought
                    ),
                    proposed_by=data.actor,
                    proposed_at=data.proposed_at,
                ),
                merge=True,
            )
        case RemedyAccepted():
            found = _find_remedy(current, str(data.remedy_id))
            return _remedy(
                current, replace(found, accepted_at=earliest(found.accepted_at, data.accepted_at))
            )
        case RemedyDeclined():
            found = _find_remedy(current, str(data.remedy_id))
            return _remedy(
                current,
                replace(
                    found,
                    declined_at=earliest(found.declined_at, data.declined_at),
                    decline_reason=data.reason,
                ),
            )
        case RemedyFulfilmentRecorded():
            found = _find_remedy(current, str(data.remedy_id))
            if found.remedy_type is None and data.remedy_type is not None:
                found = replace(found, remedy_type=data.remedy_type.value)
            step = data.step.value
            if is_newer(data.recorded_at, found.last_step_at):
                found = replace(found, last_step=step, last_step_at=data.recorded_at)
            if step in GIVEN_STEPS:
                found = replace(found, given_at=earliest(found.given_at, data.recorded_at))
            return _remedy(current, found)
        case ComplaintResolved():
            newer = is_newer(data.resolved_at, current.resolved_at)
            sought = data.remedy_sought.value if data.remedy_sought else None
            return replace(
                current,
                remedy_sought=current.remedy_sought or sought,
                first_resolved_at=earliest(current.first_resolved_at, data.resolved_at),
                resolved_at=data.resolved_at if newer else current.resolved_at,
                outcome=data.outcome.value if newer else current.outcome,
                resolved_by=data.actor if newer else current.resolved_by,
                ombudsman=data.ombudsman if newer else current.ombudsman,
                referral_deadline=data.referral_deadline if newer else current.referral_deadline,
            )
        case ComplaintReopened():
            return replace(
                current,
                reopen_count=current.reopen_count + 1,
                reopened_at=latest(current.reopened_at, data.reopened_at),
            )
        case SatisfactionRecorded():
            if not is_newer(data.recorded_at, current.satisfaction_at):
                return current
            return replace(current, satisfaction_score=data.score, satisfaction_at=data.recorded_at)
        case GuaranteeTriggered():
            found_g = _find_guarantee(current, data.guarantee_id)
            return _guarantee(
                current,
                replace(
                    found_g,
                    guarantee_version=data.guarantee_version,
                    trigger=data.trigger,
                    trigger_event_id=str(data.trigger_event_id),
                    triggered_at=data.triggered_at,
                ),
            )
        case CompensationIssued():
            found_g = _find_guarantee(current, data.guarantee_id)
            return _guarantee(
                current,
                replace(
                    found_g,
                    compensation_type=data.compensation_type.value,
                    amount_cents=cents(data.amount),
                    currency=data.amount.currency if data.amount else None,
                    issued_at=data.issued_at,
                ),
            )
        case SlaClockStarted():
            for deadline in data.deadlines:
                current = _set_deadline(
                    current, deadline, event.time, data.policy_id, data.policy_version
                )
            return current
        case SlaClockPaused():
            return replace(current, clock_paused_at=latest(current.clock_paused_at, data.paused_at))
        case SlaClockResumed():
            current = replace(
                current, clock_resumed_at=latest(current.clock_resumed_at, data.resumed_at)
            )
            for deadline in data.deadlines:
                current = _set_deadline(current, deadline, event.time, None, None)
            return current
        case SlaDeadlineExtended():
            current = _set_deadline(current, data.deadline, event.time, data.policy_id, None)
            clock = _find_clock(current, data.target.value)
            return _clock(current, replace(clock, extensions=clock.extensions + 1))
        case SlaWarning():
            clock = _find_clock(current, data.target.value)
            return _clock(
                current,
                replace(
                    clock,
                    policy_id=clock.policy_id or data.policy_id,
                    warned_at=earliest(clock.warned_at, event.time),
                ),
            )
        case SlaBreached():
            clock = _find_clock(current, data.target.value)
            return _clock(
                current,
                replace(
                    clock,
                    policy_id=clock.policy_id or data.policy_id,
                    due_at=clock.due_at or data.due_at,
                    breached_at=earliest(clock.breached_at, data.breached_at),
                ),
            )
        case SlaMet():
            clock = _find_clock(current, data.target.value)
            first = clock.met_at is None or data.met_at < clock.met_at
            return _clock(
                current,
                replace(
                    clock,
                    policy_id=clock.policy_id or data.policy_id,
                    due_at=clock.due_at or data.due_at,
                    met_at=data.met_at if first else clock.met_at,
                    elapsed_seconds=data.elapsed_seconds if first else clock.elapsed_seconds,
                ),
            )
        case ComplaintEscalated() | ComplaintDeescalated():
            escalated = isinstance(data, ComplaintEscalated)
            escalations = current.escalations + (1 if escalated else 0)
            peak = current.escalation_peak
            if escalated and tier_rank(data.tier.value) > tier_rank(peak):
                peak = data.tier.value
            if not is_newer(event.time, current.escalation_set_at):
                return replace(current, escalations=escalations, escalation_peak=peak)
            return replace(
                current,
                escalation_tier=data.tier.value,
                escalation_set_at=event.time,
                escalations=escalations,
                escalation_peak=peak,
            )
        case ComplaintLinkedToIncident():
            return replace(
                current,
                incident_id=str(data.incident_id),
                incident_priority=data.priority.value if data.priority else None,
            )
    return current


ESCALATION_TIERS = ("agent", "team_lead", "manager", "executive")


def tier_rank(tier: str | None) -> int:
    """0 for none; unknown tiers (a newer producer) rank above the known ones."""
    if tier is None:
        return 0
    return (
        ESCALATION_TIERS.index(tier) + 1 if tier in ESCALATION_TIERS else len(ESCALATION_TIERS) + 1
    )


def derive_status(view: ComplaintView) -> str:
    """The status follows from the facts, whatever order they arrived in."""
    if view.withdrawn_at is not None:
        return "withdrawn"
    if view.resolved_at is not None and (
        view.reopened_at is None or view.resolved_at >= view.reopened_at
    ):
        return "resolved"
    if view.info_requested_at is not None and (
        view.customer_replied_at is None or view.customer_replied_at < view.info_requested_at
    ):
        return "awaiting_customer"
    if view.reopened_at is not None:
        return "reopened"
    if view.acknowledged_at is not None or view.first_response_at is not None:
        return "in_progress"
    if view.priority is not None:
        return "open"
    if view.received_at is not None:
        return "received"
    return "unknown"


def _any_breach(view: ComplaintView) -> bool:
    return any(clock.breached_at is not None for clock in view.sla)


def _responded(current: ComplaintView, at: datetime) -> ComplaintView:
    return replace(
        current,
        first_response_at=earliest(current.first_response_at, at),
        last_response_at=latest(current.last_response_at, at),
        responses=current.responses + 1,
    )


def _find_remedy(view: ComplaintView, remedy_id: str) -> RemedyView:
    for remedy in view.remedies:
        if remedy.remedy_id == remedy_id:
            return remedy
    return RemedyView(remedy_id=remedy_id)


def _remedy(view: ComplaintView, remedy: RemedyView, *, merge: bool = False) -> ComplaintView:
    """Put `remedy` in place; `merge` keeps the outcome facts already known for it."""
    if merge:
        known = _find_remedy(view, remedy.remedy_id)
        remedy = replace(
            remedy,
            accepted_at=known.accepted_at,
            declined_at=known.declined_at,
            decline_reason=known.decline_reason,
            given_at=known.given_at,
            last_step=known.last_step,
            last_step_at=known.last_step_at,
        )
    others = [r for r in view.remedies if r.remedy_id != remedy.remedy_id]
    return replace(view, remedies=tuple(sorted([*others, remedy], key=lambda r: r.remedy_id)))


def _find_guarantee(view: ComplaintView, guarantee_id: str) -> GuaranteeView:
    for guarantee in view.guarantees:
        if guarantee.guarantee_id == guarantee_id:
            return guarantee
    return GuaranteeView(guarantee_id=guarantee_id)


def _guarantee(view: ComplaintView, guarantee: GuaranteeView) -> ComplaintView:
    others = [g for g in view.guarantees if g.guarantee_id != guarantee.guarantee_id]
    return replace(
        view, guarantees=tuple(sorted([*others, guarantee], key=lambda g: g.guarantee_id))
    )


def _find_clock(view: ComplaintView, target: str) -> SlaClock:
    for clock in view.sla:
        if clock.target == target:
            return clock
    return SlaClock(target=target)


def _clock(view: ComplaintView, clock: SlaClock) -> ComplaintView:
    others = [c for c in view.sla if c.target != clock.target]
    return replace(view, sla=tuple(sorted([*others, clock], key=lambda c: c.target)))


def _set_deadline(
    view: ComplaintView,
    deadline: SlaDeadline,
    at: datetime,
    policy_id: str | None,
    policy_version: str | None,
) -> ComplaintView:
    clock = _find_clock(view, deadline.target.value)
    clock = replace(
        clock,
        policy_id=policy_id or clock.policy_id,
        policy_version=policy_version or clock.policy_version,
    )
    if is_newer(at, clock.deadline_set_at):
        clock = replace(
            clock,
            due_at=deadline.due_at,
            warn_at=deadline.warn_at,
            calendar=deadline.calendar,
            deadline_set_at=at,
        )
    return _clock(view, clock)


def is_newer(candidate: datetime, current: datetime | None) -> bool:
    """Latest-wins by time. Ties keep what is there: events of one writer about one complaint
    share a partition, so their order is the same in every replay."""
    return current is None or candidate > current


def latest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def max_time(a: datetime | None, b: datetime) -> datetime:
    return latest(a, b)
