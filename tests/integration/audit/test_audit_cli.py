"""`redress audit` against a real broker: history, as-of and integrity of complaints written by
the real writers (intake and routing processes, the shared EventProducer), and tampered logs."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from redress_audit.reader import partition_for_key
from redress_audit.records import AUDITED_TOPICS
from redress_cli.main import app
from redress_events import Envelope, TopicName, derived_event_id
from redress_events.catalogue import (
    AgentResponded,
    ComplaintAcknowledged,
    ComplaintAssigned,
    ComplaintPrioritized,
    ComplaintResolved,
    SlaClockStarted,
)
from redress_events.catalogue.routing import SlaDeadline
from redress_events.chain import CHAIN_HEADER, ChainLink
from redress_events.topics import TOPICS
from redress_kafka.admin import ensure_topics
from redress_kafka.producer import EventProducer
from redress_kafka.settings import KafkaSettings
from typer.testing import CliRunner, Result

from tests.fixtures.events.fixtures import load_fixtures
from tests.fixtures.events.story import MOMENTS, complaint_story
from tests.support.complaints import complaint_body
from tests.support.kafka import KafkaHandle, read_events, read_topic
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka

REDRESS = Path(sys.executable).with_name("redress")


def audit_env(settings: KafkaSettings) -> dict[str, str]:
    return {
        "REDRESS_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "REDRESS_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
    }


async def audit(settings: KafkaSettings, *args: str) -> Result:
    """Run `redress audit ...` in-process (in a thread: the command runs its own event loop)."""
    return await asyncio.to_thread(
        lambda: CliRunner().invoke(app, ["audit", *args], env=audit_env(settings))
    )


async def end_offsets(settings: KafkaSettings) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        tps = [
            TopicPartition(settings.topic(name), p)
            for name, topic in TOPICS.items()
            for p in range(topic.partitions)
        ]
        ends = await consumer.end_offsets(tps)
        return {f"{tp.topic}/{tp.partition}": offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def publish_story(
    settings: KafkaSettings, events: list[Envelope[Any]], *, replicas: int = 1
) -> None:
    """Each event through the shared producer (which chains it), one acknowledged at a time;
    with several replicas, in turn, and every replica restarted (memory lost) half-way."""
    producers = [EventProducer(settings, client_id=f"test-{i}") for i in range(replicas)]
    for producer in producers:
        await producer.start()
    try:
        for index, envelope in enumerate(events):
            if replicas > 1 and index == len(events) // 2:
                for i, producer in enumerate(producers):
                    await producer.stop()
                    producers[i] = EventProducer(settings, client_id=f"test-{i}-restarted")
                    await producers[i].start()
            await producers[index % replicas].publish(envelope)
    finally:
        for producer in producers:
            await producer.stop()


async def copy_records(settings: KafkaSettings, records: list[Any]) -> None:
    """Append records unchanged (key, value, headers) to `settings`' topics."""
    producer = EventProducer(settings, client_id="test-copy")
    await producer.start()
    try:
        for topic, record in records:
            await producer.send_raw(
                settings.topic(topic),
                key=record.key,
                value=record.value,
                headers=list(record.headers),
            )
    finally:
        await producer.stop()


async def complaint_records(settings: KafkaSettings, subject: str) -> list[tuple[TopicName, Any]]:
    out = []
    for topic in AUDITED_TOPICS:
        for record in await read_topic(settings, topic):
            if record.key is not None and record.key.decode() in subject.split("|"):
                out.append((topic, record))
    return out


def header(record: Any, name: str) -> str:
    return dict(record.headers)[name].decode()


async def test_history_as_of_and_integrity_of_a_complaint_from_the_real_writers(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    """intake (a real process) receives the complaint; routing's and recovery's events are
    appended through the shared producer, as those services do."""
    intake = service_factory("intake").start()
    async with intake.client() as client:
        response = await client.post("/v1/complaints", json=complaint_body())
    assert response.status_code == 202, response.text
    complaint_id = response.json()["complaint_id"]
    (received,) = await read_events(kafka_settings, TopicName.COMPLAINTS, subject=complaint_id)

    # Routing's decisions, as routing writes them: derived from their cause, through the
    # shared producer (the routing worker itself is tested in tests/integration/routing).
    cid = uuid.UUID(complaint_id)
    start = received.time

    def decided(data: Any, cause: Envelope[Any], reason: str, seconds: int) -> Envelope[Any]:
        return Envelope.new(
            data,
            subject=complaint_id,
            source="/redress/routing",
            cause=cause,
            event_id=derived_event_id(cause.id, reason),
            time=start + timedelta(seconds=seconds),
        )

    prioritized = decided(
        ComplaintPrioritized(
            complaint_id=cid,
            priority="P1",
            matched_rules=("safety-injury",),
            rules_version="2026.11.2",
            reason="reports a burn",
        ),
        received,
        "prioritized:2026.11.2",
        1,
    )
    assigned = decided(
        ComplaintAssigned(
            complaint_id=cid,
            queue="product-safety",
            matched_rules=("safety-injury",),
            rules_version="2026.11.2",
            reason="safety first",
        ),
        prioritized,
        "assigned",
        1,
    )
    clock = decided(
        SlaClockStarted(
            complaint_id=cid,
            policy_id="p1-safety-24x7",
            policy_version="1",
            deadlines=(
                SlaDeadline(
                    target="first_response",
                    due_at=start + timedelta(hours=1),
                    warn_at=start + timedelta(minutes=45),
                    calendar="calendar",
                ),
            ),
            reason="P1 safety",
        ),
        prioritized,
        "clock",
        2,
    )
    routing = [prioritized, assigned, clock]
    await publish_story(kafka_settings, routing)

    # Recovery's part, written the way recovery writes: through the shared producer.
    acknowledged = Envelope.new(
        ComplaintAcknowledged(complaint_id=cid, actor="agent-7", acknowledged_at=start),
        subject=complaint_id,
        source="/redress/recovery",
        time=start + timedelta(minutes=5),
    )
    responded = Envelope.new(
        AgentResponded(complaint_id=cid, actor="agent-7", message="On it.", responded_at=start),
        subject=complaint_id,
        source="/redress/recovery",
        time=start + timedelta(minutes=10),
    )
    resolved = Envelope.new(
        ComplaintResolved(
            complaint_id=cid,
            outcome="upheld",
            reason="defective handle",
            actor="agent-7",
            resolved_at=start + timedelta(hours=1),
        ),
        subject=complaint_id,
        source="/redress/recovery",
        cause=responded,
        event_id=derived_event_id(responded.id, "resolved"),
        time=start + timedelta(hours=1),
    )
    await publish_story(kafka_settings, [acknowledged, responded, resolved])
    before = await end_offsets(kafka_settings)

    result = await audit(kafka_settings, "history", complaint_id, "--format", "json")
    assert result.exit_code == 0, result.output
    history = json.loads(result.stdout)
    rows = {row["event_id"]: row for row in history["events"]}
    assert history["events"][0]["event_id"] == str(received.id)
    seq = {row["event_id"]: row["seq"] for row in history["events"]}
    for row in history["events"]:  # a cause is always listed before its effects
        if row["cause_id"] in seq:
            assert seq[row["cause_id"]] < row["seq"]
    assert rows[str(received.id)]["source"] == "/redress/intake"
    row = rows[str(prioritized.id)]
    assert row["cause_id"] == str(received.id)
    assert row["cause_type"] == "redress.complaint.received.v1"
    assert "safety-injury" in row["rule"]["matched_rules"]
    assert row["rule"]["rules_version"] == "2026.11.2"
    started = next(r for r in history["events"] if r["type"].endswith("sla_clock_started.v1"))
    assert started["rule"] == {"policy_id": "p1-safety-24x7", "policy_version": "1"}
    assert started["cause_type"] == "redress.routing.prioritized.v1"
    assert rows[str(resolved.id)]["cause_type"] == "redress.case.responded.v1"
    assert list(rows) == [
        str(e.id) for e in [received, *routing, acknowledged, responded, resolved]
    ]
    assert "Ada" not in result.stdout and "burned" not in result.stdout  # no personal data
    # Every record was where the audit looked first: the partition the key hashes to.
    for event in history["events"]:
        partition = int(event["position"].split("/")[1].split("@")[0])
        assert partition == partition_for_key(complaint_id.encode(), list(range(6)))

    table = await audit(kafka_settings, "history", complaint_id)
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["#", "time", "type", "source", "cause", "rule", "/", "policy"]
    (line,) = [x for x in lines[1:] if x.split()[2] == "redress.routing.prioritized.v1"]
    assert "redress.complaint.received.v1" in line  # its cause
    assert "matched_rules=" in line and "safety-injury" in line
    assert len(lines) == len(history["events"]) + 1
    as_csv = await audit(kafka_settings, "history", complaint_id, "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["event_id"] for r in parsed] == [r["event_id"] for r in history["events"]]

    at_priority = await audit(
        kafka_settings, "as-of", complaint_id, prioritized.time.isoformat(), "-f", "json"
    )
    assert at_priority.exit_code == 0, at_priority.output
    state = json.loads(at_priority.stdout)
    assert (state["status"], state["priority"], state["resolution"]) == ("open", "P1", None)
    later = await audit(
        kafka_settings, "as-of", complaint_id, (start + timedelta(hours=2)).isoformat()
    )
    assert later.exit_code == 0
    assert "status             resolved" in later.stdout
    assert "resolution         upheld" in later.stdout
    assert f"first response     {start.astimezone(UTC).isoformat(timespec='seconds')}" in (
        later.stdout
    )
    too_early = await audit(
        kafka_settings, "as-of", complaint_id, (start - timedelta(days=1)).isoformat()
    )
    assert too_early.exit_code == 2
    assert "did not exist yet" in too_early.stderr

    # The installed command, as an auditor runs it: every writer's chain verifies.
    process = await asyncio.create_subprocess_exec(
        str(REDRESS),
        "audit",
        "integrity",
        "--complaint",
        complaint_id,
        env={**os.environ, **audit_env(kafka_settings)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, (out, err)
    assert "no failures" in out.decode()
    chained = [r for _, r in await complaint_records(kafka_settings, complaint_id)]
    assert chained and all(CHAIN_HEADER in dict(r.headers) for r in chained)

    assert await end_offsets(kafka_settings) == before  # the audit wrote nothing


async def test_integrity_names_the_deleted_altered_and_reordered_events(
    kafka: KafkaHandle, kafka_settings: KafkaSettings
) -> None:
    story = complaint_story(uuid.uuid4(), incident_id=uuid.uuid4())
    complaint_id = story[0].subject
    # Two replicas of every writer, taking turns, both restarted half-way: no false alarm.
    await publish_story(kafka_settings, story, replicas=2)
    clean = await audit(kafka_settings, "integrity", "--complaint", complaint_id)
    assert clean.exit_code == 0, clean.output
    assert "no failures" in clean.stdout and "WARNING" not in clean.stdout
    assert f"checked {len(story)} records of complaint {complaint_id} in 4 chains" in clean.stdout

    # Someone rewrites the log (e.g. a topic copied without some records): a tampered copy.
    incident = next(e.subject for e in story if e.type == "redress.incident.detected.v1")
    records = await complaint_records(kafka_settings, f"{complaint_id}|{incident}")
    by_type: dict[str, list[int]] = {}
    for index, (_, record) in enumerate(records):
        by_type.setdefault(header(record, "ce_type"), []).append(index)
    deleted = records[by_type["redress.routing.assigned.v1"][0]][1]
    assert any(  # a later routing event names it as its chain predecessor
        ChainLink.parse(header(r, CHAIN_HEADER)).prev == uuid.UUID(header(deleted, "ce_id"))
        for _, r in records
    )
    altered = records[by_type["redress.case.remedy_accepted.v1"][0]][1]
    # The satisfaction survey, then the reopening that links to it (recovery's chain).
    first = records[by_type["redress.case.satisfaction_recorded.v1"][0]][1]
    second = records[by_type["redress.case.reopened.v1"][0]][1]
    assert ChainLink.parse(header(second, CHAIN_HEADER)).prev == uuid.UUID(header(first, "ce_id"))

    forged = SimpleNamespace(
        key=altered.key,
        value=altered.value.replace(b"2026-03-07", b"2026-03-08"),  # accepted a day later
        headers=altered.headers,
    )
    assert forged.value != altered.value
    tampered = [item for item in records if item[1] is not deleted]
    index = next(i for i, (_, r) in enumerate(tampered) if r is altered)
    tampered[index] = (tampered[index][0], forged)
    a = next(i for i, (_, r) in enumerate(tampered) if r is first)
    b = next(i for i, (_, r) in enumerate(tampered) if r is second)
    tampered[a], tampered[b] = tampered[b], tampered[a]

    copy = kafka.settings(f"{kafka_settings.topic_prefix}copy.")
    await ensure_topics(copy)
    await copy_records(copy, tampered)
    result = await audit(copy, "integrity", "--complaint", complaint_id, "-f", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    named = {(f["kind"], f["event_id"]) for f in report["findings"] if f["severity"] == "failure"}
    assert named == {
        ("deleted", header(deleted, "ce_id")),
        ("altered", header(altered, "ce_id")),
        ("reordered", header(second, "ce_id")),
    }, report["findings"]
    text = await audit(copy, "integrity", "--complaint", complaint_id)
    assert text.exit_code == 1
    assert f"FAILURE deleted {header(deleted, 'ce_id')}: event " in text.stdout
    assert f"FAILURE reordered redress.case.reopened.v1 {header(second, 'ce_id')}" in text.stdout
    assert f"FAILURE altered redress.case.remedy_accepted.v1 {header(altered, 'ce_id')}" in (
        text.stdout
    )

    # In the original log, an altered copy appended under the same id is named too.
    await copy_records(kafka_settings, [(TopicName.CASES, forged)])
    appended = await audit(kafka_settings, "integrity")
    assert appended.exit_code == 1
    failures = [line for line in appended.stdout.splitlines() if line.startswith("FAILURE")]
    assert len(failures) == 1
    assert failures[0].startswith(
        f"FAILURE altered redress.case.remedy_accepted.v1 {header(altered, 'ce_id')} at "
        f"redress.recovery.cases/"
    )


async def test_fixtures_of_every_version_replay_through_the_cli(
    kafka: KafkaHandle, kafka_settings: KafkaSettings
) -> None:
    fixtures = load_fixtures()
    await copy_records(kafka_settings, [(f.record.topic, f.record) for f in fixtures])
    old = next(f for f in fixtures if f.schema_version == 0)
    old_id = (old.record.key or b"").decode()
    result = await audit(kafka_settings, "history", old_id, "-f", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["events"]
    assert row["rule"] == {
        "matched_rules": ["billing-dispute", "small-amount"],
        "rules_version": "2025-11-pilot",
    }
    story_id = next(f for f in fixtures if f.schema_version == 1).record.key.decode()  # type: ignore[union-attr]
    end = await audit(kafka_settings, "as-of", story_id, MOMENTS.end.isoformat(), "-f", "json")
    assert end.exit_code == 0, end.output
    state = json.loads(end.stdout)
    assert state["status"] == "withdrawn"
    assert state["unhandled_types"] == []
    assert state["incidents"][0]["state"] == "resolved"

    unknown = await audit(kafka_settings, "history", str(uuid.uuid4()))
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("redress audit: unknown complaint: no events for complaint")
    assert len(unknown.stderr.strip().splitlines()) == 1
    elsewhere = kafka.settings(f"{kafka_settings.topic_prefix}nothing-here.")
    wrong_prefix = await audit(elsewhere, "history", old_id)
    assert wrong_prefix.exit_code == 2
    assert wrong_prefix.stderr.strip().endswith("(check REDRESS_KAFKA_TOPIC_PREFIX)")
    assert len(wrong_prefix.stderr.strip().splitlines()) == 1
