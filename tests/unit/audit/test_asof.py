"""The as-of fold: a complaint's state at any moment, from its events alone."""

from __future__ import annotations

import random
from datetime import timedelta

from redress_audit.asof import ComplaintState, evolve, state_as_of
from redress_events import Envelope

from tests.fixtures.events.story import (
    GUARANTEE,
    MOMENTS,
    REMEDY_REFUND,
    REMEDY_REPLACEMENT,
    STORY_COMPLAINT,
    STORY_INCIDENT,
    T0,
    complaint_story,
)

CID = str(STORY_COMPLAINT)


def at(moment: object, events: list[Envelope] | None = None) -> ComplaintState:
    return state_as_of(
        complaint_id=CID,
        events=events or complaint_story(),
        at=moment,  # type: ignore[arg-type]
    )


def clocks(state: ComplaintState) -> dict[str, str]:
    return {c.target: c.state for c in state.clocks}


def test_before_the_first_event_nothing_is_known() -> None:
    state = at(MOMENTS.before_receipt)
    assert state.events_applied == 0
    assert state.status == "unknown"


def test_just_received_then_prioritized_assigned_and_clocked() -> None:
    assert at(MOMENTS.just_received).status == "received"
    assert at(MOMENTS.just_received).priority is None
    state = at(MOMENTS.prioritized)
    assert (state.status, state.priority, state.queue) == ("open", "P1", "product-safety")
    assert state.priority_rules == ("safety-injury", "public-channel")
    assert state.sla_policy == "uk-fca-disp"
    assert clocks(state) == {
        "first_response": "running",
        "next_update": "running",
        "regulatory": "running",
    }
    first = next(c for c in state.clocks if c.target == "first_response")
    assert first.due_at == T0 + timedelta(hours=4)


def test_waiting_for_the_customer_pauses_the_running_clocks() -> None:
    state = at(MOMENTS.waiting_for_customer)
    assert state.status == "awaiting_customer"
    assert state.clocks_paused_at == T0 + timedelta(hours=2)
    assert clocks(state) == {
        "first_response": "met",
        "next_update": "paused",
        "regulatory": "paused",
    }
    assert state.acknowledged_at == T0 + timedelta(minutes=30)
    assert state.first_response_at == T0 + timedelta(hours=1)
    assert [(i.incident_id, i.state) for i in state.incidents] == [(str(STORY_INCIDENT), "active")]


def test_breach_escalates_and_the_resumed_deadline_is_the_moved_one() -> None:
    state = at(MOMENTS.escalated)
    assert state.status == "open"
    assert state.escalation_tier == "team_lead"
    assert clocks(state)["next_update"] == "breached"
    next_update = next(c for c in state.clocks if c.target == "next_update")
    assert next_update.due_at == T0 + timedelta(days=3, hours=4)  # moved by the 22h pause
    assert next_update.warned


def test_remedies_guarantees_and_resolution() -> None:
    state = at(MOMENTS.remedy_accepted)
    assert state.escalation_tier == "agent"  # de-escalated after the team lead's update
    assert [(r.remedy_id, r.state) for r in state.remedies] == [
        (str(REMEDY_REPLACEMENT), "declined"),
        (str(REMEDY_REFUND), "accepted"),
    ]
    assert state.guarantees == ()
    resolved = at(MOMENTS.resolved)
    assert resolved.status == "resolved"
    assert resolved.resolution is not None
    assert resolved.resolution.outcome == "upheld"
    assert resolved.resolution.ombudsman == "Financial Ombudsman Service"
    refund = next(r for r in resolved.remedies if r.remedy_id == str(REMEDY_REFUND))
    assert (refund.state, refund.steps, refund.amount) == (
        "fulfilled",
        ("refund_paid", "completed"),
        "49.99 GBP",
    )
    assert [(g.guarantee_id, g.compensation) for g in resolved.guarantees] == [
        (GUARANTEE, ("account_credit 10.00 GBP",))
    ]
    regulatory = next(c for c in resolved.clocks if c.target == "regulatory")
    assert regulatory.state == "met"
    assert regulatory.due_at == T0 + timedelta(days=77)  # extended after the holding reply
    assert resolved.holding_reply_at == T0 + timedelta(days=3, hours=6)


def test_reopened_then_withdrawn() -> None:
    reopened = at(MOMENTS.reopened)
    assert (reopened.status, reopened.resolution, reopened.reopened) == ("open", None, 1)
    assert reopened.satisfaction == 8
    assert [i.state for i in reopened.incidents] == ["resolved"]
    end = at(MOMENTS.end)
    assert end.status == "withdrawn"
    assert end.events_applied == len(complaint_story())
    assert end.unhandled_types == ()


def test_the_answer_depends_on_the_events_not_on_how_they_were_read() -> None:
    """Topics are read one after another, copies arrive twice: same state."""
    events = complaint_story()
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    for moment in (MOMENTS.escalated, MOMENTS.resolved, MOMENTS.end):
        assert at(moment, [*shuffled, *events[:10]]) == at(moment, events)


def test_evolve_does_not_change_its_input() -> None:
    before = ComplaintState(complaint_id=CID, as_of=MOMENTS.end)
    after = evolve(before, complaint_story()[0])
    assert before.status == "unknown" and after.status == "received"
