"""The inbound door end to end: a real intake process consuming `redress.inbound` on a real
broker, fed by clients no one here wrote (Debian's kcat in both binding modes, the cloudevents
SDK), with dead letters checked header by header and `redress dlq` list/replay as a user runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from cloudevents.core.bindings.kafka import KafkaMessage, to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from redress_events import TopicName
from redress_events.catalogue import ComplaintReceived
from redress_kafka.settings import KafkaSettings

from tests.integration.inbound.conftest import Kcat
from tests.support.complaints import complaint_body
from tests.support.kafka import read_events, read_topic
from tests.support.services import REPO_ROOT, ServiceProcess

pytestmark = pytest.mark.kafka

SUBMITTED = "redress.complaint.submitted.v1"
MESSAGE = "redress.complaint.customer_message.v1"
WITHDRAWN = "redress.complaint.withdrawn.v1"
RESPONDED = "redress.complaint.external_response.v1"


def ce_headers(*, id: str, source: str, type: str, subject: str, **extra: str) -> dict[str, str]:
    return {
        "ce_specversion": "1.0",
        "ce_id": id,
        "ce_source": source,
        "ce_type": type,
        "ce_subject": subject,
        "content-type": "application/json",
        **extra,
    }


def structured_value(*, id: str, source: str, type: str, subject: str, data: Any) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": type,
            "subject": subject,
            "time": "2026-11-25T09:00:00Z",
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


async def wait_until_drained(
    settings: KafkaSettings, *, expect_deadletters: int, timeout_s: float = 120
) -> list[Any]:
    """Wait until the intake's inbound group has committed past every inbound record and the
    dead-letter topic holds `expect_deadletters` records; returns those records."""
    inbound = settings.topic(TopicName.INBOUND)
    group = f"{settings.topic_prefix}redress-intake-inbound"
    deadline = time.monotonic() + timeout_s
    ends = {
        (r.partition): r.offset + 1
        for r in sorted(await read_topic(settings, TopicName.INBOUND), key=lambda r: r.offset)
    }
    dead: list[Any] = []
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        done = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == inbound}
        dead = await read_topic(settings, TopicName.DEADLETTER)
        if all(done.get(p, -1) >= end for p, end in ends.items()) and len(dead) >= (
            expect_deadletters
        ):
            return dead
        await asyncio.sleep(1.0)
    raise AssertionError(f"inbound not drained: committed {done}, ends {ends}, dlq {len(dead)}")


def redress_cli(settings: KafkaSettings, *args: str) -> str:
    env = {
        **os.environ,
        "REDRESS_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "REDRESS_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
    }
    done = subprocess.run(
        [sys.executable, "-m", "redress_cli.main", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


async def test_kcat_binary_and_structured_events_are_appended_once_and_bad_ones_dead_lettered(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings, kcat: Kcat
) -> None:
    intake = service_factory("intake").start()
    topic = kafka_settings.topic(TopicName.INBOUND)
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    submission = json.dumps(complaint_body()).encode()

    # Valid: a binary submission (sent twice), the same event again in structured mode, a
    # structured submission, and a customer message on the first complaint.
    binary_submission = ce_headers(id="crm-1", source="/crm", type=SUBMITTED, subject=first)
    kcat.produce(topic, submission, key=first, headers=binary_submission)
    kcat.produce(topic, submission, key=first, headers=binary_submission)
    cloudevents_json = {"content-type": "application/cloudevents+json"}
    kcat.produce(
        topic,
        structured_value(
            id="crm-1", source="/crm", type=SUBMITTED, subject=first, data=complaint_body()
        ),
        key=first,
        headers=cloudevents_json,
    )
    kcat.produce(
        topic,
        structured_value(
            id="cc-7",
            source="/contact-centre",
            type=SUBMITTED,
            subject=second,
            data=complaint_body(),
        ),
        key=second,
        headers=cloudevents_json,
    )
    message = {
        "complaint_id": first,
        "message": "Any news?",
        "channel": "email",
        "received_at": "2026-11-25T10:00:00Z",
    }
    kcat.produce(
        topic,
        json.dumps(message).encode(),
        key=first,
        headers=ce_headers(id="crm-2", source="/crm", type=MESSAGE, subject=first),
    )

    # Invalid, one of each kind.
    bad = {
        "unparsable": dict(
            value=b"\x00\x9f not json",
            key=third,
            headers=ce_headers(id="b1", source="/crm", type=SUBMITTED, subject=third),
        ),
        "unknown_type": dict(
            value=submission,
            key=third,
            headers=ce_headers(id="b2", source="/crm", type="com.example.nope.v1", subject=third),
        ),
        "schema_violation": dict(
            value=json.dumps(complaint_body(channel="pigeon")).encode(),
            key=third,
            headers=ce_headers(id="b3", source="/crm", type=SUBMITTED, subject=third),
        ),
        "missing_attribute": dict(
            value=submission,
            key=third,
            headers={
                k: v
                for k, v in ce_headers(
                    id="b4", source="/crm", type=SUBMITTED, subject=third
                ).items()
                if k != "ce_source"
            },
        ),
        "bad_attribute": dict(
            value=submission,
            key=third,
            headers=ce_headers(
                id="b5", source="/crm", type=SUBMITTED, subject=third, ce_specversion="0.3"
            ),
        ),
        "key_mismatch": dict(
            value=submission,
            key=str(uuid.uuid4()),
            headers=ce_headers(id="b6", source="/crm", type=SUBMITTED, subject=third),
        ),
        "too_large": dict(
            value=json.dumps(complaint_body(description="x" * 1_100_000)).encode(),
            key=third,
            headers=ce_headers(id="b7", source="/crm", type=SUBMITTED, subject=third),
        ),
    }
    bad["unparsable_structured"] = dict(
        value=b"{this is not json", key=third, headers=cloudevents_json
    )
    for record in bad.values():
        kcat.produce(topic, record["value"], key=record["key"], headers=record["headers"])  # type: ignore[arg-type]
    # The door is still open after all that.
    kcat.produce(
        topic,
        submission,
        key=third,
        headers=ce_headers(id="late-1", source="/crm", type=SUBMITTED, subject=third),
    )

    dead = await wait_until_drained(kafka_settings, expect_deadletters=len(bad))

    events = await read_events(kafka_settings, TopicName.COMPLAINTS)
    counts = Counter((e.subject, e.type) for e in events)
    assert counts == {
        (first, "redress.complaint.received.v1"): 1,
        (second, "redress.complaint.received.v1"): 1,
        (third, "redress.complaint.received.v1"): 1,
        (first, MESSAGE): 1,
    }, counts
    for event in events:
        if isinstance(event.data, ComplaintReceived):
            assert str(event.data.complaint_id) == event.subject  # the publisher's id is kept
            assert event.data.submitted_via == "kafka"

    assert len(dead) == len(bad)
    inbound_records = {
        (r.partition, r.offset): r for r in await read_topic(kafka_settings, TopicName.INBOUND)
    }
    reasons = Counter()
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        reasons[headers["dlq_reason"]] += 1
        assert headers["dlq_original_topic"] == topic
        original = inbound_records[
            (int(headers["dlq_original_partition"]), int(headers["dlq_original_offset"]))
        ]
        assert record.key == original.key
        if headers["dlq_reason"] == "too_large":
            assert record.value is None
            assert int(headers["redress_value_omitted_bytes"]) == len(original.value)
        else:
            assert record.value == original.value  # copied untouched
        assert isinstance(json.loads(headers["dlq_errors"]), list)
        assert headers["dlq_detail"]
        if headers["dlq_reason"] == "schema_violation":
            assert ["channel"] in [e["loc"] for e in json.loads(headers["dlq_errors"])]
    assert reasons == {
        "unparsable": 2,
        "unknown_type": 1,
        "schema_violation": 1,
        "missing_attribute": 1,
        "bad_attribute": 1,
        "key_mismatch": 1,
        "too_large": 1,
    }

    async with intake.client() as client:
        metrics = (await client.get("/metrics")).text
    for reason in reasons:
        assert any(
            line.startswith("redress_events_deadlettered_total")
            and f'reason="{reason}"' in line
            and 'service="intake"' in line
            for line in metrics.splitlines()
        ), reason

    listed = [
        json.loads(line)
        for line in redress_cli(kafka_settings, "dlq", "list", "--json").splitlines()
    ]
    assert Counter(item["reason"] for item in listed) == reasons
    only_unknown = redress_cli(
        kafka_settings, "dlq", "list", "--json", "--type", "com.example.nope.v1"
    )
    assert [json.loads(line)["reason"] for line in only_unknown.splitlines()] == ["unknown_type"]
    assert redress_cli(kafka_settings, "dlq", "list", "--json", "--since", "2999-01-01") == ""


async def _send(settings: KafkaSettings, message: KafkaMessage) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        key = message.key.encode() if isinstance(message.key, str) else message.key
        await producer.send_and_wait(
            settings.topic(TopicName.INBOUND),
            value=message.value,
            key=key,
            headers=list(message.headers.items()),
        )
    finally:
        await producer.stop()


async def test_cloudevents_sdk_events_and_replay_after_a_fix(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    # Deployed with too low a size limit: a long complaint is dead-lettered.
    intake = service_factory("intake", REDRESS_INTAKE_INBOUND_MAX_VALUE_BYTES="2048").start()
    long_one, other = str(uuid.uuid4()), str(uuid.uuid4())
    json_format = JSONFormat()

    def event(type_: str, subject: str, data: dict[str, Any]) -> CloudEvent:
        return CloudEvent(
            attributes={
                "type": type_,
                "source": "urn:example:social-listener",
                "subject": subject,
                "datacontenttype": "application/json",
                "partitionkey": subject,
            },
            data=data,
        )

    long_submission = event(SUBMITTED, long_one, complaint_body(description="y" * 3000))
    await _send(kafka_settings, to_binary(long_submission, json_format))
    await _send(
        kafka_settings, to_structured(event(SUBMITTED, other, complaint_body()), json_format)
    )
    await _send(
        kafka_settings,
        to_binary(
            event(
                RESPONDED,
                other,
                {
                    "complaint_id": other,
                    "agent": "agent-17",
                    "message": "We are on it.",
                    "responded_at": "2026-11-25T10:00:00Z",
                },
            ),
            json_format,
        ),
    )
    await _send(
        kafka_settings,
        to_structured(
            event(
                WITHDRAWN, other, {"complaint_id": other, "withdrawn_at": "2026-11-25T11:00:00Z"}
            ),
            json_format,
        ),
    )
    dead = await wait_until_drained(kafka_settings, expect_deadletters=1)
    assert [dict(r.headers)["dlq_reason"] for r in dead] == [b"too_large"]
    types = Counter(e.type for e in await read_events(kafka_settings, TopicName.COMPLAINTS))
    assert types == {"redress.complaint.received.v1": 1, RESPONDED: 1, WITHDRAWN: 1}

    # The fix: the limit back at its default. Then replay, twice: appended once.
    intake.stop()
    service_factory("intake").start()
    assert "would replay 1 of 1" in redress_cli(
        kafka_settings, "dlq", "replay", "--type", SUBMITTED, "--dry-run"
    )
    assert "replayed 0" in redress_cli(kafka_settings, "dlq", "replay", "--type", WITHDRAWN)
    for _ in range(2):
        assert "replayed 1" in redress_cli(
            kafka_settings, "dlq", "replay", "--type", SUBMITTED, "--since", "2000-01-01"
        )
    await wait_until_drained(kafka_settings, expect_deadletters=1)
    received = [
        e
        for e in await read_events(kafka_settings, TopicName.COMPLAINTS, subject=long_one)
        if isinstance(e.data, ComplaintReceived)
    ]
    assert len(received) == 1
    assert received[0].data.description == "y" * 3000
    assert len(await read_topic(kafka_settings, TopicName.DEADLETTER)) == 1


async def test_killed_mid_stream_intake_appends_each_inbound_event_once(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    """At least once in, exactly once on the log: a SIGKILL between appending and committing
    makes the next intake re-read records it already appended; it must not append them again."""
    subjects = [str(uuid.uuid4()) for _ in range(300)]
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.bootstrap_servers, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        for index, subject in enumerate(subjects):
            await producer.send(
                kafka_settings.topic(TopicName.INBOUND),
                key=subject.encode(),
                value=json.dumps(complaint_body(description=f"inbound {index}")).encode(),
                headers=[
                    (k, v.encode())
                    for k, v in ce_headers(
                        id=f"bulk-{index}", source="/crm", type=SUBMITTED, subject=subject
                    ).items()
                ],
            )
        await producer.flush()
    finally:
        await producer.stop()

    first = service_factory("intake", REDRESS_INTAKE_INBOUND_BATCH_SIZE="50").start()
    deadline = time.monotonic() + 120
    while len(await read_topic(kafka_settings, TopicName.COMPLAINTS)) < 60:
        assert time.monotonic() < deadline, "intake appended nothing"
        await asyncio.sleep(0.2)
    first.kill()
    service_factory("intake", REDRESS_INTAKE_INBOUND_BATCH_SIZE="50").start()
    await wait_until_drained(kafka_settings, expect_deadletters=0)
    counts = Counter(e.subject for e in await read_events(kafka_settings, TopicName.COMPLAINTS))
    assert set(counts) == set(subjects)
    assert set(counts.values()) == {1}, [s for s, n in counts.items() if n > 1][:10]
