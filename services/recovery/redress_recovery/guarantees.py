"""Pure: which service guarantees an event triggers for a case, and what each one pays.

Exactly once per (complaint, guarantee): a guarantee whose compensation is in the case never
fires again, and the events' ids are derived from (complaint id, guarantee id) only, so
even a decision repeated after a crash yields the same two events, which consumers drop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from redress_events import EventData, derived_event_id
from redress_events.catalogue import (
    CompensationIssued,
    GuaranteeTriggered,
    SatisfactionRecorded,
    SlaBreached,
)
from redress_events.values import Money

from redress_recovery.domain import Case, CaseStatus
from redress_recovery.policy import (
    Guarantee,
    RecoveryPolicy,
    SatisfactionTrigger,
    SlaBreachTrigger,
)

TRIGGER_EVENTS = (SlaBreached, SatisfactionRecorded)


def triggered_event_id(complaint_id: uuid.UUID, guarantee_id: str) -> uuid.UUID:
    return derived_event_id(complaint_id, "guarantee", guarantee_id, "triggered")


def compensation_event_id(complaint_id: uuid.UUID, guarantee_id: str) -> uuid.UUID:
    return derived_event_id(complaint_id, "guarantee", guarantee_id, "compensation")


@dataclass(frozen=True)
class GuaranteePayout:
    """What to append for one guarantee. `triggered` is None when an earlier attempt appended
    GuaranteeTriggered but not the compensation (the append failed half-way): the redelivered
    trigger then completes the payout instead of being taken as already paid."""

    guarantee: Guarantee
    triggered: GuaranteeTriggered | None
    compensation: CompensationIssued

    @property
    def events(self) -> tuple[tuple[uuid.UUID, EventData], ...]:
        cid = self.compensation.complaint_id
        gid = self.guarantee.id
        compensation = (compensation_event_id(cid, gid), self.compensation)
        if self.triggered is None:
            return (compensation,)
        return ((triggered_event_id(cid, gid), self.triggered), compensation)


def _eligible(case: Case, guarantee: Guarantee) -> bool:
    rule = guarantee.applies_to
    return (
        (not rule.tiers or case.tier in rule.tiers)
        and (not rule.jurisdictions or case.jurisdiction in rule.jurisdictions)
        and (not rule.categories or case.category in rule.categories)
    )


def _describe(guarantee: Guarantee, event: EventData) -> str | None:
    """The trigger as text when `event` triggers `guarantee`, else None."""
    trigger = guarantee.trigger
    match trigger, event:
        case SlaBreachTrigger(), SlaBreached():
            if event.target != trigger.target:
                return None
            if trigger.policy_ids and event.policy_id not in trigger.policy_ids:
                return None
            return f"sla_breached:{event.target.value}"
        case SatisfactionTrigger(), SatisfactionRecorded():
            return f"satisfaction_score:{event.score}"
    return None


def _happened_at(event: EventData) -> datetime | None:
    if isinstance(event, SlaBreached):
        return event.breached_at
    if isinstance(event, SatisfactionRecorded):
        return event.recorded_at
    return None


def _in_force(guarantee: Guarantee, event: EventData) -> bool:
    happened = _happened_at(event)
    return guarantee.effective_from is None or (
        happened is not None and happened >= guarantee.effective_from
    )


def _satisfaction_window_holds(case: Case, trigger: SatisfactionTrigger, event: EventData) -> bool:
    if not isinstance(event, SatisfactionRecorded) or event.score > trigger.score:
        return False
    if case.resolved_at is None:
        return False
    return event.recorded_at - case.resolved_at <= timedelta(days=trigger.within_days)


def _amount(case: Case, guarantee: Guarantee) -> Money | None:
    compensation = guarantee.compensation
    if compensation.amount_from == "amount_at_stake" and case.amount_at_stake is not None:
        return case.amount_at_stake
    return compensation.amount


def decide_guarantees(
    case: Case,
    event: EventData,
    *,
    trigger_event_id: uuid.UUID,
    policy: RecoveryPolicy,
    now: datetime,
) -> list[GuaranteePayout]:
    """Every guarantee `event` triggers on `case` that has not fired for it before."""
    if case.status is CaseStatus.UNKNOWN:
        return []
    payouts: list[GuaranteePayout] = []
    for guarantee in policy.guarantees:
        if guarantee.id in case.compensations_issued or not _eligible(case, guarantee):
            continue
        if not _in_force(guarantee, event):
            continue
        description = _describe(guarantee, event)
        if description is None:
            continue
        trigger = guarantee.trigger
        if isinstance(trigger, SatisfactionTrigger) and not _satisfaction_window_holds(
            case, trigger, event
        ):
            continue
        payouts.append(
            GuaranteePayout(
                guarantee=guarantee,
                triggered=None
                if guarantee.id in case.guarantees_triggered
                else GuaranteeTriggered(
                    complaint_id=case.complaint_id,
                    guarantee_id=guarantee.id,
                    guarantee_version=policy.version,
                    trigger_event_id=trigger_event_id,
                    trigger=description,
                    triggered_at=now,
                ),
                compensation=CompensationIssued(
                    complaint_id=case.complaint_id,
                    guarantee_id=guarantee.id,
                    compensation_type=guarantee.compensation.type,
                    amount=_amount(case, guarantee),
                    issued_at=now,
                    guarantee_version=policy.version,
                ),
            )
        )
    return payouts
