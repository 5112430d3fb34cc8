"""History rows: one order across topics, causes, the rule behind each decision, no PII."""

from __future__ import annotations

import json
from datetime import timedelta

from redress_audit.history import PERSONAL_FIELDS, history_rows, linked_incidents, ordered
from redress_audit.records import decode

from tests.fixtures.events.story import STORY_INCIDENT, complaint_story, sealed_records


def test_rows_are_in_time_order_with_causes_named() -> None:
    """Read back from topics (so with positions), in whatever order the topics were read."""
    events = [decode(r) for r in sealed_records(complaint_story())]
    rows = history_rows(list(reversed(events)))
    assert [r.event_id for r in rows] == [str(e.id) for e in events]
    assert [r.seq for r in rows] == list(range(1, len(events) + 1))
    prioritized = next(r for r in rows if r.type == "redress.routing.prioritized.v1")
    assert prioritized.cause_type == "redress.complaint.received.v1"
    assert prioritized.rule == {
        "matched_rules": ["safety-injury", "public-channel"],
        "rules_version": "2026-03-01",
    }
    started = next(r for r in rows if r.type == "redress.routing.sla_clock_started.v1")
    assert started.rule == {"policy_id": "uk-fca-disp", "policy_version": "3"}
    guarantee = next(r for r in rows if r.type == "redress.case.guarantee_triggered.v1")
    assert guarantee.rule["guarantee_id"] == "update-within-2-days"
    assert guarantee.cause_type == "redress.routing.sla_breached.v1"


def test_a_cause_comes_first_even_when_its_writer_clock_is_late() -> None:
    events = complaint_story()
    received, prioritized = events[0], events[1]
    late = received.model_copy(update={"time": prioritized.time + timedelta(seconds=30)})
    chronology = ordered([prioritized, late])
    assert [e.id for e in chronology] == [received.id, prioritized.id]


def test_duplicates_are_shown_once_and_missing_causes_say_so() -> None:
    events = complaint_story()
    rows = history_rows([*events[1:], events[3]])  # the received event was not read
    assert len(rows) == len(events) - 1
    assert rows[0].cause == f"(not found) {events[0].id}"


def test_no_personal_data_in_rows() -> None:
    text = json.dumps([r.as_dict() for r in history_rows(complaint_story())])
    for secret in ("Ada Lovelace", "burned my hand", "It still hurts", "photo of the kettle"):
        assert secret not in text
    assert all(not (set(r.detail) & PERSONAL_FIELDS) for r in history_rows(complaint_story()))


def test_linked_incidents() -> None:
    assert linked_incidents(complaint_story()) == [str(STORY_INCIDENT)]
