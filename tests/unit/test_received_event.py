"""intake builds ComplaintReceived from the validated submission's own values (its hot path,
see `build_received_event`). These hold it to the event validation builds from the submission as
a caller sent it: the same model, the same record bytes, the same chain digest."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redress_events import Envelope
from redress_events.catalogue import ComplaintReceived, ComplaintSubmission
from redress_events.chain import ChainSealer
from redress_events.wire import encode_envelope
from redress_intake.complaints import build_received_event

from tests.support.complaints import random_complaint

T0 = datetime(2026, 11, 26, 7, tzinfo=UTC)


def validated_event(
    submission: ComplaintSubmission,
    *,
    complaint_id: uuid.UUID,
    event_id: uuid.UUID,
    received_at: datetime,
    submitted_via: str,
) -> Envelope[ComplaintReceived]:
    """The event as validation builds it, from the submission as a caller sent it."""
    data = ComplaintReceived.model_validate(
        {
            **submission.model_dump(mode="json"),
            "complaint_id": str(complaint_id),
            "received_at": received_at.isoformat(),
            "submitted_via": submitted_via,
        }
    )
    return Envelope[ComplaintReceived].model_validate(
        {
            "id": str(event_id),
            "source": "/redress/intake",
            "type": data.event_type,
            "subject": str(complaint_id),
            "time": received_at.isoformat(),
            "data": data,
        }
    )


def sealed(envelope: Envelope[ComplaintReceived]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    key, value, headers = encode_envelope(envelope)
    return key, value, ChainSealer().batch().seal(headers=headers, value=value)


extras = st.fixed_dictionaries(
    {},
    optional={
        "remedy_sought": st.sampled_from(["refund", "replacement", "apology", "account_credit"]),
        "amount_at_stake": st.fixed_dictionaries(
            {
                "amount": st.decimals(min_value=0, max_value=10**6, places=2).map(str),
                "currency": st.sampled_from(["EUR", "GBP", "USD"]),
            }
        ),
        "external_reference": st.text(max_size=128),
        "description": st.text(min_size=1, max_size=300),
        "public": st.booleans(),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    extra=extras,
    via=st.sampled_from(["http", "kafka"]),
    seconds=st.integers(0, 10**8),
)
def test_the_event_built_without_revalidation_is_the_validated_one(
    seed: int, extra: dict[str, object], via: str, seconds: int
) -> None:
    submission = ComplaintSubmission.model_validate(
        {**random_complaint(random.Random(seed)), **extra}
    )
    complaint_id, event_id = uuid.uuid4(), uuid.uuid4()
    received_at = T0 + timedelta(seconds=seconds, microseconds=seed)
    built = build_received_event(
        submission=submission,
        complaint_id=complaint_id,
        event_id=event_id,
        source="/redress/intake",
        submitted_via=via,  # type: ignore[arg-type]
        received_at=received_at,
    )
    expected = validated_event(
        submission,
        complaint_id=complaint_id,
        event_id=event_id,
        received_at=received_at,
        submitted_via=via,
    )
    assert built == expected
    assert built.data == expected.data
    assert sealed(built) == sealed(expected)


@pytest.mark.parametrize("via", ["http", "kafka"])
def test_the_event_carries_no_attribute_a_validated_event_lacks(via: str) -> None:
    submission = ComplaintSubmission.model_validate(random_complaint(random.Random(7)))
    built = build_received_event(
        submission=submission,
        complaint_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        source="/redress/intake",
        submitted_via=via,  # type: ignore[arg-type]
    )
    assert set(built.model_dump()) == set(Envelope.model_fields) - {"position"}
    assert set(built.data.model_dump()) == set(ComplaintReceived.model_fields)
    assert built.time == built.data.received_at
    assert built.time.tzinfo is not None
