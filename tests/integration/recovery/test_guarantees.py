"""Service guarantees on the real broker: an SLA breach published to routing's topic and a low
satisfaction score each pay exactly once, across redelivery, a SIGKILL between the producer's
ack and the offset commit, a restart, and a full replay of the log by a fresh consumer group."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from redress_events import Envelope, EventData, TopicName
from redress_events.catalogue import CompensationIssued, GuaranteeTriggered
from redress_events.catalogue.routing import SlaTarget
from redress_kafka.settings import KafkaSettings

from tests.integration.recovery.support import (
    GUARANTEE_GROUP,
    case_events,
    committed_offsets,
    complaint_received,
    count,
    publish,
    publish_raw,
    sla_breached,
    wait_for_case_events,
    wait_for_stable_group,
    wait_until_committed_past,
    wait_until_known,
)
from tests.support.kafka import read_topic
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka


async def test_first_response_breach_pays_the_credit_once_despite_redelivery(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    recovery = service_factory("recovery").start()
    received = complaint_received()
    cid = received.data.complaint_id
    breach = sla_breached(cid, SlaTarget.FIRST_RESPONSE)
    await publish(kafka_settings, received)
    # A record no one can read lands on routing's topic first, on the breach's partition.
    await publish_raw(kafka_settings, TopicName.ROUTING, key=str(cid).encode(), value=b"{not json")
    await publish(kafka_settings, breach)

    events = await wait_for_case_events(
        kafka_settings, cid, lambda es: count(es, CompensationIssued) >= 1
    )
    triggered = [e for e in events if isinstance(e.data, GuaranteeTriggered)]
    paid = [e.data for e in events if isinstance(e.data, CompensationIssued)]
    assert len(triggered) == len(paid) == 1
    trigger = triggered[0].data
    assert isinstance(trigger, GuaranteeTriggered)
    assert trigger.guarantee_id == "first-response-24h"
    assert trigger.trigger_event_id == breach.id
    assert triggered[0].causation_id == breach.id
    credit = paid[0]
    assert credit.compensation_type == "account_credit"
    assert credit.amount is not None
    assert (credit.amount.amount, credit.amount.currency) == (Decimal("10.00"), "EUR")

    # Routing redelivers the same breach, then reports another breach of the same target.
    again = await publish(kafka_settings, breach, sla_breached(cid, SlaTarget.FIRST_RESPONSE))
    group = f"{kafka_settings.topic_prefix}{GUARANTEE_GROUP}"
    assert await wait_until_committed_past(kafka_settings, group, again[-1])
    events = await wait_for_case_events(kafka_settings, cid, lambda es: True)
    assert count(events, GuaranteeTriggered) == 1
    assert count(events, CompensationIssued) == 1
    async with recovery.client() as client:
        view = (await client.get(f"/v1/complaints/{cid}/case")).json()
    assert view["guarantees_triggered"] == ["first-response-24h"]
    assert view["sla_breaches"] == ["first_response"]

    # The bad record was dead-lettered once, by the guarantee processor's group, and did not
    # stop it.
    dead = [
        dict(r.headers)
        for r in await read_topic(kafka_settings, TopicName.DEADLETTER)
        if r.key == str(cid).encode()
    ]
    assert len(dead) == 1
    assert dead[0]["dlq_reason"] == b"missing_attribute"
    assert dead[0]["dlq_consumer"] == group.encode()
    assert dead[0]["dlq_original_topic"] == kafka_settings.topic(TopicName.ROUTING).encode()


async def test_low_satisfaction_score_refunds_the_amount_at_stake_once(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    recovery = service_factory("recovery").start()
    received = complaint_received()  # 49.99 GBP at stake
    cid = received.data.complaint_id
    await publish(kafka_settings, received)
    await wait_until_known(recovery, cid)
    base = f"/v1/complaints/{cid}"
    async with recovery.client() as client:
        resolved = await client.post(
            f"{base}/resolution", json={"outcome": "rejected", "reason": "No fault found"}
        )
        assert resolved.status_code == 200, resolved.text
        scored = await client.post(f"{base}/satisfaction", json={"score": 2, "comment": "Poor"})
        assert scored.status_code == 201, scored.text

    events = await wait_for_case_events(
        kafka_settings, cid, lambda es: count(es, CompensationIssued) >= 1
    )
    paid = [e.data for e in events if isinstance(e.data, CompensationIssued)]
    assert [p.guarantee_id for p in paid] == ["satisfaction-refund"]
    assert paid[0].compensation_type == "refund"
    assert paid[0].amount is not None
    assert (paid[0].amount.amount, paid[0].amount.currency) == (Decimal("49.99"), "GBP")

    # Reopened and resolved again, a second low score does not pay the guarantee twice.
    async with recovery.client() as client:
        assert (
            await client.post(f"{base}/reopen", json={"reason": "Customer disputes"})
        ).status_code == 200
        assert (
            await client.post(f"{base}/resolution", json={"outcome": "upheld", "reason": "Fair"})
        ).status_code == 200
        second = await client.post(f"{base}/satisfaction", json={"score": 1})
        assert second.status_code == 201
    second_score = next(
        e
        for e in await wait_for_case_events(kafka_settings, cid, lambda es: True)
        if str(e.id) == second.json()["event_id"]
    )
    assert second_score.position is not None
    group = f"{kafka_settings.topic_prefix}{GUARANTEE_GROUP}"
    assert await wait_until_committed_past(kafka_settings, group, second_score.position)
    events = await wait_for_case_events(kafka_settings, cid, lambda es: True)
    assert count(events, CompensationIssued) == 1


def _wait_for_exit(service: ServiceProcess, timeout_s: float = 60) -> int | None:
    deadline = time.monotonic() + timeout_s
    assert service.process is not None
    while time.monotonic() < deadline:
        code = service.process.poll()
        if code is not None:
            return code
        time.sleep(0.2)
    return None


async def test_sigkill_between_ack_and_commit_then_restart_and_replay_pay_once(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    recovery = service_factory(
        "recovery", REDRESS_RECOVERY_FAULT_KILL_AFTER_COMPENSATION="true"
    ).start()
    received = complaint_received()
    cid = received.data.complaint_id
    breach = sla_breached(cid, SlaTarget.RESOLUTION)
    _, breach_position = await publish(kafka_settings, received, breach)

    # The fault hook kills the process right after the broker acknowledged the compensation.
    exit_code = await asyncio.to_thread(_wait_for_exit, recovery)
    assert exit_code == -signal.SIGKILL, recovery.log_tail()
    recovery.process = None
    events = await case_events(kafka_settings, cid)
    assert count(events, CompensationIssued) == 1
    group = f"{kafka_settings.topic_prefix}{GUARANTEE_GROUP}"
    topic, partition, offset = breach_position
    committed = await committed_offsets(kafka_settings, group)
    assert all(
        off <= offset
        for tp, off in committed.items()
        if (tp.topic, tp.partition) == (topic, partition)
    ), "the breach's offset must not have been committed before the kill"

    # Restarted without the fault: the breach is redelivered and recognised as already paid.
    recovery.env.pop("REDRESS_RECOVERY_FAULT_KILL_AFTER_COMPENSATION")
    recovery.start()
    assert await wait_until_committed_past(kafka_settings, group, breach_position)
    events = await wait_for_case_events(kafka_settings, cid, lambda es: True)
    assert count(events, GuaranteeTriggered) == 1
    assert count(events, CompensationIssued) == 1
    paid = next(e.data for e in events if isinstance(e.data, CompensationIssued))
    assert paid.compensation_type == "fee_waiver"

    # A full replay: a fresh consumer group reads every topic from the beginning.
    recovery.stop()
    recovery.env["REDRESS_RECOVERY_GROUP_ID"] = "replay-from-scratch"
    recovery.start()
    replay_group = f"{kafka_settings.topic_prefix}replay-from-scratch"
    assert await wait_until_committed_past(kafka_settings, replay_group, breach_position)
    events = await wait_for_case_events(kafka_settings, cid, lambda es: True)
    assert count(events, CompensationIssued) == 1


async def test_two_replicas_and_a_rebalance_pay_each_guarantee_once(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    group = f"{kafka_settings.topic_prefix}{GUARANTEE_GROUP}"
    first = service_factory("recovery", REDRESS_RECOVERY_SOURCE="/redress/recovery/a").start()
    second = service_factory("recovery", REDRESS_RECOVERY_SOURCE="/redress/recovery/b").start()
    assert await wait_for_stable_group(kafka_settings, group, members=2)
    # 16 complaints over routing's 6 partitions, 3 owned by each replica: both get work.
    complaints = [complaint_received(description=f"complaint {n}") for n in range(16)]
    ids = [c.data.complaint_id for c in complaints]
    await publish(kafka_settings, *complaints)
    await publish(kafka_settings, *(sla_breached(cid, SlaTarget.FIRST_RESPONSE) for cid in ids))

    def payments(events: list[Envelope[EventData]], guarantee: str) -> list[str]:
        return [
            e.source
            for e in events
            if isinstance(e.data, CompensationIssued) and e.data.guarantee_id == guarantee
        ]

    payers: set[str] = set()
    for cid in ids:
        events = await wait_for_case_events(
            kafka_settings, cid, lambda es: len(payments(es, "first-response-24h")) >= 1
        )
        assert len(payments(events, "first-response-24h")) == 1
        payers.update(payments(events, "first-response-24h"))
    assert payers == {"/redress/recovery/a", "/redress/recovery/b"}

    second.stop()  # leaves the group: the first replica takes over every partition
    assert await wait_for_stable_group(kafka_settings, group, members=1)
    redelivered = [sla_breached(cid, SlaTarget.FIRST_RESPONSE) for cid in ids]
    late = [sla_breached(cid, SlaTarget.RESOLUTION) for cid in ids]
    positions = await publish(kafka_settings, *redelivered, *late)
    for position in positions:
        assert await wait_until_committed_past(kafka_settings, group, position)
    for cid in ids:
        events = await case_events(kafka_settings, cid)
        assert len(payments(events, "first-response-24h")) == 1
        assert payments(events, "resolution-within-sla") == ["/redress/recovery/a"]
        assert count(events, GuaranteeTriggered) == 2
    assert first.process is not None and first.process.poll() is None
