"""The event contract: wire round trips, deterministic ids, and clear decode errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redress_events import Envelope, InvalidEvent, decode_record, derived_event_id, encode_envelope
from redress_events.catalogue import ComplaintPrioritized, ComplaintReceived
from redress_events.registry import registered_event_types

from tests.support.complaints import complaint_body


def received(**overrides: object) -> Envelope[ComplaintReceived]:
    complaint_id = uuid.uuid4()
    data = ComplaintReceived(
        **complaint_body(**overrides), complaint_id=complaint_id, received_at=datetime.now(UTC)
    )
    return Envelope.new(data, subject=str(complaint_id), source="/redress/intake")


def test_binary_mode_round_trip_keeps_every_attribute() -> None:
    envelope = received()
    key, value, headers = encode_envelope(envelope)
    names = dict(headers)
    assert key == envelope.subject.encode()
    assert names["ce_type"] == b"redress.complaint.received.v1"
    assert names["ce_subject"] == envelope.subject.encode()
    assert names["ce_specversion"] == b"1.0"
    assert decode_record(key, value, headers) == envelope


def test_derived_event_carries_cause_and_deterministic_id() -> None:
    cause = received()
    data = ComplaintPrioritized(
        complaint_id=cause.data.complaint_id,
        priority="P1",
        matched_rules=("r1",),
        rules_version="v1",
        reason="because",
    )
    first = Envelope.new(
        data,
        subject=cause.subject,
        source="/r",
        cause=cause,
        event_id=derived_event_id(cause.id, "prioritized", "v1"),
    )
    again = Envelope.new(
        data,
        subject=cause.subject,
        source="/r",
        cause=cause,
        event_id=derived_event_id(cause.id, "prioritized", "v1"),
    )
    assert first.id == again.id
    assert first.causation_id == cause.id
    assert first.correlation_id == cause.id
    with pytest.raises(ValueError, match="deterministic"):
        Envelope.new(data, subject=cause.subject, source="/r", cause=cause)


@given(st.uuids(), st.text(max_size=20), st.text(max_size=20))
def test_derived_ids_differ_by_reason(cause: uuid.UUID, a: str, b: str) -> None:
    assert (derived_event_id(cause, a) == derived_event_id(cause, b)) == (a == b)


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ([], b"{}", "missing_attribute"),
        (
            [
                ("ce_id", b"x"),
                ("ce_source", b"s"),
                ("ce_type", b"nope.v1"),
                ("ce_specversion", b"1.0"),
            ],
            b"{}",
            "unknown_type",
        ),
        (
            [
                ("ce_id", str(uuid.uuid4()).encode()),
                ("ce_source", b"s"),
                ("ce_type", b"redress.complaint.received.v1"),
                ("ce_specversion", b"1.0"),
            ],
            b'{"channel": 3}',
            "schema_violation",
        ),
        ([("ce_id", b"\xff\xfe")], b"{}", "bad_header_encoding"),
    ],
)
def test_bad_records_raise_invalid_event_with_a_reason(
    headers: list[tuple[str, bytes]], value: bytes, reason: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_record(b"k", value, headers)
    assert caught.value.reason == reason


def test_catalogue_types_are_versioned_and_unique() -> None:
    types = registered_event_types()
    assert "redress.complaint.received.v1" in types
    for name in types:
        assert name.startswith("redress.") and name.rsplit(".", 1)[1].startswith("v")


def test_events_are_immutable() -> None:
    envelope = received()
    with pytest.raises(Exception):  # noqa: B017
        envelope.data.product = "other"  # type: ignore[misc]
