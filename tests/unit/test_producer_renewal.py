"""The shared producer renews itself when its idempotence state is broken, instead of refusing
every later event (as aiokafka's idempotent producer does after some broker restarts)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber
from redress_events import Envelope
from redress_events.catalogue import ComplaintWithdrawn
from redress_kafka.producer import RENEW_AFTER_TIMEOUTS, BrokerUnavailable, EventProducer
from redress_kafka.settings import KafkaSettings


class FailingKafkaProducer:
    """Stands in for AIOKafkaProducer: every send fails the way `failure` says."""

    def __init__(self, failure: BaseException | None) -> None:
        self.failure = failure
        self._closed = False
        self._sender = None
        self.client = self

    async def send(self, topic: str, **kwargs: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failure is not None:
            future.set_exception(self.failure)
        return future  # with no failure it never resolves: a timeout

    async def close(self) -> None:
        self._closed = True


def event() -> Envelope[ComplaintWithdrawn]:
    complaint_id = uuid.uuid4()
    return Envelope.new(
        ComplaintWithdrawn(complaint_id=complaint_id, withdrawn_at=datetime.now(UTC)),
        subject=str(complaint_id),
        source="/test",
    )


def producer_with(fake: FailingKafkaProducer) -> EventProducer:
    producer = EventProducer(KafkaSettings(produce_timeout_s=0.05), client_id="test")
    producer._producer = fake  # type: ignore[assignment]
    return producer


async def test_a_wedged_producer_is_renewed_at_once() -> None:
    fake = FailingKafkaProducer(OutOfOrderSequenceNumber())
    producer = producer_with(fake)
    with pytest.raises(BrokerUnavailable):
        await producer.publish(event())
    assert producer._producer is None  # the next publish connects a new producer
    assert fake._closed


async def test_an_ordinary_refusal_keeps_the_producer() -> None:
    fake = FailingKafkaProducer(KafkaConnectionError())
    producer = producer_with(fake)
    with pytest.raises(BrokerUnavailable):
        await producer.publish(event())
    assert producer._producer is fake


async def test_repeated_timeouts_renew_the_producer() -> None:
    fake = FailingKafkaProducer(None)
    producer = producer_with(fake)
    for attempt in range(RENEW_AFTER_TIMEOUTS):
        assert producer._producer is fake, attempt
        with pytest.raises(BrokerUnavailable, match="in time"):
            await producer.publish(event())
    assert producer._producer is None


class BlockingSendKafkaProducer(FailingKafkaProducer):
    """`send()` itself never returns: aiokafka waiting for topic metadata or buffer space
    while the broker is away."""

    async def send(self, topic: str, **kwargs: Any) -> asyncio.Future[Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_send_blocked_before_the_ack_still_answers_within_the_produce_timeout() -> None:
    producer = producer_with(BlockingSendKafkaProducer(None))
    # Without the shared deadline the outer bound fires instead (TimeoutError, not
    # BrokerUnavailable), so this fails on a regression rather than hanging the suite.
    with pytest.raises(BrokerUnavailable, match="in time"):
        await asyncio.wait_for(producer.publish(event()), timeout=5)
