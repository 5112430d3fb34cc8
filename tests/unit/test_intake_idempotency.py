"""An Idempotency-Key accepted by one intake replica is known to the others (and to this one
after a restart) through the complaints topic: the digest header of keyed records teaches the
store, and a retry is answered from it instead of writing a second version of the event."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from redress_events.catalogue import ComplaintSubmission
from redress_intake.accepted import learn_accepted
from redress_intake.complaints import receive_complaint
from redress_intake.idempotency import (
    DIGEST_HEADER,
    IdempotencyConflict,
    IdempotencyStore,
    complaint_id_for,
    fingerprint,
)
from redress_kafka.producer import BrokerUnavailable

from tests.support.complaints import complaint_body


@dataclass
class Record:
    key: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))


class RecordingProducer:
    def __init__(self) -> None:
        self.extra_headers: list[tuple[tuple[str, bytes], ...]] = []

    async def publish(self, envelope: Any, *, extra_headers: Any = ()) -> None:
        self.extra_headers.append(tuple(extra_headers))


def digest_of(submission: ComplaintSubmission) -> str:
    return fingerprint(submission.model_dump_json().encode())


def keyed_record(complaint_id: uuid.UUID, digest: str, **kwargs: Any) -> Record:
    return Record(str(complaint_id).encode(), [(DIGEST_HEADER, digest.encode())], **kwargs)


def receive(
    submission: ComplaintSubmission,
    store: IdempotencyStore,
    producer: RecordingProducer,
    key: str | None,
) -> Any:
    return receive_complaint(
        submission=submission,
        caller="crm",
        idempotency_key=key,
        producer=producer,  # type: ignore[arg-type]
        store=store,
        source="/redress/intake",
    )


async def test_a_key_learned_from_the_log_is_answered_without_a_write() -> None:
    submission = ComplaintSubmission(**complaint_body())
    complaint_id = complaint_id_for("crm", "k-1")
    store = IdempotencyStore(ttl_s=3600, max_keys=100)
    learned = learn_accepted(
        store, [keyed_record(complaint_id, digest_of(submission))], now_s=time.time()
    )
    assert learned == 1
    producer = RecordingProducer()
    receipt = await receive(submission, store, producer, "k-1")
    assert receipt.replayed and receipt.complaint_id == complaint_id
    assert producer.extra_headers == []
    assert store._locks == {}  # an early answer releases its lock too


async def test_another_body_under_a_key_learned_from_the_log_is_a_conflict() -> None:
    complaint_id = complaint_id_for("crm", "k-2")
    store = IdempotencyStore(ttl_s=3600, max_keys=100)
    learn_accepted(store, [keyed_record(complaint_id, "0" * 64)], now_s=time.time())
    with pytest.raises(IdempotencyConflict):
        await receive(ComplaintSubmission(**complaint_body()), store, RecordingProducer(), "k-2")


async def test_a_keyed_write_carries_its_digest_and_an_unkeyed_one_none() -> None:
    submission = ComplaintSubmission(**complaint_body())
    store = IdempotencyStore(ttl_s=3600, max_keys=100)
    producer = RecordingProducer()
    await receive(submission, store, producer, "k-3")
    await receive(submission, store, producer, None)
    assert producer.extra_headers == [((DIGEST_HEADER, digest_of(submission).encode()),), ()]


def test_records_that_teach_nothing_are_passed_over() -> None:
    store = IdempotencyStore(ttl_s=3600, max_keys=100)
    now = time.time()
    complaint_id = uuid.uuid4()
    records = [
        Record(str(uuid.uuid4()).encode(), []),  # unkeyed: no digest header
        Record(None, [(DIGEST_HEADER, b"ab")]),
        Record(b"not-a-uuid", [(DIGEST_HEADER, b"ab")]),
        Record(str(complaint_id).encode(), [(DIGEST_HEADER, b"\xff\xfe")]),
        keyed_record(uuid.uuid4(), "ab", timestamp=int((now - 7200) * 1000)),  # past the TTL
    ]
    learn_accepted(store, records, now_s=now)
    assert len(store) == 0


async def test_an_incomplete_store_holds_a_keyed_request_until_it_has_read_the_log() -> None:
    submission = ComplaintSubmission(**complaint_body())
    complaint_id = complaint_id_for("crm", "k-4")
    store = IdempotencyStore(ttl_s=3600, max_keys=100, complete=False, wait_s=5)
    producer = RecordingProducer()
    pending = asyncio.create_task(receive(submission, store, producer, "k-4"))
    await asyncio.sleep(0.05)
    assert not pending.done()
    # The log turns out to hold the key (accepted by another replica before this one started).
    learn_accepted(store, [keyed_record(complaint_id, digest_of(submission))], now_s=time.time())
    store.mark_complete()
    receipt = await pending
    assert receipt.replayed
    assert producer.extra_headers == []


async def test_a_store_that_cannot_finish_reading_refuses_keyed_requests() -> None:
    store = IdempotencyStore(ttl_s=3600, max_keys=100, complete=False, wait_s=0.05)
    with pytest.raises(BrokerUnavailable):
        await receive(ComplaintSubmission(**complaint_body()), store, RecordingProducer(), "k-5")


def test_the_store_keeps_the_most_recent_keys_within_its_bound() -> None:
    store = IdempotencyStore(ttl_s=3600, max_keys=3)
    ids = [uuid.uuid4() for _ in range(5)]
    for n, complaint_id in enumerate(ids):
        store.learn(complaint_id, str(n) * 64, age_s=0)
    store.learn(ids[2], "2" * 64, age_s=0)  # learned again: now the most recent
    assert len(store) == 3
    assert store.get(ids[0], "0" * 64) is None and store.get(ids[1], "1" * 64) is None
    assert [store.get(i, str(n) * 64) is not None for n, i in enumerate(ids)][2:] == [True] * 3
    with pytest.raises(IdempotencyConflict):
        store.get(ids[4], "3" * 64)
