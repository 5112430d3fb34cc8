"""The pure core of recovery: one complaint's case as a state machine.

`decide(case, command, policy=, now=)` returns the events a command causes, or raises
`CommandRejected` (nothing is appended); `evolve(case, event)` folds any event from the log into
the case. No I/O and no clock of its own: the adapters pass `now`.

`evolve` is total and tolerant: the log is the authority, so it never refuses an event. The
facts intake owns (received, withdrawn) and the case work recovery owns are kept apart, so a
replay that reads the case topic before the complaints topic still ends in the same state.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import assert_never

from redress_events import EventData
from redress_events.catalogue import (
    AgentResponded,
    CompensationIssued,
    ComplaintAcknowledged,
    ComplaintPrioritized,
    ComplaintReceived,
    ComplaintReopened,
    ComplaintResolved,
    ComplaintWithdrawn,
    CustomerReplied,
    ExternalAgentResponded,
    GuaranteeTriggered,
    InformationRequested,
    RemedyAccepted,
    RemedyDeclined,
    RemedyFulfilmentRecorded,
    RemedyProposed,
    SatisfactionRecorded,
    SlaBreached,
)
from redress_events.catalogue.recovery import FulfilmentStep, Outcome
from redress_events.values import CustomerTier, Money, Priority, RemedyType

from redress_recovery.policy import (
    MONEY_REMEDIES,
    NON_MONEY_REMEDIES,
    SEVERITY_OF_PRIORITY,
    RecoveryPolicy,
    Severity,
)


class CaseStatus(StrEnum):
    UNKNOWN = "unknown"  # no ComplaintReceived seen
    OPEN = "open"  # received, nobody has acknowledged or answered yet
    IN_PROGRESS = "in_progress"
    AWAITING_CUSTOMER = "awaiting_customer"  # information requested; SLA clock paused
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"


ACTIVE = frozenset({CaseStatus.OPEN, CaseStatus.IN_PROGRESS, CaseStatus.AWAITING_CUSTOMER})


class RemedyStatus(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    FULFILLED = "fulfilled"


# The fulfilment steps each remedy goes through, in order (return logistics first where an item
# comes back). `completed` always ends it.
FULFILMENT_STEPS: dict[RemedyType, tuple[FulfilmentStep, ...]] = {
    RemedyType.REPLACEMENT: (
        FulfilmentStep.LABEL_ISSUED,
        FulfilmentStep.ITEM_RECEIVED,
        FulfilmentStep.REPLACEMENT_SHIPPED,
    ),
    RemedyType.REPAIR: (
        FulfilmentStep.LABEL_ISSUED,
        FulfilmentStep.ITEM_RECEIVED,
        FulfilmentStep.REPLACEMENT_SHIPPED,
    ),
    RemedyType.REFUND: (
        FulfilmentStep.LABEL_ISSUED,
        FulfilmentStep.ITEM_RECEIVED,
        FulfilmentStep.REFUND_PAID,
    ),
    RemedyType.PARTIAL_REFUND: (FulfilmentStep.REFUND_PAID,),
    RemedyType.ACCOUNT_CREDIT: (FulfilmentStep.CREDIT_APPLIED,),
}


def fulfilment_steps(remedy_type: RemedyType) -> tuple[FulfilmentStep, ...]:
    return (*FULFILMENT_STEPS.get(remedy_type, ()), FulfilmentStep.COMPLETED)


@dataclass(frozen=True)
class Remedy:
    remedy_id: uuid.UUID
    remedy_type: RemedyType
    failure_type: str
    amount: Money | None
    severity: str | None
    outside_band: bool
    status: RemedyStatus = RemedyStatus.PROPOSED
    steps: tuple[FulfilmentStep, ...] = ()


@dataclass(frozen=True)
class Case:
    """What recovery knows about one complaint. Holds no personal data."""

    complaint_id: uuid.UUID
    received: bool = False
    withdrawn: bool = False
    work_status: CaseStatus = CaseStatus.OPEN
    jurisdiction: str | None = None
    category: str | None = None
    product: str | None = None
    tier: CustomerTier | None = None
    remedy_sought: RemedyType | None = None
    amount_at_stake: Money | None = None
    priority: Priority | None = None
    acknowledged: bool = False
    responded: bool = False
    remedies: tuple[Remedy, ...] = ()
    outcome: Outcome | None = None
    resolved_at: datetime | None = None
    times_resolved: int = 0
    times_reopened: int = 0
    satisfaction_score: int | None = None
    sla_breaches: frozenset[str] = frozenset()
    guarantees_triggered: frozenset[str] = frozenset()
    compensations_issued: frozenset[str] = frozenset()

    @property
    def status(self) -> CaseStatus:
        if not self.received:
            return CaseStatus.UNKNOWN
        if self.withdrawn:
            return CaseStatus.WITHDRAWN
        return self.work_status

    def remedy(self, remedy_id: uuid.UUID) -> Remedy | None:
        return next((r for r in self.remedies if r.remedy_id == remedy_id), None)

    def with_remedy(self, remedy: Remedy) -> Case:
        return replace(
            self,
            remedies=tuple(remedy if r.remedy_id == remedy.remedy_id else r for r in self.remedies),
        )


# ---------------------------------------------------------------------------------- commands


@dataclass(frozen=True, kw_only=True)
class Command:
    complaint_id: uuid.UUID
    actor: str


@dataclass(frozen=True, kw_only=True)
class Acknowledge(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class Respond(Command):
    message: str
    holding_reply: bool = False


@dataclass(frozen=True, kw_only=True)
class RequestInformation(Command):
    question: str


@dataclass(frozen=True, kw_only=True)
class RecordCustomerReply(Command):
    message: str


@dataclass(frozen=True, kw_only=True)
class ProposeRemedy(Command):
    remedy_id: uuid.UUID
    remedy_type: RemedyType
    failure_type: str
    amount: Money | None = None
    severity: Severity | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class AcceptRemedy(Command):
    remedy_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class DeclineRemedy(Command):
    remedy_id: uuid.UUID
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class RecordFulfilment(Command):
    remedy_id: uuid.UUID
    step: FulfilmentStep
    reference: str | None = None


@dataclass(frozen=True, kw_only=True)
class Resolve(Command):
    outcome: Outcome
    reason: str


@dataclass(frozen=True, kw_only=True)
class Reopen(Command):
    reason: str


@dataclass(frozen=True, kw_only=True)
class RecordSatisfaction(Command):
    score: int
    comment: str | None = None


AnyCommand = (
    Acknowledge
    | Respond
    | RequestInformation
    | RecordCustomerReply
    | ProposeRemedy
    | AcceptRemedy
    | DeclineRemedy
    | RecordFulfilment
    | Resolve
    | Reopen
    | RecordSatisfaction
)


class Rejection(StrEnum):
    NOT_FOUND = "not_found"  # 404
    CONFLICT = "illegal_transition"  # 409
    INVALID = "invalid"  # 422, with the field


class CommandRejected(Exception):
    """The command is not allowed; nothing is appended. `field` names the input at fault."""

    def __init__(self, kind: Rejection, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.field = field


def _conflict(reason: str) -> CommandRejected:
    return CommandRejected(Rejection.CONFLICT, reason)


# Which case statuses each command may act in (remedy answers and fulfilment go on after the
# final response: the customer often accepts the offer it contains).
ALLOWED_IN: dict[type[Command], frozenset[CaseStatus]] = {
    Acknowledge: frozenset({CaseStatus.OPEN}),
    Respond: ACTIVE,
    RequestInformation: frozenset({CaseStatus.OPEN, CaseStatus.IN_PROGRESS}),
    RecordCustomerReply: frozenset({CaseStatus.AWAITING_CUSTOMER}),
    ProposeRemedy: ACTIVE,
    AcceptRemedy: ACTIVE | {CaseStatus.RESOLVED},
    DeclineRemedy: ACTIVE | {CaseStatus.RESOLVED},
    RecordFulfilment: ACTIVE | {CaseStatus.RESOLVED},
    Resolve: ACTIVE,
    Reopen: frozenset({CaseStatus.RESOLVED}),
    RecordSatisfaction: frozenset({CaseStatus.RESOLVED}),
}

_WHY_NOT: dict[type[Command], str] = {
    Acknowledge: "the complaint is already acknowledged",
    Respond: "a resolved complaint must be reopened before responding",
    RequestInformation: "information can only be requested on an open case not already waiting",
    RecordCustomerReply: "no information request is outstanding",
    ProposeRemedy: "a resolved complaint must be reopened before proposing a remedy",
    AcceptRemedy: "the complaint is not open",
    DeclineRemedy: "the complaint is not open",
    RecordFulfilment: "the complaint is not open",
    Resolve: "the complaint is already resolved",
    Reopen: "only a resolved complaint can be reopened",
    RecordSatisfaction: "satisfaction is recorded after resolution",
}


# -------------------------------------------------------------------------------------- decide


def decide(
    case: Case, command: AnyCommand, *, policy: RecoveryPolicy, now: datetime
) -> list[EventData]:
    """The events `command` causes on `case`; raises CommandRejected when it is not allowed."""
    status = case.status
    if status is CaseStatus.UNKNOWN:
        raise CommandRejected(Rejection.NOT_FOUND, "unknown complaint")
    if status is CaseStatus.WITHDRAWN:
        raise _conflict("the complaint was withdrawn by the customer")
    if status not in ALLOWED_IN[type(command)]:
        raise _conflict(f"{_WHY_NOT[type(command)]} (status: {status.value})")
    cid = command.complaint_id
    match command:
        case Acknowledge():
            return [
                ComplaintAcknowledged(complaint_id=cid, actor=command.actor, acknowledged_at=now)
            ]
        case Respond():
            return [
                AgentResponded(
                    complaint_id=cid,
                    actor=command.actor,
                    message=command.message,
                    holding_reply=command.holding_reply,
                    responded_at=now,
                )
            ]
        case RequestInformation():
            return [
                InformationRequested(
                    complaint_id=cid,
                    actor=command.actor,
                    question=command.question,
                    requested_at=now,
                )
            ]
        case RecordCustomerReply():
            return [
                CustomerReplied(
                    complaint_id=cid, message=command.message, replied_at=now, actor=command.actor
                )
            ]
        case ProposeRemedy():
            return [_propose(case, command, policy=policy, now=now)]
        case AcceptRemedy():
            _remedy_in(case, command.remedy_id, RemedyStatus.PROPOSED, "accepted")
            return [
                RemedyAccepted(
                    complaint_id=cid,
                    remedy_id=command.remedy_id,
                    accepted_at=now,
                    actor=command.actor,
                )
            ]
        case DeclineRemedy():
            _remedy_in(case, command.remedy_id, RemedyStatus.PROPOSED, "declined")
            return [
                RemedyDeclined(
                    complaint_id=cid,
                    remedy_id=command.remedy_id,
                    reason=command.reason,
                    declined_at=now,
                    actor=command.actor,
                )
            ]
        case RecordFulfilment():
            return [_fulfil(case, command, now=now)]
        case Resolve():
            return [_resolve(case, command, policy=policy, now=now)]
        case Reopen():
            return [
                ComplaintReopened(
                    complaint_id=cid, reason=command.reason, reopened_at=now, actor=command.actor
                )
            ]
        case RecordSatisfaction():
            if case.satisfaction_score is not None:
                raise _conflict("satisfaction is already recorded for this resolution")
            return [
                SatisfactionRecorded(
                    complaint_id=cid,
                    score=command.score,
                    comment=command.comment,
                    recorded_at=now,
                    actor=command.actor,
                )
            ]
        case _:
            assert_never(command)


def severity_of(case: Case, named: Severity | None) -> Severity | None:
    if named is not None:
        return named
    return SEVERITY_OF_PRIORITY.get(case.priority) if case.priority else None


def _propose(
    case: Case, command: ProposeRemedy, *, policy: RecoveryPolicy, now: datetime
) -> RemedyProposed:
    if case.remedy(command.remedy_id) is not None:
        raise _conflict("this remedy id is already used on the complaint")
    if command.remedy_type in MONEY_REMEDIES and command.amount is None:
        raise CommandRejected(
            Rejection.INVALID, f"a {command.remedy_type.value} needs an amount", "amount"
        )
    if command.remedy_type in NON_MONEY_REMEDIES and command.amount is not None:
        raise CommandRejected(
            Rejection.INVALID, f"a {command.remedy_type.value} has no amount", "amount"
        )
    severity = severity_of(case, command.severity)
    band = policy.band_for(command.failure_type, severity)
    outside = band is not None and not band.allows(command.remedy_type, command.amount)
    if outside and not command.reason:
        raise CommandRejected(
            Rejection.INVALID,
            f"outside the remedy band for ({command.failure_type}, "
            f"{severity.value if severity else 'any'}): a reason is required",
            "reason",
        )
    return RemedyProposed(
        complaint_id=command.complaint_id,
        remedy_id=command.remedy_id,
        remedy_type=command.remedy_type,
        failure_type=command.failure_type,
        amount=command.amount,
        severity=severity.value if severity else None,
        outside_band=outside,
        band_reason=command.reason if outside else None,
        remedy_sought=case.remedy_sought,
        actor=command.actor,
        proposed_at=now,
    )


def _remedy_in(case: Case, remedy_id: uuid.UUID, expected: RemedyStatus, verb: str) -> Remedy:
    remedy = case.remedy(remedy_id)
    if remedy is None:
        raise CommandRejected(Rejection.NOT_FOUND, "unknown remedy")
    if remedy.status is not expected:
        raise _conflict(f"a remedy that is {remedy.status.value} cannot be {verb}")
    return remedy


def _fulfil(case: Case, command: RecordFulfilment, *, now: datetime) -> RemedyFulfilmentRecorded:
    remedy = case.remedy(command.remedy_id)
    if remedy is None:
        raise CommandRejected(Rejection.NOT_FOUND, "unknown remedy")
    if remedy.status is not RemedyStatus.ACCEPTED:
        raise _conflict(f"a remedy that is {remedy.status.value} cannot be fulfilled")
    steps = fulfilment_steps(remedy.remedy_type)
    if command.step not in steps:
        raise _conflict(
            f"{command.step.value} is not a step of a {remedy.remedy_type.value} "
            f"(steps: {', '.join(s.value for s in steps)})"
        )
    done = max((steps.index(s) for s in remedy.steps), default=-1)
    if steps.index(command.step) <= done:
        raise _conflict(f"{command.step.value} comes before a step already recorded")
    return RemedyFulfilmentRecorded(
        complaint_id=command.complaint_id,
        remedy_id=command.remedy_id,
        step=command.step,
        reference=command.reference,
        recorded_at=now,
        remedy_type=remedy.remedy_type,
        actor=command.actor,
    )


def add_months(moment: datetime, months: int) -> datetime:
    """Same day `months` later, clamped to the month's last day (31 Aug + 6 → 28/29 Feb)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def _resolve(
    case: Case, command: Resolve, *, policy: RecoveryPolicy, now: datetime
) -> ComplaintResolved:
    rule = policy.jurisdictions.get(case.jurisdiction or "")
    return ComplaintResolved(
        complaint_id=command.complaint_id,
        outcome=command.outcome,
        reason=command.reason,
        actor=command.actor,
        ombudsman=rule.ombudsman if rule else None,
        referral_deadline=add_months(now, rule.referral_window_months) if rule else None,
        resolved_at=now,
        remedy_sought=case.remedy_sought,
        remedies_offered=tuple(r.remedy_type for r in case.remedies),
        remedies_given=tuple(
            r.remedy_type
            for r in case.remedies
            if r.status in (RemedyStatus.ACCEPTED, RemedyStatus.FULFILLED)
        ),
    )


# -------------------------------------------------------------------------------------- evolve


def _started(case: Case) -> Case:
    """Someone from the company has engaged: an open case is now in progress."""
    status = CaseStatus.IN_PROGRESS if case.work_status is CaseStatus.OPEN else case.work_status
    return replace(case, acknowledged=True, work_status=status)


def evolve(case: Case, event: EventData) -> Case:
    """Fold one event from the log into the case. Unknown event types leave it unchanged."""
    match event:
        case ComplaintReceived():
            return replace(
                case,
                received=True,
                jurisdiction=event.jurisdiction,
                category=event.category,
                product=event.product,
                tier=event.customer.tier,
                remedy_sought=event.remedy_sought,
                amount_at_stake=event.amount_at_stake,
            )
        case ComplaintWithdrawn():
            return replace(case, withdrawn=True)
        case ComplaintPrioritized():
            return replace(case, priority=event.priority)
        case SlaBreached():
            return replace(case, sla_breaches=case.sla_breaches | {event.target.value})
        case ComplaintAcknowledged() | ExternalAgentResponded():
            return _started(case)
        case AgentResponded():
            return replace(_started(case), responded=True)
        case InformationRequested():
            return replace(_started(case), work_status=CaseStatus.AWAITING_CUSTOMER)
        case CustomerReplied():
            if case.work_status is CaseStatus.AWAITING_CUSTOMER:
                return replace(case, work_status=CaseStatus.IN_PROGRESS)
            return case
        case RemedyProposed():
            if case.remedy(event.remedy_id) is not None:
                return case
            proposed = Remedy(
                remedy_id=event.remedy_id,
                remedy_type=event.remedy_type,
                failure_type=event.failure_type,
                amount=event.amount,
                severity=event.severity,
                outside_band=event.outside_band,
            )
            return replace(case, remedies=(*case.remedies, proposed))
        case RemedyAccepted():
            return _set_remedy_status(case, event.remedy_id, RemedyStatus.ACCEPTED)
        case RemedyDeclined():
            return _set_remedy_status(case, event.remedy_id, RemedyStatus.DECLINED)
        case RemedyFulfilmentRecorded():
            remedy = case.remedy(event.remedy_id)
            if remedy is None:
                return case
            status = (
                RemedyStatus.FULFILLED if event.step is FulfilmentStep.COMPLETED else remedy.status
            )
            return case.with_remedy(
                replace(remedy, steps=(*remedy.steps, event.step), status=status)
            )
        case ComplaintResolved():
            return replace(
                case,
                work_status=CaseStatus.RESOLVED,
                outcome=event.outcome,
                resolved_at=event.resolved_at,
                times_resolved=case.times_resolved + 1,
                satisfaction_score=None,
            )
        case ComplaintReopened():
            return replace(
                case,
                work_status=CaseStatus.IN_PROGRESS,
                outcome=None,
                times_reopened=case.times_reopened + 1,
                # The score was about the outcome now disputed; the next resolution gets its own.
                satisfaction_score=None,
            )
        case SatisfactionRecorded():
            return replace(case, satisfaction_score=event.score)
        case GuaranteeTriggered():
            return replace(
                case, guarantees_triggered=case.guarantees_triggered | {event.guarantee_id}
            )
        case CompensationIssued():
            return replace(
                case, compensations_issued=case.compensations_issued | {event.guarantee_id}
            )
    return case


def _set_remedy_status(case: Case, remedy_id: uuid.UUID, status: RemedyStatus) -> Case:
    remedy = case.remedy(remedy_id)
    if remedy is None:
        return case
    return case.with_remedy(replace(remedy, status=status))
