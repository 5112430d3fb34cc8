"""Bad input on the Kafka door: >= 1,000 generated malformed inbound events (truncated JSON,
wrong types, huge values, bad UTF-8, missing attributes, wrong keys, wrong envelopes) sent to
`redress.inbound` interleaved with valid ones. Every malformed one must be dead-lettered once,
with a reason; every valid one must become exactly one ComplaintReceived; intake's consumer must
still be alive and consuming at the end.

Written against the documented behaviour of intake's inbound consumer (`redress_intake.inbound`):
it does not skip when that module is missing, it fails."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from redress_events import TopicName
from redress_events.catalogue import ComplaintReceived
from redress_kafka.settings import KafkaSettings

from tests.badinput.corpus import MARKER, generate_corpus
from tests.support.kafka import read_events, read_topic
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.kafka


def _header(headers: object, name: str) -> str | None:
    for key, value in headers or ():  # type: ignore[attr-defined]
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return None


async def test_malformed_inbound_events_are_dead_lettered_and_valid_ones_processed(
    service_factory: Callable[..., ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    corpus = generate_corpus()
    bad = {r.marker: r for r in corpus if not r.valid}
    valid = {r.marker: r for r in corpus if r.valid}
    assert len(bad) >= 1000 and len(valid) >= 100

    intake = service_factory(
        "intake",
        REDRESS_INTAKE_INBOUND_GROUP_ID=f"inbound-{kafka_settings.topic_prefix.strip('.')}",
    ).start()

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        max_request_size=2_000_000,
        linger_ms=5,
    )
    await producer.start()
    try:
        topic = kafka_settings.topic(TopicName.INBOUND)
        for record in corpus:
            await producer.send(topic, key=record.key, value=record.value, headers=record.headers)
        await producer.flush()
    finally:
        await producer.stop()

    # Bounded wait until every record has an outcome (or the time is up).
    deadline = time.monotonic() + 180
    while True:
        letters = await read_topic(kafka_settings, TopicName.DEADLETTER, timeout_s=30)
        received = [
            e.data
            for e in await read_events(kafka_settings, TopicName.COMPLAINTS)
            if isinstance(e.data, ComplaintReceived)
        ]
        outcomes = len({_header(r.headers, MARKER) for r in letters}) + len(received)
        if outcomes >= len(corpus) or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)

    lettered: dict[str, list[str | None]] = defaultdict(list)
    for letter in letters:
        marker = _header(letter.headers, MARKER)
        assert marker is not None, f"a dead letter lost its original headers: {letter.headers}"
        lettered[marker].append(_header(letter.headers, "dlq_reason"))
        assert _header(letter.headers, "dlq_original_topic") == topic

    not_lettered = sorted(set(bad) - set(lettered))
    assert not not_lettered, (
        f"{len(not_lettered)} malformed records were not dead-lettered: {not_lettered[:20]}"
    )
    twice = sorted(m for m, reasons in lettered.items() if len(reasons) > 1)
    assert not twice, f"dead-lettered more than once: {twice[:20]}"
    no_reason = sorted(m for m, reasons in lettered.items() if not all(reasons))
    assert not no_reason, f"dead letters without a dlq_reason: {no_reason[:20]}"
    valid_lettered = sorted(set(valid) & set(lettered))
    assert not valid_lettered, f"valid records were dead-lettered: {valid_lettered[:20]}"

    by_subject = Counter(str(c.complaint_id) for c in received)
    wanted = {r.subject for r in valid.values() if r.subject}
    missing = sorted(s for s in wanted if by_subject[s] == 0)
    assert not missing, f"{len(missing)} valid inbound events never became a complaint: {missing}"
    duplicated = sorted(s for s in wanted if by_subject[s] > 1)
    assert not duplicated, f"valid inbound events appended more than once: {duplicated}"
    strays = sorted(s for s in by_subject if s not in wanted)
    assert not strays, f"complaints appended from malformed records: {strays[:20]}"
    assert all(c.submitted_via == "kafka" for c in received)

    # None crashed the consumer: the process is alive, ready, and the last record (valid) and
    # every valid one after a malformed one went through.
    assert intake.process is not None and intake.process.poll() is None, intake.log_tail()
    async with intake.client() as client:
        assert (await client.get("/readyz")).status_code == 200

    reasons = Counter(
        (bad[m].kind, reason) for m, rs in lettered.items() if m in bad for reason in rs
    )
    print("dead-letter reasons by family:")
    for (kind, reason), n in sorted(reasons.items()):
        print(f"  {kind:20} {reason:20} {n}")
