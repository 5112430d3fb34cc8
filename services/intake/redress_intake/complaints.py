"""Receiving a complaint: the one service function both doors (HTTP, inbound Kafka) use."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import Counter
from redress_events import Envelope, derived_event_id
from redress_events.catalogue import ComplaintReceived, ComplaintSubmission
from redress_kafka.producer import BrokerUnavailable, EventProducer
from redress_observability.metrics import EVENTS_PUBLISHED

from redress_intake.idempotency import (
    DIGEST_HEADER,
    IdempotencyStore,
    StoredResponse,
    complaint_id_for,
    fingerprint,
)

COMPLAINTS_RECEIVED = Counter(
    "redress_complaints_received_total",
    "Complaints accepted (acknowledged by Kafka), by channel and category",
    ["channel", "category"],
)


# Parametrized once: `Envelope[...]` looks its generic class up anew on every use.
_RECEIVED_ENVELOPE = Envelope[ComplaintReceived]


@dataclass(frozen=True)
class Receipt:
    complaint_id: uuid.UUID
    event_id: uuid.UUID
    replayed: bool


def build_received_event(
    *,
    submission: ComplaintSubmission,
    complaint_id: uuid.UUID,
    event_id: uuid.UUID,
    source: str,
    submitted_via: Literal["http", "kafka"],
    received_at: datetime | None = None,
) -> Envelope[ComplaintReceived]:
    received_at = received_at or datetime.now(UTC)
    # The submission's fields as they are: its `__dict__` holds the validated values (nested
    # models as instances, which pydantic takes without validating them again). Not
    # `dict(submission)`: that first looks for a `keys` attribute, and pydantic's failed attribute
    # lookup cost more than validating the whole event (5 µs against 10 µs per event built).
    data = ComplaintReceived(
        **submission.__dict__,
        complaint_id=complaint_id,
        received_at=received_at,
        submitted_via=submitted_via,
    )
    return _RECEIVED_ENVELOPE(
        id=event_id,
        source=source,
        type=data.event_type,
        subject=str(complaint_id),
        time=received_at,
        data=data,
    )


async def receive_complaint(
    *,
    submission: ComplaintSubmission,
    caller: str,
    idempotency_key: str | None,
    producer: EventProducer,
    store: IdempotencyStore,
    source: str,
) -> Receipt:
    """Append ComplaintReceived and return once the broker acknowledged it (acks=all).

    Raises BrokerUnavailable (nothing reported as accepted) or IdempotencyConflict."""
    if idempotency_key is None:
        complaint_id = complaint_id_for(caller, None)
        return await _append(submission, complaint_id, uuid.uuid4(), producer, source)

    body = fingerprint(submission.model_dump_json().encode())
    complaint_id = complaint_id_for(caller, idempotency_key)
    try:
        async with store.lock(complaint_id):
            stored = store.get(complaint_id, body)
            if stored is None and not store.complete:
                # Just started: the log may hold this key, written by another replica or by this
                # one before a restart. Answer once it has been read, not with a second version.
                if not await store.wait_complete():
                    raise BrokerUnavailable("still reading the keys accepted before this start")
                stored = store.get(complaint_id, body)
            if stored is not None:
                return Receipt(
                    stored.complaint_id, derived_event_id(stored.complaint_id, "received"), True
                )
            # A retry of an attempt whose outcome is unknown (no ack in time, or the client went
            # away) sends that attempt's very event again: should both land, they are one event
            # written twice, byte for byte, not two versions of it (received_at differed).
            envelope = store.unconfirmed(complaint_id, body) or build_received_event(
                submission=submission,
                complaint_id=complaint_id,
                event_id=derived_event_id(complaint_id, "received"),
                source=source,
                submitted_via="http",
            )
            try:
                receipt = await _publish(
                    envelope, submission, producer, extra_headers=((DIGEST_HEADER, body.encode()),)
                )
            except BaseException:
                store.remember_unconfirmed(complaint_id, body, envelope)
                raise
            store.put(StoredResponse(complaint_id, body, time.monotonic()))
    finally:
        # Also after an early answer: a lock per replayed key would otherwise stay for ever.
        store.release(complaint_id)
    return receipt


async def _append(
    submission: ComplaintSubmission,
    complaint_id: uuid.UUID,
    event_id: uuid.UUID,
    producer: EventProducer,
    source: str,
) -> Receipt:
    envelope = build_received_event(
        submission=submission,
        complaint_id=complaint_id,
        event_id=event_id,
        source=source,
        submitted_via="http",
    )
    return await _publish(envelope, submission, producer)


async def _publish(
    envelope: Envelope[ComplaintReceived],
    submission: ComplaintSubmission,
    producer: EventProducer,
    *,
    extra_headers: tuple[tuple[str, bytes], ...] = (),
) -> Receipt:
    await producer.publish(envelope, extra_headers=extra_headers)
    _child(EVENTS_PUBLISHED, "intake", envelope.topic.value, envelope.type).inc()
    _child(COMPLAINTS_RECEIVED, submission.channel.value, submission.category).inc()
    return Receipt(envelope.data.complaint_id, envelope.id, False)


# Metric children by label values, looked up once: `labels()` takes a lock and checks its
# arguments on every call. Holds what the metrics themselves hold, no more.
_CHILDREN: dict[tuple[object, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), *labels)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*labels)
    return child
