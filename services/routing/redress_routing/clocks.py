"""SLA clocks of one complaint as a pure state machine.

Every transition takes the current state and one fact, and returns the new state plus the
events to publish, each with a deterministic id, so that replaying the same facts gives the same
events with the same ids. Nothing here reads a clock: times come from the facts, and the worker's
timer passes `now` to `due_signals`.

Warnings and breaches are decided by the timer but *applied* when the worker reads its own
SlaWarning / SlaBreached back from the routing topic (faust tables can only change inside a
stream), so the event log is the single record of what the clock did.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from redress_events import EventData, derived_event_id
from redress_events.catalogue.routing import (
    ComplaintDeescalated,
    ComplaintEscalated,
    ComplaintPrioritized,
    EscalationTier,
    SlaBreached,
    SlaClockPaused,
    SlaClockResumed,
    SlaClockStarted,
    SlaDeadline,
    SlaDeadlineExtended,
    SlaMet,
    SlaTarget,
    SlaWarning,
)
from redress_events.values import Priority

from redress_routing.calendars import ALWAYS_OPEN, Calendar
from redress_routing.config import Duration, RegulatoryTemplate, RoutingPolicy, SlaPolicy
from redress_routing.escalation import Lift, Signal, TierChange, escalate, lift

RECENT_INPUTS_KEPT = 64


class TargetClock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: SlaTarget
    calendar: str
    started_at: datetime
    due_at: datetime
    warn_at: datetime
    pausable: bool
    generation: int = 0
    open: bool = True
    warned: bool = False
    breached: bool = False
    paused_business_seconds: float = 0.0

    def deadline(self) -> SlaDeadline:
        return SlaDeadline(
            target=self.target, due_at=self.due_at, warn_at=self.warn_at, calendar=self.calendar
        )


Fact = Literal["acknowledged", "responded", "holding_reply", "resolved", "withdrawn"]


class EarlyFact(BaseModel):
    """A case event that arrived before the complaint was prioritized (topics are not ordered
    with each other); applied the moment the clock starts."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["acknowledged", "responded", "resolved", "withdrawn", "paused", "resumed"]
    at: datetime
    event_id: str
    holding_reply: bool = False


class ComplaintClock(BaseModel):
    """Everything routing remembers about one complaint's deadlines and escalation."""

    model_config = ConfigDict(extra="forbid")

    complaint_id: uuid.UUID
    started: bool = False
    closed: bool = False
    priority: Priority | None = None
    public: bool = False
    matched_rules: tuple[str, ...] = ()
    jurisdiction: str | None = None
    product: str | None = None
    policy_id: str | None = None
    policy_version: str | None = None
    regulatory_id: str | None = None
    holding_reply_extended: bool = False
    targets: dict[SlaTarget, TargetClock] = {}
    paused_at: datetime | None = None
    holds: dict[str, tuple[EscalationTier, Lift]] = {}
    incident: tuple[str, Priority, str] | None = None  # (incident id, its priority, rule)
    early: list[EarlyFact] = []
    recent_inputs: list[str] = []


def _copy(state: ComplaintClock) -> ComplaintClock:
    """A copy the machine may change without touching `state`: what `model_copy(deep=True)`
    gives (each target clock is changed in place, `early` appended to), without deep-copying
    the immutable values inside. The deep copy was a sixth of the clock agent's time."""
    return state.model_copy(
        update={
            "targets": {target: timer.model_copy() for target, timer in state.targets.items()},
            "holds": dict(state.holds),
            "early": list(state.early),
            "recent_inputs": list(state.recent_inputs),
        }
    )


@dataclass(frozen=True)
class Emit:
    """One event to publish: its data and its deterministic id."""

    data: EventData
    event_id: uuid.UUID


def signal_id(complaint_id: uuid.UUID, kind: str, target: SlaTarget, generation: int) -> uuid.UUID:
    """Same id whoever notices it first (timer, or a late response) — one breach, one event."""
    return derived_event_id(complaint_id, kind, target.value, str(generation))


class ClockRules:
    """The policy's SLA section made executable: which policy applies and where deadlines fall."""

    def __init__(self, policy: RoutingPolicy) -> None:
        self.policy = policy
        self.calendars: dict[str, Calendar] = {ALWAYS_OPEN.calendar_id: ALWAYS_OPEN}
        for calendar_id in policy.calendars:
            built = policy.calendar(calendar_id)
            if built is not None:
                self.calendars[calendar_id] = built

    def sla_policy(self, priority: Priority, jurisdiction: str | None) -> SlaPolicy:
        candidates = [p for p in self.policy.sla.policies if priority in p.priorities]
        specific = [p for p in candidates if p.jurisdictions and jurisdiction in p.jurisdictions]
        anywhere = [p for p in candidates if p.jurisdictions is None]
        return (specific or anywhere)[0]

    def regulatory(
        self, jurisdiction: str | None, product: str | None
    ) -> RegulatoryTemplate | None:
        matching = [t for t in self.policy.sla.regulatory if jurisdiction in t.jurisdictions]
        for_product = [t for t in matching if t.products and product in t.products]
        any_product = [t for t in matching if t.products is None]
        found = for_product or any_product
        return found[0] if found else None

    def calendar_for(self, duration: Duration, calendar_id: str | None) -> Calendar:
        if duration.on_business_calendar and calendar_id in self.calendars:
            return self.calendars[calendar_id or ""]
        return ALWAYS_OPEN

    def due(self, start: datetime, duration: Duration, calendar: Calendar) -> datetime:
        if duration.business_days is not None:
            return calendar.add_days(start, duration.business_days)
        if duration.calendar_days is not None:
            return calendar.add_days(start, duration.calendar_days)
        span = duration.as_timedelta
        assert span is not None  # a Duration has exactly one field set
        return calendar.add(start, span)

    def warn_at(self, start: datetime, due: datetime, calendar: Calendar) -> datetime:
        span = calendar.between(start, due) * self.policy.sla.warning_share
        return calendar.add(start, span)

    def target_clock(
        self,
        target: SlaTarget,
        start: datetime,
        duration: Duration,
        calendar_id: str | None,
        *,
        pausable: bool,
        generation: int = 0,
    ) -> TargetClock:
        calendar = self.calendar_for(duration, calendar_id)
        due = self.due(start, duration, calendar)
        return TargetClock(
            target=target,
            calendar=calendar.calendar_id,
            started_at=start,
            due_at=due,
            warn_at=self.warn_at(start, due, calendar),
            pausable=pausable,
            generation=generation,
        )

    def plan(
        self, priority: Priority, jurisdiction: str | None, product: str | None, start: datetime
    ) -> tuple[SlaPolicy, RegulatoryTemplate | None, dict[SlaTarget, TargetClock]]:
        policy = self.sla_policy(priority, jurisdiction)
        template = self.regulatory(jurisdiction, product)
        targets = {
            target: self.target_clock(target, start, duration, policy.calendar, pausable=True)
            for target, duration in policy.targets.items()
        }
        if template is not None:
            targets[SlaTarget.REGULATORY] = self.target_clock(
                SlaTarget.REGULATORY, start, template.deadline, template.calendar, pausable=False
            )
            cap = template.first_response_at_most
            first = targets.get(SlaTarget.FIRST_RESPONSE)
            if cap is not None:
                capped = self.target_clock(
                    SlaTarget.FIRST_RESPONSE, start, cap, template.calendar, pausable=False
                )
                if first is None or capped.due_at < first.due_at:
                    targets[SlaTarget.FIRST_RESPONSE] = capped
        return policy, template, targets


# ------------------------------------------------------------------ transitions


def _seen(clock: ComplaintClock, input_id: str) -> bool:
    return input_id in clock.recent_inputs


def _remember(clock: ComplaintClock, input_id: str) -> None:
    clock.recent_inputs = [*clock.recent_inputs, input_id][-RECENT_INPUTS_KEPT:]


def _tier_event(
    clock: ComplaintClock, change: TierChange | None, cause_id: str, *, up: bool
) -> list[Emit]:
    if change is None:
        return []
    fields = {
        "complaint_id": clock.complaint_id,
        "from_tier": change.from_tier,
        "tier": change.tier,
        "trigger": change.trigger,
        "policy_rule": change.policy_rule,
        "reason": change.reason,
    }
    data: EventData = ComplaintEscalated(**fields) if up else ComplaintDeescalated(**fields)
    kind = "escalated" if up else "deescalated"
    return [Emit(data, derived_event_id(cause_id, kind, change.tier.value))]


def _signal(clock: ComplaintClock, trigger: str, target: SlaTarget | None = None) -> Signal:
    return Signal(
        trigger=trigger,
        priority=clock.priority or Priority.P4,
        public=clock.public,
        matched_rules=clock.matched_rules,
        target=target,
    )


class ClockMachine:
    def __init__(self, policy: RoutingPolicy) -> None:
        self.policy = policy
        self.rules = ClockRules(policy)

    def new(self, complaint_id: uuid.UUID) -> ComplaintClock:
        return ComplaintClock(complaint_id=complaint_id)

    # -- prioritized: start (or tighten) the clocks

    def on_prioritized(
        self,
        state: ComplaintClock,
        event: ComplaintPrioritized,
        *,
        event_id: str,
        occurred_at: datetime,
    ) -> tuple[ComplaintClock, list[Emit]]:
        if _seen(state, event_id):
            return state, []
        clock = _copy(state)
        _remember(clock, event_id)
        if clock.closed:
            return clock, []
        if clock.started:
            return self._tighten(clock, event, event_id=event_id)
        start = event.received_at or occurred_at
        clock.started = True
        clock.priority = event.priority
        clock.public = bool(event.public)
        clock.matched_rules = event.matched_rules
        clock.jurisdiction = event.jurisdiction
        clock.product = event.product
        policy, template, targets = self.rules.plan(
            event.priority, event.jurisdiction, event.product, start
        )
        clock.policy_id = policy.id
        clock.policy_version = self.policy.version
        clock.regulatory_id = template.id if template else None
        clock.targets = targets
        reason = f"{event.priority.value} policy {policy.id}"
        if template:
            reason += f"; regulatory deadline {template.id} ({template.regulation})"
        emits = [
            Emit(
                SlaClockStarted(
                    complaint_id=clock.complaint_id,
                    policy_id=policy.id,
                    policy_version=self.policy.version,
                    deadlines=tuple(t.deadline() for t in targets.values()),
                    reason=reason,
                ),
                derived_event_id(event_id, "sla_clock_started"),
            )
        ]
        clock.holds, change = escalate(
            clock.holds, _signal(clock, "prioritized"), self.policy.escalation
        )
        emits += _tier_event(clock, change, event_id, up=True)
        emits += self._apply_incident(clock, event_id)
        early, clock.early = clock.early, []
        for fact in sorted(early, key=lambda f: f.at):
            clock, more = self._apply_fact(clock, fact)
            emits += more
        return clock, emits

    def _tighten(
        self, clock: ComplaintClock, event: ComplaintPrioritized, *, event_id: str
    ) -> tuple[ComplaintClock, list[Emit]]:
        """A later, more urgent priority (an incident) moves open deadlines earlier, never
        later: the customer keeps every promise already made."""
        if clock.priority is not None and event.priority.rank >= clock.priority.rank:
            return clock, []
        clock.priority = event.priority
        clock.matched_rules = tuple(dict.fromkeys([*clock.matched_rules, *event.matched_rules]))
        some_start = min(t.started_at for t in clock.targets.values()) if clock.targets else None
        if some_start is None:
            return clock, []
        policy, _, planned = self.rules.plan(
            event.priority, clock.jurisdiction, clock.product, some_start
        )
        changed = []
        for target, fresh in planned.items():
            current = clock.targets.get(target)
            if current is None or not current.open or current.breached:
                continue
            if fresh.due_at < current.due_at:
                fresh.generation = current.generation + 1
                fresh.pausable = current.pausable
                clock.targets[target] = fresh
                changed.append(fresh.deadline())
        clock.policy_id = policy.id
        if not changed:
            return clock, []
        started = SlaClockStarted(
            complaint_id=clock.complaint_id,
            policy_id=policy.id,
            policy_version=self.policy.version,
            deadlines=tuple(changed),
            reason=f"reprioritized to {event.priority.value}: deadlines brought forward",
        )
        return clock, [Emit(started, derived_event_id(event_id, "sla_clock_started"))]

    # -- case facts: acknowledgement, responses, pauses, resolution, withdrawal

    def on_fact(
        self,
        state: ComplaintClock,
        kind: Literal["acknowledged", "responded", "resolved", "withdrawn", "paused", "resumed"],
        *,
        at: datetime,
        event_id: str,
        holding_reply: bool = False,
    ) -> tuple[ComplaintClock, list[Emit]]:
        if _seen(state, event_id):
            return state, []
        clock = _copy(state)
        _remember(clock, event_id)
        fact = EarlyFact(kind=kind, at=at, event_id=event_id, holding_reply=holding_reply)
        if not clock.started:
            clock.early.append(fact)
            return clock, []
        return self._apply_fact(clock, fact)

    def _apply_fact(
        self, clock: ComplaintClock, fact: EarlyFact
    ) -> tuple[ComplaintClock, list[Emit]]:
        if clock.closed:
            return clock, []
        if fact.kind == "paused":
            return self._pause(clock, fact)
        if fact.kind == "resumed":
            return self._resume(clock, fact)
        emits: list[Emit] = []
        if clock.paused_at is not None and fact.kind in ("responded", "resolved"):
            clock, emits = self._resume(clock, fact)
        stops: dict[str, tuple[SlaTarget, ...]] = {
            "acknowledged": (SlaTarget.FIRST_RESPONSE,),
            "responded": (SlaTarget.FIRST_RESPONSE, SlaTarget.NEXT_UPDATE),
            "resolved": tuple(SlaTarget),
            "withdrawn": tuple(SlaTarget),
        }
        for target in stops[fact.kind]:
            emits += self._stop(clock, target, fact, counts=fact.kind != "withdrawn")
        if fact.kind == "responded":
            emits += self._rearm_next_update(clock, fact)
            if fact.holding_reply:
                emits += self._extend_regulatory(clock, fact)
            clock.holds, change = lift(clock.holds, on="response", trigger="responded")
            emits += _tier_event(clock, change, fact.event_id, up=False)
        if fact.kind in ("resolved", "withdrawn"):
            clock.closed = True
            clock.paused_at = None
            clock.holds, change = lift(clock.holds, on="resolution", trigger=fact.kind)
            emits += _tier_event(clock, change, fact.event_id, up=False)
        return clock, emits

    def _stop(
        self, clock: ComplaintClock, target: SlaTarget, fact: EarlyFact, *, counts: bool
    ) -> list[Emit]:
        timer = clock.targets.get(target)
        if timer is None or not timer.open:
            return []
        timer.open = False
        if not counts:
            return []
        if fact.at <= timer.due_at:
            if timer.breached:
                return []
            calendar = self.rules.calendars.get(timer.calendar, ALWAYS_OPEN)
            elapsed = calendar.between(timer.started_at, fact.at).total_seconds()
            met = SlaMet(
                complaint_id=clock.complaint_id,
                target=target,
                policy_id=clock.policy_id or "",
                due_at=timer.due_at,
                met_at=fact.at,
                elapsed_seconds=max(elapsed - timer.paused_business_seconds, 0.0),
                generation=timer.generation,
            )
            return [Emit(met, signal_id(clock.complaint_id, "sla_met", target, timer.generation))]
        if timer.breached:
            return []
        # Late, and the timer has not said so yet (e.g. the worker was down): say it now, with
        # the id the timer would have used.
        timer.breached = True
        return [self._breach_emit(clock, timer)]

    def _rearm_next_update(self, clock: ComplaintClock, fact: EarlyFact) -> list[Emit]:
        policy = self.rules.sla_policy(clock.priority or Priority.P4, clock.jurisdiction)
        duration = policy.targets.get(SlaTarget.NEXT_UPDATE)
        previous = clock.targets.get(SlaTarget.NEXT_UPDATE)
        if duration is None or previous is None:
            return []
        fresh = self.rules.target_clock(
            SlaTarget.NEXT_UPDATE,
            fact.at,
            duration,
            policy.calendar,
            pausable=True,
            generation=previous.generation + 1,
        )
        clock.targets[SlaTarget.NEXT_UPDATE] = fresh
        started = SlaClockStarted(
            complaint_id=clock.complaint_id,
            policy_id=policy.id,
            policy_version=self.policy.version,
            deadlines=(fresh.deadline(),),
            reason="next update due after the response",
        )
        return [Emit(started, derived_event_id(fact.event_id, "next_update_started"))]

    def _extend_regulatory(self, clock: ComplaintClock, fact: EarlyFact) -> list[Emit]:
        template = self.rules.regulatory(clock.jurisdiction, clock.product)
        timer = clock.targets.get(SlaTarget.REGULATORY)
        if (
            template is None
            or template.after_holding_reply is None
            or timer is None
            or not timer.open
            or timer.breached
            or clock.holding_reply_extended
        ):
            return []
        longer = self.rules.target_clock(
            SlaTarget.REGULATORY,
            timer.started_at,
            template.after_holding_reply,
            template.calendar,
            pausable=False,
            generation=timer.generation + 1,
        )
        clock.targets[SlaTarget.REGULATORY] = longer
        clock.holding_reply_extended = True
        extended = SlaDeadlineExtended(
            complaint_id=clock.complaint_id,
            target=SlaTarget.REGULATORY,
            policy_id=template.id,
            deadline=longer.deadline(),
            reason=f"holding reply sent: {template.regulation} allows "
            f"{template.after_holding_reply.describe()}",
        )
        return [Emit(extended, derived_event_id(fact.event_id, "regulatory_extended"))]

    def _pause(self, clock: ComplaintClock, fact: EarlyFact) -> tuple[ComplaintClock, list[Emit]]:
        if clock.paused_at is not None:
            return clock, []
        clock.paused_at = fact.at
        paused = SlaClockPaused(
            complaint_id=clock.complaint_id,
            paused_at=fact.at,
            reason="waiting on the customer (information requested); regulatory clocks run on",
        )
        return clock, [Emit(paused, derived_event_id(fact.event_id, "sla_paused"))]

    def _resume(self, clock: ComplaintClock, fact: EarlyFact) -> tuple[ComplaintClock, list[Emit]]:
        paused_at = clock.paused_at
        if paused_at is None:
            return clock, []
        clock.paused_at = None
        resume_at = max(fact.at, paused_at)
        moved = []
        for timer in clock.targets.values():
            if not (timer.open and timer.pausable) or timer.breached or timer.due_at <= paused_at:
                continue
            calendar = self.rules.calendars.get(timer.calendar, ALWAYS_OPEN)
            timer.due_at, timer.warn_at = shift_for_pause(
                calendar, due=timer.due_at, warn=timer.warn_at, paused=paused_at, resumed=resume_at
            )
            timer.paused_business_seconds += calendar.between(paused_at, resume_at).total_seconds()
            timer.generation += 1
            moved.append(timer.deadline())
        resumed = SlaClockResumed(
            complaint_id=clock.complaint_id, resumed_at=resume_at, deadlines=tuple(moved)
        )
        return clock, [Emit(resumed, derived_event_id(fact.event_id, "sla_resumed"))]

    # -- the timer's findings, read back from the routing topic

    def on_signal(
        self,
        state: ComplaintClock,
        kind: Literal["sla_warning", "sla_breached"],
        target: SlaTarget,
        generation: int,
        *,
        event_id: str,
    ) -> tuple[ComplaintClock, list[Emit]]:
        if _seen(state, event_id):
            return state, []
        clock = _copy(state)
        _remember(clock, event_id)
        timer = clock.targets.get(target)
        if timer is None or timer.generation != generation:
            return clock, []
        if kind == "sla_warning":
            timer.warned = True
        else:
            timer.breached = True
            timer.warned = True
        if clock.closed:
            return clock, []
        clock.holds, change = escalate(
            clock.holds, _signal(clock, kind, target), self.policy.escalation
        )
        return clock, _tier_event(clock, change, event_id, up=True)

    def on_incident_link(
        self,
        state: ComplaintClock,
        *,
        incident_id: str,
        incident_priority: Priority,
        policy_rule: str,
        event_id: str,
    ) -> tuple[ComplaintClock, list[Emit]]:
        """The complaint belongs to a surge: apply the incident's priority (never lowering the
        complaint's own) and escalate per policy."""
        if _seen(state, event_id):
            return state, []
        clock = _copy(state)
        _remember(clock, event_id)
        clock.incident = (incident_id, incident_priority, policy_rule)
        if clock.closed or not clock.started:
            return clock, []  # applied when the clock starts
        return clock, self._apply_incident(clock, event_id)

    def _apply_incident(self, clock: ComplaintClock, cause_id: str) -> list[Emit]:
        if clock.incident is None:
            return []
        incident_id, priority, rule = clock.incident
        emits: list[Emit] = []
        if clock.priority is not None and priority.rank < clock.priority.rank:
            # Published, then read back like any prioritization: _tighten moves the deadlines.
            raised = ComplaintPrioritized(
                complaint_id=clock.complaint_id,
                priority=priority,
                matched_rules=(*clock.matched_rules, rule),
                rules_version=self.policy.version,
                reason=f"{priority.value} because {rule}: linked to incident {incident_id} "
                f"(was {clock.priority.value})",
                jurisdiction=clock.jurisdiction,
                product=clock.product,
                public=clock.public,
            )
            emits.append(Emit(raised, derived_event_id(cause_id, "incident_priority")))
        clock.holds, change = escalate(
            clock.holds, _signal(clock, "incident_linked"), self.policy.escalation
        )
        return emits + _tier_event(clock, change, cause_id, up=True)

    # -- what the timer publishes

    def _breach_emit(self, clock: ComplaintClock, timer: TargetClock) -> Emit:
        breached = SlaBreached(
            complaint_id=clock.complaint_id,
            target=timer.target,
            policy_id=clock.policy_id or "",
            due_at=timer.due_at,
            breached_at=timer.due_at,
            generation=timer.generation,
        )
        return Emit(
            breached, signal_id(clock.complaint_id, "sla_breached", timer.target, timer.generation)
        )

    def due_signals(self, clock: ComplaintClock, now: datetime) -> list[Emit]:
        """Warnings and breaches that are due at `now` and not yet recorded in the state."""
        if not clock.started or clock.closed:
            return []
        emits = []
        for timer in clock.targets.values():
            if not timer.open or timer.breached:
                continue
            if clock.paused_at is not None and timer.pausable:
                continue
            if now >= timer.due_at:
                emits.append(self._breach_emit(clock, timer))
            elif now >= timer.warn_at and not timer.warned:
                calendar = self.rules.calendars.get(timer.calendar, ALWAYS_OPEN)
                total = calendar.between(timer.started_at, timer.due_at).total_seconds()
                used = calendar.between(timer.started_at, now).total_seconds()
                warning = SlaWarning(
                    complaint_id=clock.complaint_id,
                    target=timer.target,
                    policy_id=clock.policy_id or "",
                    due_at=timer.due_at,
                    share_elapsed=round(min(used / total, 1.0), 4) if total else 1.0,
                    generation=timer.generation,
                )
                emits.append(
                    Emit(
                        warning,
                        signal_id(
                            clock.complaint_id, "sla_warning", timer.target, timer.generation
                        ),
                    )
                )
        return emits


def next_signal_at(clock: ComplaintClock) -> datetime | None:
    """The earliest moment `ClockMachine.due_signals` has something to send for this clock
    (None: nothing until an event changes it, e.g. closed, not started, or paused)."""
    if not clock.started or clock.closed:
        return None
    times = [
        timer.due_at if timer.warned else min(timer.warn_at, timer.due_at)
        for timer in clock.targets.values()
        if timer.open
        and not timer.breached
        and not (clock.paused_at is not None and timer.pausable)
    ]
    return min(times, default=None)


def next_signal_at_stored(stored: Any) -> datetime | None:
    """`next_signal_at` of a clock as the table stores it (`model_dump(mode="json")`), read
    without validating the whole model: the SLA timer's index is rebuilt by reading every open
    clock. Anything not in that shape is validated and read the slow way."""
    try:
        if not stored["started"] or stored["closed"]:
            return None
        paused = stored["paused_at"] is not None
        times: list[datetime] = []
        for timer in stored["targets"].values():
            if not timer["open"] or timer["breached"] or (paused and timer["pausable"]):
                continue
            due = datetime.fromisoformat(timer["due_at"])
            if not timer["warned"]:
                due = min(datetime.fromisoformat(timer["warn_at"]), due)
            times.append(due)
    except (KeyError, TypeError, ValueError, AttributeError):
        return next_signal_at(ComplaintClock.model_validate(stored))
    return min(times, default=None)


def shift_for_pause(
    calendar: Calendar, *, due: datetime, warn: datetime, paused: datetime, resumed: datetime
) -> tuple[datetime, datetime]:
    """Deadlines after a pause: the business time that was left at the pause is granted again
    from the resumption, so a pause can only move a deadline later."""
    left = calendar.between(paused, due)
    warn_left = calendar.between(paused, warn) if warn > paused else timedelta(0)
    new_due = max(calendar.add(resumed, left), due)
    new_warn = calendar.add(resumed, warn_left) if warn > paused else warn
    return new_due, min(max(new_warn, warn), new_due)
