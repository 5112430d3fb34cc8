"""Publishing until acknowledged, renewing a wedged producer, and dead-lettering: an agent
never moves past an input whose outputs the broker has not acknowledged."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber
from redress_events import InvalidEvent
from redress_kafka.producer import BrokerUnavailable, EventProducer
from redress_kafka.settings import KafkaSettings
from redress_routing.delivery import (
    process_or_dead_letter,
    producer_is_wedged,
    until_acknowledged,
)


class Script:
    """A send that fails with the given exceptions, in order, then succeeds."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, *args: Any) -> None:
        self.calls += 1


def refused(error: BaseException) -> BrokerUnavailable:
    """What EventProducer.publish_many raises for an aiokafka error."""
    try:
        raise BrokerUnavailable(f"kafka refused: {error}") from error
    except BrokerUnavailable as exc:
        return exc


async def test_a_publish_failure_is_retried_until_acknowledged() -> None:
    send = Script(BrokerUnavailable("kafka did not acknowledge in time"), KafkaConnectionError())
    connect, renew, sleep = Counter(), Counter(), Counter()
    attempts = await until_acknowledged("publish", send, connect=connect, renew=renew, sleep=sleep)
    assert attempts == send.calls == 3
    assert sleep.calls == 2
    assert renew.calls == 0  # a broker that is away is waited for, not a reason for a new producer


async def test_a_wedged_producer_is_renewed_at_once() -> None:
    send = Script(refused(OutOfOrderSequenceNumber()))
    renew = Counter()
    await until_acknowledged("publish", send, connect=Counter(), renew=renew, sleep=Counter())
    assert renew.calls == 1
    assert send.calls == 2


async def test_a_producer_failing_many_times_in_a_row_is_renewed() -> None:
    send = Script(*(BrokerUnavailable("kafka did not acknowledge in time") for _ in range(5)))
    renew = Counter()
    await until_acknowledged(
        "publish", send, connect=Counter(), renew=renew, renew_after=2, sleep=Counter()
    )
    assert renew.calls == 2  # after failures 2 and 4
    assert send.calls == 6


async def test_an_error_that_is_not_kafka_is_not_retried() -> None:
    send = Script(ValueError("a bug, not the broker"))
    with pytest.raises(ValueError):
        await until_acknowledged("publish", send, connect=Counter(), sleep=Counter())
    assert send.calls == 1


def test_wedged_errors_are_found_through_the_wrapper() -> None:
    assert producer_is_wedged(refused(OutOfOrderSequenceNumber()))
    assert not producer_is_wedged(refused(KafkaConnectionError()))
    assert not producer_is_wedged(BrokerUnavailable("kafka did not acknowledge in time"))


async def test_a_record_whose_publish_fails_is_retried_not_skipped() -> None:
    """The failure mode of the broker-outage test: the outputs of an input are published (after
    retries) and the state written, and nothing is dead-lettered or skipped."""
    send = Script(
        BrokerUnavailable("kafka did not acknowledge in time"),
        refused(OutOfOrderSequenceNumber()),
    )
    renew = Counter()
    table: dict[str, int] = {}

    async def handler() -> None:
        await until_acknowledged("publish", send, connect=Counter(), renew=renew, sleep=Counter())
        table["complaint"] = table.get("complaint", 0) + 1

    dead_letter = Counter()
    done = await process_or_dead_letter(handler, dead_letter, where={"topic": "t"})
    assert done
    assert send.calls == 3
    assert renew.calls == 1
    assert table == {"complaint": 1}
    assert dead_letter.calls == 0


async def test_an_invalid_record_is_dead_lettered_and_the_agent_carries_on() -> None:
    reasons: list[str] = []

    async def handler() -> None:
        raise InvalidEvent("undecodable", "not json")

    async def dead_letter(reason: str, detail: str, errors: Any) -> None:
        reasons.append(reason)

    assert not await process_or_dead_letter(handler, dead_letter, where={})
    assert reasons == ["undecodable"]


async def test_a_processing_error_is_logged_with_its_stack_but_not_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    details: list[str] = []
    text = "customer " + "jane" + " said something"

    async def handler() -> None:
        raise RuntimeError(text)

    async def dead_letter(reason: str, detail: str, errors: Any) -> None:
        details.append(detail)

    with caplog.at_level(logging.ERROR, logger="redress_routing"):
        assert not await process_or_dead_letter(handler, dead_letter, where={"offset": 7})
    (record,) = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    stack = record.__dict__["stack"]
    assert "Traceback" in stack and "in handler" in stack and "RuntimeError" in stack
    assert "jane" not in stack
    assert record.__dict__["offset"] == 7
    assert details and "jane" in details[0]  # the full detail goes with the record


async def test_cancellation_is_not_swallowed() -> None:
    async def handler() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await process_or_dead_letter(handler, Counter(), where={})


class StuckKafkaProducer:
    """An aiokafka producer whose stop() waits for ever for a batch it cannot deliver."""

    def __init__(self) -> None:
        self.sender_closed = False
        self.client_closed = False
        outer = self

        class Sender:
            async def close(self) -> None:
                outer.sender_closed = True

        class Client:
            async def close(self) -> None:
                outer.client_closed = True

        self._sender = Sender()
        self.client = Client()

    async def stop(self) -> None:
        await asyncio.Event().wait()


async def test_renewing_drops_a_stuck_producer_without_waiting_for_it() -> None:
    producer = EventProducer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), client_id="t")
    stuck = StuckKafkaProducer()
    producer._producer = stuck  # type: ignore[assignment]
    await asyncio.wait_for(producer.renew(grace_s=0.05), timeout=5)
    assert stuck.sender_closed and stuck.client_closed
    assert not producer.started  # the next start() builds a new client (a new producer id)
    assert producer.renewals == 1
