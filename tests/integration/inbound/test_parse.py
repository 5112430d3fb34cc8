"""The inbound door's pure core: CloudEvents in both Kafka binding modes, every reason a record
is refused, and deterministic canonical events. No broker needed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from redress_events import InvalidEvent
from redress_events.catalogue import ComplaintReceived, ComplaintWithdrawn
from redress_intake.inbound import (
    SUBMITTED_TYPE,
    canonical_event,
    inbound_event_id,
    parse_inbound,
)

from tests.support.complaints import complaint_body

COMPLAINT = uuid.UUID("5b0c1f5e-3a52-4c3e-9a57-2f9d4c1b7e10")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def binary(
    data: Any = None, *, key: str | None = str(COMPLAINT), drop: str = "", **attrs: str
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    base = {
        "specversion": "1.0",
        "id": "crm-42",
        "source": "/crm/eu",
        "type": SUBMITTED_TYPE,
        "subject": str(COMPLAINT),
        **attrs,
    }
    headers = [(f"ce_{k}", v.encode()) for k, v in base.items() if k != drop]
    headers.append(("content-type", b"application/json"))
    value = data if isinstance(data, bytes) else json.dumps(data or complaint_body()).encode()
    return (key.encode() if key is not None else None), value, headers


def structured(document: dict[str, Any], *, key: str = str(COMPLAINT)) -> tuple[bytes, bytes, Any]:
    return (
        key.encode(),
        json.dumps(document).encode(),
        [("content-type", b"application/cloudevents+json; charset=utf-8")],
    )


def structured_doc(**overrides: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "crm-43",
        "source": "/crm/eu",
        "type": SUBMITTED_TYPE,
        "subject": str(COMPLAINT),
        "time": "2026-11-25T11:59:00Z",
        "datacontenttype": "application/json",
        "data": complaint_body(),
        **overrides,
    }


def test_binary_submission_becomes_complaint_received_with_the_publishers_id() -> None:
    event = parse_inbound(*binary())
    assert event.mode == "binary" and event.subject == COMPLAINT
    envelope = canonical_event(event, source="/redress/intake", received_at=NOW)
    assert isinstance(envelope.data, ComplaintReceived)
    assert envelope.data.complaint_id == COMPLAINT
    assert envelope.subject == str(COMPLAINT)
    assert envelope.data.submitted_via == "kafka"
    assert envelope.id == inbound_event_id("/crm/eu", "crm-42")
    # Reprocessing the same record builds the very same event.
    assert canonical_event(parse_inbound(*binary()), source="/redress/intake", received_at=NOW) == (
        envelope
    )


def test_structured_mode_and_other_types() -> None:
    event = parse_inbound(*structured(structured_doc()))
    assert event.mode == "structured" and event.time == datetime(2026, 11, 25, 11, 59, tzinfo=UTC)
    withdrawn = structured_doc(
        type="redress.complaint.withdrawn.v1",
        data={"complaint_id": str(COMPLAINT), "withdrawn_at": "2026-11-25T10:00:00Z"},
    )
    envelope = canonical_event(
        parse_inbound(*structured(withdrawn)), source="/redress/intake", received_at=NOW
    )
    assert isinstance(envelope.data, ComplaintWithdrawn)
    assert envelope.type == "redress.complaint.withdrawn.v1"


def test_event_ids_depend_on_source_and_id_only() -> None:
    assert inbound_event_id("/a", "1") == inbound_event_id("/a", "1")
    assert inbound_event_id("/a", "1") != inbound_event_id("/b", "1")
    assert inbound_event_id("a:b", "c") != inbound_event_id("a", "b:c")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (binary(b"\x00\x01not json"), "unparsable"),
        (binary(b"[" * 100_000 + b"]" * 100_000), "unparsable"),  # nested past any parser
        (
            (
                str(COMPLAINT).encode(),
                b"{nope",
                [("content-type", b"application/cloudevents+json")],
            ),
            "unparsable",
        ),
        (
            (
                str(COMPLAINT).encode(),
                b"[1, 2]",
                [("content-type", b"application/cloudevents+json")],
            ),
            "unparsable",
        ),
        (binary(drop="source"), "missing_attribute"),
        (binary(drop="subject"), "missing_attribute"),
        (binary(drop="id"), "missing_attribute"),
        (binary(specversion="0.3"), "bad_attribute"),
        (binary(subject="not-a-uuid", key="not-a-uuid"), "bad_attribute"),
        (binary(time="yesterday"), "bad_attribute"),
        (structured(structured_doc(id=7)), "bad_attribute"),
        (structured(structured_doc(datacontenttype="text/plain")), "bad_attribute"),
        (binary(type="com.example.unknown.v1"), "unknown_type"),
        (binary(type="redress.complaint.received.v1"), "unknown_type"),
        (binary(complaint_body(channel="pigeon")), "schema_violation"),
        (binary({"unexpected": True}), "schema_violation"),
        (binary(key=str(uuid.uuid4())), "key_mismatch"),
        (binary(key=None), "key_mismatch"),
        (binary({"x": "y" * 1_048_576}), "too_large"),
    ],
)
def test_bad_records_are_refused_with_a_reason(record: Any, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_inbound(*record)
    assert caught.value.reason == reason, caught.value
    if reason in ("schema_violation", "missing_attribute", "bad_attribute"):
        assert caught.value.errors, "errors name the failing fields"


def test_schema_errors_name_fields_without_echoing_values() -> None:
    body = complaint_body(channel="pigeon")
    body["customer"] = {**body["customer"], "email": "not-an-email@"}
    with pytest.raises(InvalidEvent) as caught:
        parse_inbound(*binary(body))
    locs = {tuple(e["loc"]) for e in caught.value.errors}
    assert ("channel",) in locs and ("customer", "email") in locs
    assert "not-an-email@" not in json.dumps(caught.value.errors)


def test_data_complaint_id_must_match_subject() -> None:
    withdrawn = structured_doc(
        type="redress.complaint.withdrawn.v1",
        data={"complaint_id": str(uuid.uuid4()), "withdrawn_at": "2026-11-25T10:00:00Z"},
    )
    with pytest.raises(InvalidEvent) as caught:
        parse_inbound(*structured(withdrawn))
    assert caught.value.reason == "schema_violation"
