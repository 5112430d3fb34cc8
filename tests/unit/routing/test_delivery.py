"""Publishing until acknowledged, renewing a wedged producer, and dead-lettering: an agent
never moves past an input whose outputs the broker has not acknowledged."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber
from redress_events import InvalidEvent
from redress_kafka.producer import BrokerUnavailable, EventProducer
from redress_kafka.settings import KafkaSettings
from redress_routing.batching import (
    BatchIO,
    DeadRecord,
    RawRecord,
    Result,
    StagedState,
    process_batch,
)
from redress_routing.delivery import failure_of, producer_is_wedged, until_acknowledged


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
    dead: list[DeadRecord] = []

    async def publish(outputs: list[Any], raw: list[RawRecord]) -> None:
        await until_acknowledged("publish", send, connect=Counter(), renew=renew, sleep=Counter())

    def write(key: str, value: Any, event: Any) -> None:
        table[key] = value

    async def dead_letter(record: DeadRecord) -> None:
        dead.append(record)

    def handle(event: Any, staged: StagedState) -> Result:
        return Result(
            outputs=["prioritized"], state=("complaint", (staged.get("complaint") or 0) + 1)
        )

    io = BatchIO(publish=publish, write=write, dead_letter=dead_letter, topic_label=str)
    await process_batch([SimpleNamespace(message=None)], handle, table.get, io)
    assert send.calls == 3
    assert renew.calls == 1
    assert table == {"complaint": 1}
    assert dead == []


def test_an_invalid_record_keeps_the_reason_decoding_gave() -> None:
    reason, _, _ = failure_of(InvalidEvent("undecodable", "not json"), where={})
    assert reason == "undecodable"


def test_a_processing_error_is_logged_with_its_stack_but_not_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "customer " + "jane" + " said something"

    def handler() -> None:
        raise RuntimeError(text)

    with caplog.at_level(logging.ERROR, logger="redress_routing"):
        try:
            handler()
        except RuntimeError as exc:
            reason, detail, _ = failure_of(exc, where={"offset": 7})
    (record,) = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    stack = record.__dict__["stack"]
    assert "Traceback" in stack and "in handler" in stack and "RuntimeError" in stack
    assert "jane" not in stack
    assert record.__dict__["offset"] == 7
    assert reason == "processing_failed"
    assert "jane" in detail  # the full detail goes with the record


async def test_cancellation_is_not_swallowed() -> None:
    def handle(event: Any, staged: StagedState) -> Result:
        raise asyncio.CancelledError

    async def never(*args: Any) -> None:
        raise AssertionError("nothing may be published, written or dead-lettered")

    io = BatchIO(publish=never, write=never, dead_letter=never, topic_label=str)  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await process_batch([SimpleNamespace(message=None)], handle, {}.get, io)


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
