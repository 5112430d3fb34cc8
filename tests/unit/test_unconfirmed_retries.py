"""A retry of a request whose outcome was unknown (no acknowledgement in time) sends the very
events of the first attempt again. Found by the three-broker chaos scenario: during a leader
failover a first attempt timed out (503) yet was written later, and the retry wrote the same
event id again with a later timestamp — one event id, two versions in the log."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redress_events.catalogue import ComplaintSubmission
from redress_events.wire import encode_envelope
from redress_intake.complaints import receive_complaint
from redress_intake.idempotency import IdempotencyConflict, IdempotencyStore
from redress_kafka.producer import BrokerUnavailable
from redress_recovery import cases as recovery_cases
from redress_recovery.casebook import Casebook
from redress_recovery.cases import CaseWork, ComplaintLocks, RequestFingerprints, carry_out

from tests.support.complaints import complaint_body
from tests.unit.recovery.cases import POLICY, command, received


class FlakyProducer:
    """Fails the first `failures` publishes as an ack timeout would (after handing the records
    to the client, so they may still be written); records every record it was handed."""

    def __init__(self, failures: int = 1) -> None:
        self.failures = failures
        self.sent: list[bytes] = []
        self.extra_headers: list[tuple[tuple[str, bytes], ...]] = []

    async def publish(self, envelope: Any, *, extra_headers: Any = ()) -> None:
        await self.publish_many([envelope], extra_headers=extra_headers)

    async def publish_many(self, envelopes: list[Any], *, extra_headers: Any = ()) -> None:
        self.sent += [encode_envelope(e)[1] for e in envelopes]
        self.extra_headers.append(tuple(extra_headers))
        if self.failures:
            self.failures -= 1
            raise BrokerUnavailable("no acknowledgement within 5s")


def ticking_clock() -> Any:
    """Each call a second later, so a rebuilt event would differ from the first."""
    ticks = itertools.count()
    start = datetime(2026, 11, 25, 9, tzinfo=UTC)
    return lambda: start + timedelta(seconds=next(ticks))


async def test_intake_retry_after_a_timeout_sends_the_same_bytes() -> None:
    producer = FlakyProducer(failures=1)
    store = IdempotencyStore(ttl_s=3600, max_keys=100)
    submission = ComplaintSubmission(**complaint_body())
    kwargs: dict[str, Any] = {
        "submission": submission,
        "caller": "crm",
        "idempotency_key": "k-1",
        "producer": producer,
        "store": store,
        "source": "/redress/intake",
    }
    with pytest.raises(BrokerUnavailable):
        await receive_complaint(**kwargs)
    await asyncio.sleep(0.01)  # a rebuilt event would carry a later received_at
    receipt = await receive_complaint(**kwargs)
    assert not receipt.replayed
    assert len(producer.sent) == 2
    assert producer.sent[0] == producer.sent[1]
    again = await receive_complaint(**kwargs)  # now known to be written: nothing appended
    assert again.replayed and again.event_id == receipt.event_id
    assert len(producer.sent) == 2


async def test_intake_refuses_another_body_under_a_key_whose_first_attempt_may_land() -> None:
    store = IdempotencyStore(ttl_s=3600, max_keys=100)
    common: dict[str, Any] = {
        "caller": "crm",
        "idempotency_key": "k-2",
        "producer": FlakyProducer(failures=1),
        "store": store,
        "source": "/redress/intake",
    }
    with pytest.raises(BrokerUnavailable):
        await receive_complaint(submission=ComplaintSubmission(**complaint_body()), **common)
    other = ComplaintSubmission(**complaint_body(description="Something else entirely broke."))
    with pytest.raises(IdempotencyConflict):
        await receive_complaint(submission=other, **common)


async def test_recovery_retry_after_a_timeout_sends_the_same_bytes() -> None:
    from redress_events import Envelope, EventData

    casebook = Casebook()
    casebook.apply(Envelope[EventData].new(received(), subject="c", source="/t"))
    producer = FlakyProducer(failures=1)
    work = CaseWork(
        casebook=casebook,
        producer=producer,  # type: ignore[arg-type]
        policy=POLICY,
        fingerprints=RequestFingerprints(ttl_s=3600, max_keys=100),
        locks=ComplaintLocks(),
        source="/redress/recovery",
        clock=ticking_clock(),
        is_caught_up=lambda: True,
    )
    kwargs: dict[str, Any] = {
        "command": command("propose_remedy"),
        "action": "propose_remedy",
        "caller": "agent-ui",
        "idempotency_key": "r-1",
        "body_fingerprint": "body-a",
        "work": work,
    }
    with pytest.raises(BrokerUnavailable):
        await carry_out(**kwargs)
    done = await carry_out(**kwargs)
    assert not done.replayed
    first, second = producer.sent[: len(done.event_ids)], producer.sent[len(done.event_ids) :]
    assert first == second
    with pytest.raises(recovery_cases.IdempotencyConflict):
        await carry_out(**{**kwargs, "body_fingerprint": "body-b"})
    replay = await carry_out(**kwargs)
    assert replay.replayed
