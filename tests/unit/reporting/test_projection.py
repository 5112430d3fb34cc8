"""The pure projection: every catalogued event handled; order of topics and batching irrelevant."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from redress_events import Envelope, EventData, registered_event_types
from redress_events.values import Priority
from redress_reporting.projection import (
    ComplaintView,
    IncidentView,
    from_cents,
    project,
    project_incident,
    timeline_entry,
)
from redress_reporting.store import ReadModelStore, create_store_engine

from tests.unit.reporting.stories import (
    Story,
    cid,
    incident_events,
    incident_id,
    with_positions,
)


def fold(events: list[Envelope[EventData]]) -> ComplaintView | None:
    view: ComplaintView | None = None
    for event in events:
        view = project(view, event)
    return view


def full_story() -> Story:
    return Story(1).full_life(breach=True).linked(incident_id(1))


def test_the_stories_use_every_catalogued_event_type() -> None:
    """If the catalogue gains an event type, this fails until the projection handles it."""
    events = full_story().events + Story(2).received().withdrawn().events + incident_events(1)
    assert {e.type for e in events} == set(registered_event_types())


def test_a_full_life_projects_every_fact() -> None:
    view = fold(full_story().events)
    assert view is not None
    assert view.status == "resolved"
    assert (view.priority, view.queue, view.priority_rules) == ("P2", "defects", ("safety-injury",))
    assert (view.tier, view.channel, view.product, view.jurisdiction) == (
        "standard",
        "web",
        "kettle-2000",
        "GB",
    )
    assert view.customer_name == "Ada Lovelace" and view.customer_email == "ada@example.com"
    assert view.acknowledged_by == "agent-7"
    assert view.first_response_at == Story(1).at(30)  # agent reply; the external one was later
    assert view.responses == 2
    assert view.first_resolved_at == Story(1).at(250)
    assert view.resolved_at == Story(1).at(320)
    assert view.reopen_count == 1
    assert view.satisfaction_score == 8
    assert view.escalations == 1 and view.escalation_tier == "agent"  # escalated, then back
    assert view.escalation_peak == "team_lead"
    assert view.incident_id == incident_id(1) and view.incident_priority == "P1"
    assert view.breached is True
    clocks = {c.target: c for c in view.sla}
    assert clocks["first_response"].state == "met"
    assert clocks["first_response"].elapsed_seconds == 1800.0
    assert clocks["resolution"].state == "breached"
    assert clocks["resolution"].warned_at is not None
    assert clocks["resolution"].due_at == Story(1).at(60 * 24 * 7 + 60)  # moved by the pause
    assert clocks["regulatory"].extensions == 1
    assert clocks["regulatory"].due_at == Story(1).at(60 * 24 * 70)
    remedies = {r.remedy_type: r for r in view.remedies}
    assert remedies["repair"].status == "declined"
    assert remedies["refund"].status == "given"
    assert remedies["refund"].outside_band is True
    assert from_cents(remedies["refund"].amount_cents) == Decimal("49.99")
    assert remedies["refund"].remedy_sought == "replacement"
    (guarantee,) = view.guarantees
    assert guarantee.guarantee_id == "late-resolution"
    assert (guarantee.amount_cents, guarantee.currency) == (1000, "GBP")


def test_status_follows_the_facts() -> None:
    story = Story(3).received()
    assert fold(story.events).status == "received"  # type: ignore[union-attr]
    story.routed()
    assert fold(story.events).status == "open"  # type: ignore[union-attr]
    story.withdrawn()
    assert fold(story.events).status == "withdrawn"  # type: ignore[union-attr]


def test_incident_events_build_the_incident_not_a_complaint() -> None:
    detected, resolved = incident_events(1)
    assert project(None, detected) is None
    incident = project_incident(None, detected)
    assert isinstance(incident, IncidentView) and incident.status == "open"
    incident = project_incident(incident, resolved)
    assert incident is not None and incident.status == "resolved"
    assert incident.complaints_linked == 3 and incident.priority == "P1"


def test_timeline_names_actor_and_rule_and_keeps_personal_data_apart() -> None:
    entries = {e.type: timeline_entry(e) for e in full_story().events}
    prioritized = entries["redress.routing.prioritized.v1"]
    assert prioritized.rule == "safety-injury@r7" and prioritized.reason == "injury reported"
    assert prioritized.actor == "redress/routing"
    assert entries["redress.routing.sla_clock_started.v1"].rule == "uk-standard@3"
    assert entries["redress.routing.escalated.v1"].rule == "esc-resolution-1"
    assert entries["redress.case.guarantee_triggered.v1"].rule == "late-resolution@1"
    assert entries["redress.case.responded.v1"].actor == "agent-7"
    received = entries["redress.complaint.received.v1"]
    assert received.actor == "customer"
    assert "customer" not in received.summary and "description" not in received.summary
    assert received.personal["customer"]["email"] == "ada@example.com"
    assert "Ada" not in repr(received.summary)
    assert entries["redress.case.responded.v1"].personal == {"message": "Sorry, looking now."}


def _interleave(events: list[Envelope[EventData]], rng: random.Random) -> list[Envelope[EventData]]:
    """A random interleaving that keeps each topic's own order (what a consumer may see)."""
    queues: dict[str, list[Envelope[EventData]]] = {}
    for event in events:
        queues.setdefault(event.data.topic.value, []).append(event)
    merged: list[Envelope[EventData]] = []
    while queues:
        topic = rng.choice(sorted(queues))
        merged.append(queues[topic].pop(0))
        if not queues[topic]:
            del queues[topic]
    return merged


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_interleaving_of_topics_gives_the_same_view(rng: random.Random) -> None:
    events = full_story().events
    assert fold(_interleave(events, rng)) == fold(events)


def test_a_late_older_decision_does_not_override_a_newer_one() -> None:
    story = Story(4).received().routed(priority="P3")
    older = story.events[1]
    newer = older.model_copy(
        update={
            "id": older.id.__class__(int=older.id.int + 1),
            "time": older.time + timedelta(minutes=5),
            "data": older.data.model_copy(update={"priority": Priority.P1}),
        }
    )
    in_order = fold([*story.events, newer])
    reversed_ = fold([story.events[0], newer, *story.events[1:]])
    assert in_order is not None and reversed_ is not None
    assert in_order.priority == reversed_.priority == "P1"
    assert replace(in_order) == reversed_


def _rows(store: ReadModelStore) -> dict[str, list[dict[str, object]]]:
    return {name: list(store.iter_table(name)) for name in store.counts()}


def _apply_in_batches(store: ReadModelStore, events: list[Envelope[EventData]], size: int) -> int:
    applied = 0
    for start in range(0, len(events), size):
        batch = events[start : start + size]
        offsets = {(e.position[0], e.position[1]): e.position[2] + 1 for e in batch if e.position}
        applied += store.apply(batch, group_id="g", next_offsets=offsets).applied
    return applied


def test_replay_equals_live_whatever_the_batching(tmp_path: Path) -> None:
    events = with_positions(
        [
            *Story(1).full_life(breach=True).linked(incident_id(1)).events,
            *Story(2, customer_id="C-2", tier="vip").full_life(satisfaction=3).events,
            *Story(3).received().routed().withdrawn().events,
            *incident_events(1),
        ]
    )
    one_by_one = ReadModelStore(create_store_engine(f"sqlite:///{tmp_path / 'a.db'}"))
    all_at_once = ReadModelStore(create_store_engine(f"sqlite:///{tmp_path / 'b.db'}"))
    assert _apply_in_batches(one_by_one, events, 1) == len(events)
    assert _apply_in_batches(all_at_once, events, 1000) == len(events)
    rows = _rows(one_by_one)
    assert rows == _rows(all_at_once)
    assert len(rows["complaints"]) == 3 and len(rows["incidents"]) == 1
    assert one_by_one.offsets("g") == all_at_once.offsets("g")
    # Redelivery of everything: nothing applied twice, nothing changes.
    assert _apply_in_batches(all_at_once, events, 7) == 0
    assert _rows(all_at_once) == rows
    assert cid(1) in {r["complaint_id"] for r in rows["complaints"]}
