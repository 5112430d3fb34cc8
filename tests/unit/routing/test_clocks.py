"""SLA clocks and escalation as a pure state machine, driven by explicit times."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from redress_events.catalogue.routing import (
    ComplaintDeescalated,
    ComplaintEscalated,
    ComplaintPrioritized,
    SlaBreached,
    SlaClockPaused,
    SlaClockResumed,
    SlaClockStarted,
    SlaDeadlineExtended,
    SlaMet,
    SlaTarget,
    SlaWarning,
)
from redress_events.values import Priority
from redress_routing.clocks import ClockMachine, ComplaintClock, Emit
from redress_routing.config import load_policy
from redress_routing.escalation import Signal, escalate
from redress_routing.settings import DEFAULT_RULES

POLICY = load_policy(DEFAULT_RULES)
MACHINE = ClockMachine(POLICY)
LONDON = ZoneInfo("Europe/London")
COMPLAINT = uuid.UUID(int=7)
# Monday 23 November 2026, 10:00 in London.
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=LONDON).astimezone(UTC)


def prioritized(priority: str = "P3", **overrides: Any) -> ComplaintPrioritized:
    fields: dict[str, Any] = {
        "complaint_id": COMPLAINT,
        "priority": priority,
        "matched_rules": ("product-defect",),
        "rules_version": POLICY.version,
        "reason": "test",
        "received_at": MONDAY_10,
        "jurisdiction": "GB",
        "product": "kettle-2000",
        "public": False,
    }
    fields.update(overrides)
    return ComplaintPrioritized(**fields)


def started(priority: str = "P3", **overrides: Any) -> tuple[ComplaintClock, list[Emit]]:
    return MACHINE.on_prioritized(
        MACHINE.new(COMPLAINT),
        prioritized(priority, **overrides),
        event_id="prio-1",
        occurred_at=MONDAY_10,
    )


def target_of(emit: Emit) -> Any:
    return getattr(emit.data, "target", None)


def only(emits: list[Emit], kind: type) -> list[Any]:
    return [e.data for e in emits if isinstance(e.data, kind)]


def apply_signals(clock: ComplaintClock, now: datetime) -> tuple[ComplaintClock, list[Emit]]:
    """What the worker does: the timer publishes, the agent reads its signals back."""
    emitted: list[Emit] = []
    for emit in MACHINE.due_signals(clock, now):
        emitted.append(emit)
        data: Any = emit.data
        clock, more = MACHINE.on_signal(
            clock,
            "sla_warning" if isinstance(data, SlaWarning) else "sla_breached",
            data.target,
            data.generation,
            event_id=str(emit.event_id),
        )
        emitted += more
    return clock, emitted


def test_start_sets_every_target_on_its_calendar_plus_the_regulator() -> None:
    clock, emits = started()
    (event,) = only(emits, SlaClockStarted)
    due = {d.target: d.due_at for d in event.deadlines}
    assert event.policy_id == "p3-p4"
    # 8 business hours from Monday 10:00 (open 09:00-17:30): 7h30 Monday → Tuesday 09:30.
    assert due[SlaTarget.FIRST_RESPONSE] == datetime(2026, 11, 24, 9, 30, tzinfo=LONDON)
    # 10 business days → close of business Monday 7 December.
    assert due[SlaTarget.RESOLUTION] == datetime(2026, 12, 7, 17, 30, tzinfo=LONDON)
    assert due[SlaTarget.REGULATORY] == MONDAY_10 + timedelta(weeks=8)
    warn = {d.target: d.warn_at for d in event.deadlines}
    # 80% of 8 business hours = 6h24m → Monday 16:24.
    assert warn[SlaTarget.FIRST_RESPONSE] == datetime(2026, 11, 23, 16, 24, tzinfo=LONDON)
    assert clock.started and clock.policy_id == "p3-p4"


def test_payment_products_get_15_business_days_and_35_after_a_holding_reply() -> None:
    clock, emits = started(product="card-basic")
    (event,) = only(emits, SlaClockStarted)
    due = {d.target: d.due_at for d in event.deadlines}
    assert due[SlaTarget.REGULATORY] == datetime(2026, 12, 14, 17, 30, tzinfo=LONDON)
    clock, emits = MACHINE.on_fact(
        clock,
        "responded",
        at=MONDAY_10 + timedelta(days=1),
        event_id="holding",
        holding_reply=True,
    )
    (extended,) = only(emits, SlaDeadlineExtended)
    # 35 business days, skipping 25 and 28 December and 1 January.
    assert extended.deadline.due_at == datetime(2027, 1, 14, 17, 30, tzinfo=LONDON)
    assert clock.targets[SlaTarget.REGULATORY].due_at == extended.deadline.due_at


def test_cfpb_gives_60_calendar_days_and_caps_first_response_at_15() -> None:
    _, emits = started(jurisdiction="US", priority="P4")
    (event,) = only(emits, SlaClockStarted)
    due = {d.target: d.due_at for d in event.deadlines}
    assert due[SlaTarget.REGULATORY] == MONDAY_10 + timedelta(days=60)
    assert event.policy_id == "p3-p4-us"
    assert due[SlaTarget.FIRST_RESPONSE] < MONDAY_10 + timedelta(days=15)


def test_a_response_in_time_is_met_and_rearms_next_update() -> None:
    clock, _ = started()
    answered = MONDAY_10 + timedelta(hours=2)
    clock, emits = MACHINE.on_fact(clock, "responded", at=answered, event_id="resp-1")
    met = {m.target: m for m in only(emits, SlaMet)}
    assert set(met) == {SlaTarget.FIRST_RESPONSE, SlaTarget.NEXT_UPDATE}
    assert met[SlaTarget.FIRST_RESPONSE].elapsed_seconds == 2 * 3600
    (rearmed,) = only(emits, SlaClockStarted)
    assert rearmed.deadlines[0].target == SlaTarget.NEXT_UPDATE
    assert clock.targets[SlaTarget.NEXT_UPDATE].started_at == answered
    assert not clock.targets[SlaTarget.FIRST_RESPONSE].open


def test_warning_then_breach_then_escalation_then_deescalation_on_response() -> None:
    clock, _ = started()
    warn_at = clock.targets[SlaTarget.FIRST_RESPONSE].warn_at
    due_at = clock.targets[SlaTarget.FIRST_RESPONSE].due_at

    assert MACHINE.due_signals(clock, warn_at - timedelta(seconds=1)) == []
    clock, emits = apply_signals(clock, warn_at)
    (warning,) = only(emits, SlaWarning)
    assert warning.target == SlaTarget.FIRST_RESPONSE and warning.share_elapsed == 0.8
    assert MACHINE.due_signals(clock, warn_at) == []  # recorded: not warned twice

    clock, emits = apply_signals(clock, due_at)
    (breach,) = only(emits, SlaBreached)
    assert breach.target == SlaTarget.FIRST_RESPONSE and breach.breached_at == due_at
    (escalated,) = only(emits, ComplaintEscalated)
    assert (escalated.from_tier, escalated.tier) == ("agent", "team_lead")
    assert escalated.policy_rule == "first-response-breached"
    assert escalated.trigger == "sla_breached:first_response"

    clock, emits = MACHINE.on_fact(
        clock, "responded", at=due_at + timedelta(hours=1), event_id="late"
    )
    assert SlaTarget.FIRST_RESPONSE not in [m.target for m in only(emits, SlaMet)]
    (down,) = only(emits, ComplaintDeescalated)
    assert (down.from_tier, down.tier, down.trigger) == ("team_lead", "agent", "responded")
    assert all(
        target_of(s) != SlaTarget.FIRST_RESPONSE
        for s in MACHINE.due_signals(clock, due_at + timedelta(days=3))
    )


def test_a_late_response_the_timer_missed_is_reported_as_the_same_breach() -> None:
    clock, _ = started()
    due_at = clock.targets[SlaTarget.FIRST_RESPONSE].due_at
    (timer_breach,) = [
        e
        for e in MACHINE.due_signals(clock, due_at)
        if target_of(e) == SlaTarget.FIRST_RESPONSE and isinstance(e.data, SlaBreached)
    ]
    _, emits = MACHINE.on_fact(clock, "responded", at=due_at + timedelta(hours=1), event_id="r")
    (late,) = [e for e in emits if isinstance(e.data, SlaBreached)]
    assert late.event_id == timer_breach.event_id


def test_pause_moves_pausable_deadlines_later_and_leaves_the_regulator_alone() -> None:
    clock, _ = started()
    before = {t: c.due_at for t, c in clock.targets.items()}
    paused_at = MONDAY_10 + timedelta(hours=1)
    clock, emits = MACHINE.on_fact(clock, "paused", at=paused_at, event_id="info-req")
    assert only(emits, SlaClockPaused)
    # While paused the first response cannot breach, the regulatory deadline still can.
    far = before[SlaTarget.REGULATORY]
    assert {target_of(e) for e in MACHINE.due_signals(clock, far)} == {SlaTarget.REGULATORY}

    clock, emits = MACHINE.on_fact(
        clock, "resumed", at=paused_at + timedelta(days=2), event_id="reply"
    )
    (resumed,) = only(emits, SlaClockResumed)
    after = {t: c.due_at for t, c in clock.targets.items()}
    assert after[SlaTarget.REGULATORY] == before[SlaTarget.REGULATORY]
    # Paused Monday 11:00 with 7h of business time left; resumed Wednesday 11:00: 6h30 on
    # Wednesday, 30 minutes on Thursday.
    assert after[SlaTarget.FIRST_RESPONSE] == datetime(2026, 11, 26, 9, 30, tzinfo=LONDON)
    assert {d.target for d in resumed.deadlines} >= {SlaTarget.FIRST_RESPONSE}
    assert all(after[t] >= before[t] for t in before)


def test_case_events_before_the_prioritization_are_applied_when_the_clock_starts() -> None:
    clock = MACHINE.new(COMPLAINT)
    clock, emits = MACHINE.on_fact(
        clock, "acknowledged", at=MONDAY_10 + timedelta(minutes=5), event_id="ack"
    )
    assert emits == [] and not clock.started
    clock, emits = MACHINE.on_prioritized(
        clock, prioritized(), event_id="prio-1", occurred_at=MONDAY_10
    )
    (met,) = only(emits, SlaMet)
    assert met.target == SlaTarget.FIRST_RESPONSE


def test_redelivered_inputs_change_nothing_and_emit_nothing() -> None:
    clock, _ = started()
    again, emits = MACHINE.on_prioritized(
        clock, prioritized(), event_id="prio-1", occurred_at=MONDAY_10
    )
    assert emits == [] and again is clock
    clock, _ = MACHINE.on_fact(clock, "responded", at=MONDAY_10, event_id="resp")
    again, emits = MACHINE.on_fact(clock, "responded", at=MONDAY_10, event_id="resp")
    assert emits == [] and again is clock


def test_the_same_facts_give_the_same_events_with_the_same_ids() -> None:
    _, one = started()
    _, two = started()
    assert [(e.event_id, e.data) for e in one] == [(e.event_id, e.data) for e in two]


def test_resolution_stops_everything_and_lifts_every_escalation() -> None:
    clock, _ = started()
    due_at = clock.targets[SlaTarget.RESOLUTION].due_at
    clock, emits = apply_signals(clock, due_at)
    assert {e.tier for e in only(emits, ComplaintEscalated)} == {"team_lead", "manager"}
    clock, emits = MACHINE.on_fact(clock, "resolved", at=due_at, event_id="resolved")
    (down,) = only(emits, ComplaintDeescalated)
    assert (down.from_tier, down.tier) == ("manager", "agent")
    assert clock.closed and MACHINE.due_signals(clock, due_at + timedelta(days=365)) == []


def test_executive_only_by_policy_p1_public_safety() -> None:
    _, emits = started(
        "P1", public=True, matched_rules=("safety-injury", "public-social", "product-defect")
    )
    (up,) = only(emits, ComplaintEscalated)
    assert (up.tier, up.policy_rule) == ("executive", "p1-public-safety")
    # A private P1 or a public P2 is not enough.
    _, emits = started("P1", public=False, matched_rules=("safety-injury",))
    assert only(emits, ComplaintEscalated) == []
    _, emits = started("P2", public=True, matched_rules=("public-social",))
    assert only(emits, ComplaintEscalated) == []


def test_a_breached_regulatory_deadline_reaches_the_executive() -> None:
    clock, _ = started()
    clock, emits = apply_signals(clock, clock.targets[SlaTarget.REGULATORY].due_at)
    tiers = [e.tier for e in only(emits, ComplaintEscalated)]
    assert tiers[-1] == "executive" or "executive" in tiers
    assert clock.holds["regulatory-breached"][0] == "executive"


def test_no_escalation_rule_can_depend_on_customer_tier() -> None:
    fields = set(type(POLICY.escalation.rules[0].when).model_fields)
    assert "tier" not in fields and "customer_tier" not in fields
    holds, change = escalate(
        {},
        Signal(trigger="prioritized", priority=Priority.P4, public=True, matched_rules=()),
        POLICY.escalation,
    )
    assert change is None and holds == {}


def test_an_incident_raises_priority_and_brings_deadlines_forward_never_back() -> None:
    clock, _ = started("P4", matched_rules=())
    before = {t: c.due_at for t, c in clock.targets.items()}
    clock, emits = MACHINE.on_incident_link(
        clock,
        incident_id="inc-1",
        incident_priority=Priority.P2,
        policy_rule="surge-incident",
        event_id="link-1",
    )
    (raised,) = only(emits, ComplaintPrioritized)
    assert raised.priority == "P2" and "surge-incident" in raised.matched_rules
    assert [e.tier for e in only(emits, ComplaintEscalated)] == ["team_lead"]
    clock, emits = MACHINE.on_prioritized(clock, raised, event_id="prio-2", occurred_at=MONDAY_10)
    (tightened,) = only(emits, SlaClockStarted)
    assert tightened.policy_id == "p2"
    assert all(clock.targets[t].due_at <= before[t] for t in before)
    assert clock.targets[SlaTarget.FIRST_RESPONSE].due_at < before[SlaTarget.FIRST_RESPONSE]
    # A less urgent prioritization later changes nothing.
    _, emits = MACHINE.on_prioritized(
        clock, prioritized("P4"), event_id="prio-3", occurred_at=MONDAY_10
    )
    assert emits == []


def test_the_state_survives_a_json_round_trip() -> None:
    clock, _ = started()
    clock, _ = MACHINE.on_fact(clock, "paused", at=MONDAY_10, event_id="p")
    restored = ComplaintClock.model_validate(clock.model_dump(mode="json"))
    assert restored == clock
