"""Surge detection: sliding windows against a baseline, one incident per surge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redress_events.catalogue.routing import (
    ComplaintLinkedToIncident,
    IncidentDetected,
    IncidentResolved,
)
from redress_routing.config import SurgeSection
from redress_routing.surge import SurgeDetector, SurgeEmit, SurgeState

POLICY = SurgeSection(
    window_minutes=60, bucket_minutes=5, baseline_windows=24, factor=3, min_count=20
)
START = datetime(2026, 11, 23, 8, tzinfo=UTC)


def feed(
    detector: SurgeDetector, state: SurgeState, times: list[datetime]
) -> tuple[SurgeState, list[SurgeEmit]]:
    emitted: list[SurgeEmit] = []
    for at in times:
        state, emits = detector.on_complaint(state, complaint_id=uuid.uuid4(), received_at=at)
        emitted += emits
    return state, emitted


def of(emits: list[SurgeEmit], kind: type) -> list[Any]:
    return [e for e in emits if isinstance(e.data, kind)]


def fresh() -> SurgeState:
    return SurgeState(product="router-x1", category="service")


def test_a_burst_opens_exactly_one_incident_and_links_the_rest() -> None:
    detector = SurgeDetector(POLICY)
    state, emits = feed(detector, fresh(), [START + timedelta(seconds=i) for i in range(200)])
    (detected,) = of(emits, IncidentDetected)
    assert detected.data.count == 20 and detected.data.priority == "P2"
    assert detected.subject == str(detected.data.incident_id)
    linked = of(emits, ComplaintLinkedToIncident)
    assert len(linked) == 181
    assert {e.data.incident_id for e in linked} == {detected.data.incident_id}
    assert state.incident is not None and state.incident.linked == 181


def test_the_incident_id_is_deterministic() -> None:
    times = [START + timedelta(seconds=i) for i in range(25)]
    _, one = feed(SurgeDetector(POLICY), fresh(), times)
    _, two = feed(SurgeDetector(POLICY), fresh(), times)
    assert of(one, IncidentDetected)[0].event_id == of(two, IncidentDetected)[0].event_id
    assert of(one, IncidentDetected)[0].data == of(two, IncidentDetected)[0].data


def test_a_busy_product_needs_factor_times_its_baseline() -> None:
    detector = SurgeDetector(POLICY)
    later = START + timedelta(hours=24)
    now_bucket = int(later.timestamp()) // 300
    # The 24 hours before this hour: 2 complaints every 5 minutes, 24 an hour → threshold 72.
    history = {now_bucket - 12 - i: 2 for i in range(12 * 24)}
    state = fresh().model_copy(update={"buckets": history})
    state, emits = feed(detector, state, [later + timedelta(seconds=i) for i in range(71)])
    assert of(emits, IncidentDetected) == []
    state, emits = feed(detector, state, [later + timedelta(seconds=71)])
    (detected,) = of(emits, IncidentDetected)
    assert (detected.data.count, detected.data.baseline) == (72, 24.0)


def test_below_the_minimum_count_is_no_incident() -> None:
    _, emits = feed(SurgeDetector(POLICY), fresh(), [START] * 19)
    assert emits == []


def test_it_resolves_when_the_window_quiets_down_and_a_new_surge_is_a_new_incident() -> None:
    detector = SurgeDetector(POLICY)
    state, emits = feed(detector, fresh(), [START + timedelta(seconds=i) for i in range(30)])
    (first,) = of(emits, IncidentDetected)
    quiet = START + timedelta(hours=2)
    assert detector.resolution_due(state, quiet)
    assert not detector.resolution_due(state, START + timedelta(minutes=10))
    state, emits = detector.on_tick(state, now=quiet)
    (resolved,) = of(emits, IncidentResolved)
    assert resolved.data.incident_id == first.data.incident_id
    assert resolved.data.complaints_linked == 11
    assert detector.on_tick(state, now=quiet)[1] == []  # once
    # Much later, a new burst: a new incident with a new id.
    again = START + timedelta(days=3)
    state, emits = feed(detector, state, [again + timedelta(seconds=i) for i in range(25)])
    (second,) = of(emits, IncidentDetected)
    assert second.data.incident_id != first.data.incident_id


def test_a_redelivered_complaint_is_not_counted_again() -> None:
    detector = SurgeDetector(POLICY)
    complaint_id = uuid.uuid4()
    state, _ = detector.on_complaint(fresh(), complaint_id=complaint_id, received_at=START)
    again, emits = detector.on_complaint(state, complaint_id=complaint_id, received_at=START)
    assert emits == [] and again is state
    assert sum(state.buckets.values()) == 1


def test_a_complaint_leaves_the_state_it_was_given_unchanged() -> None:
    """The worker stages states through a batch: an earlier state must never change under it."""
    detector = SurgeDetector(POLICY)
    state, _ = feed(detector, fresh(), [START + timedelta(seconds=i) for i in range(25)])
    assert state.incident is not None
    before = state.model_dump()
    new, emits = detector.on_complaint(
        state, complaint_id=uuid.uuid4(), received_at=START + timedelta(minutes=1)
    )
    assert emits and new is not state
    assert state.model_dump() == before
    assert new.incident is not None and new.incident.linked == state.incident.linked + 1
