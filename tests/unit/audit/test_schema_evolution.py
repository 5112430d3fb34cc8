"""Every stored version of every event still reads (old ones upcast), and stays replayable."""

from __future__ import annotations

import json

import pytest
from redress_audit.asof import state_as_of
from redress_audit.records import decode
from redress_events import InvalidEvent, decode_record
from redress_events.registry import registered_event_types
from redress_events.upcasting import UpcastError, registered_upcasters, upcast

from tests.fixtures.events.fixtures import load_fixtures
from tests.fixtures.events.story import STORY_COMPLAINT, STORY_INCIDENT

FIXTURES = load_fixtures()


def test_every_catalogued_type_has_a_fixture_of_its_current_version() -> None:
    have = {(f.type, f.schema_version) for f in FIXTURES}
    missing = [
        f"{name} v{cls.schema_version}"
        for name, cls in registered_event_types().items()
        if (name, cls.schema_version) not in have
    ]
    assert not missing, (
        f"no fixture for {missing}: run `.venv/bin/python -m tests.fixtures.events.fixtures`"
    )


def test_every_upcaster_has_a_fixture_of_the_version_it_reads() -> None:
    have = {(f.type, f.schema_version) for f in FIXTURES}
    assert set(registered_upcasters()) <= have


@pytest.mark.parametrize(
    "fixture", FIXTURES, ids=[f.path.parent.name + "/" + f.type for f in FIXTURES]
)
def test_every_fixture_decodes_to_the_current_schema(fixture) -> None:  # type: ignore[no-untyped-def]
    envelope = decode(fixture.record)
    data_class = registered_event_types()[fixture.type]
    assert type(envelope.data) is data_class
    assert envelope.subject == fixture.record.key.decode()
    if fixture.expected is not None:
        assert envelope.data.model_dump(mode="json") == fixture.expected
    elif fixture.schema_version == data_class.schema_version:
        # Current version: reading and writing again gives the stored bytes.
        assert envelope.data.model_dump_json(by_alias=True).encode() == fixture.record.value


def test_the_synthetic_old_version_is_upcast_not_rejected() -> None:
    old = next(f for f in FIXTURES if f.schema_version == 0)
    raw = json.loads(old.record.value or b"")
    assert "rules" in raw and "matched_rules" not in raw  # really the old shape
    envelope = decode(old.record)
    assert envelope.data.matched_rules == ("billing-dispute", "small-amount")  # type: ignore[attr-defined]
    assert envelope.data.rules_version == "2025-11-pilot"  # type: ignore[attr-defined]


def test_replaying_the_fixtures_folds_every_type() -> None:
    """The fixtures as a log: each decodes and the as-of fold understands every type."""
    events = [decode(f.record) for f in FIXTURES]
    end = max(e.time for e in events)
    old = next(f for f in FIXTURES if f.schema_version == 0)
    old_id = (old.record.key or b"").decode()
    state = state_as_of(
        complaint_id=old_id, events=[e for e in events if e.subject == old_id], at=end
    )
    assert (state.status, state.priority, state.priority_rules) == (
        "open",
        "P3",
        ("billing-dispute", "small-amount"),
    )
    story = state_as_of(
        complaint_id=str(STORY_COMPLAINT),
        events=[e for e in events if e.subject in (str(STORY_COMPLAINT), str(STORY_INCIDENT))],
        at=end,
    )
    assert story.unhandled_types == ()
    assert story.events_applied == len(registered_event_types())
    assert story.status == "withdrawn"


def test_a_newer_version_than_this_build_knows_is_refused_clearly() -> None:
    current = next(
        f for f in FIXTURES if f.type == "redress.routing.prioritized.v1" and f.schema_version == 1
    )
    headers = [
        (name, b"7" if name == "ce_dataschemaversion" else value)
        for name, value in current.record.headers
    ]
    with pytest.raises(InvalidEvent) as caught:
        decode_record(current.record.key, current.record.value, headers)
    assert caught.value.reason == "unsupported_schema_version"


def test_a_missing_upcaster_is_named() -> None:
    with pytest.raises(UpcastError, match=r"redress\.case\.resolved\.v1 from version 0"):
        upcast(event_type="redress.case.resolved.v1", from_version=0, to_version=1, data={})
    data = {"rules": ["a"], "ruleset": "r", "explanation": "e", "priority": "P1"}
    upcast(event_type="redress.routing.prioritized.v1", from_version=0, to_version=1, data=data)
    assert "rules" in data  # the input is not modified
