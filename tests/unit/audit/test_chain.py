"""The writer-side hash chain and the integrity check, on a whole complaint's records."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from typing import Any

import pytest
from redress_audit.integrity import FAILURE, IntegrityReport, verify
from redress_audit.records import StoredRecord
from redress_events import encode_envelope
from redress_events.chain import (
    CHAIN_HEADER,
    ChainLink,
    ChainSealer,
    MalformedChainLink,
    expected_digest,
)

from tests.fixtures.events.story import complaint_story, sealed_records


def header(record: StoredRecord, name: str) -> str:
    return dict(record.headers)[name].decode()


def link(record: StoredRecord) -> ChainLink:
    return ChainLink.parse(header(record, CHAIN_HEADER))


def failures(report: IntegrityReport) -> list[tuple[str, str | None]]:
    return [(f.kind, f.event_id) for f in report.failures]


def test_link_header_round_trips_and_rejects_garbage() -> None:
    prev = uuid.uuid4()
    for value in (ChainLink("ab" * 32, prev), ChainLink("cd" * 32, None)):
        assert ChainLink.parse(value.header_value()) == value
    for bad in (
        "",
        "sha256:abc;anchor",
        "md5:" + "a" * 32 + ";anchor",
        "sha256:" + "a" * 64,
        "sha256:" + "a" * 64 + ";prev=nope",
        "sha256:" + "A" * 64 + ";anchor",
    ):
        with pytest.raises(MalformedChainLink):
            ChainLink.parse(bad)


def test_one_writer_links_each_event_to_its_previous_one_per_subject() -> None:
    records = sealed_records(complaint_story())
    routing = [
        r
        for r in records
        if header(r, "ce_source") == "/redress/routing"
        and r.topic.value == "redress.routing.decisions"
    ]
    assert link(routing[0]).prev is None  # the writer knew nothing of this subject yet
    for before, after in itertools.pairwise(routing):
        assert link(after).prev == uuid.UUID(header(before, "ce_id"))
        assert link(after).digest == expected_digest(
            attrs={k: v.decode() for k, v in after.headers},
            value=after.value or b"",
            previous_digest=link(before).digest,
        )


def test_the_story_as_written_has_no_findings() -> None:
    report = verify(sealed_records(complaint_story()))
    assert report.records == len(complaint_story())
    assert report.chains == 4  # intake, routing, recovery about the complaint; routing: incident
    assert report.findings == ()


def test_unacknowledged_batches_never_become_heads() -> None:
    sealer = ChainSealer()
    first, second, third = complaint_story()[:3]
    committed = sealer.batch()
    committed.seal(headers=encode_envelope(second)[2], value=encode_envelope(second)[1])
    committed.commit()
    failed = sealer.batch()  # e.g. the broker never acknowledged it
    failed.seal(headers=encode_envelope(third)[2], value=encode_envelope(third)[1])
    after = sealer.batch()
    headers = after.seal(headers=encode_envelope(third)[2], value=encode_envelope(third)[1])
    assert ChainLink.parse(dict(headers)[CHAIN_HEADER].decode()).prev == second.id
    assert first.source != second.source  # intake's first event is another writer's chain


def test_resending_the_head_gives_a_byte_identical_record() -> None:
    sealer = ChainSealer()
    events = [e for e in complaint_story() if e.source == "/redress/routing"][:2]
    sent = []
    for envelope in [*events, events[1]]:  # a redelivered input re-publishes its output
        batch = sealer.batch()
        _, value, headers = encode_envelope(envelope)
        sent.append(batch.seal(headers=headers, value=value))
        batch.commit()
    assert sent[2] == sent[1]


def test_heads_are_an_lru_of_bounded_size() -> None:
    sealer = ChainSealer(capacity=2)
    first, second, third = (complaint_story(uuid.uuid4())[:1] for _ in range(3))

    def write(envelope: Any) -> None:
        batch = sealer.batch()
        _, value, headers = encode_envelope(envelope)
        batch.seal(headers=headers, value=value)
        batch.commit()

    def known(story: list[Any]) -> bool:
        return sealer.head(source=story[0].source, subject=story[0].subject) is not None

    write(first[0])
    write(second[0])
    write(first[0])  # written again (a redelivered input): now the most recent of the two
    write(third[0])
    assert len(sealer) == 2
    assert known(first) and known(third) and not known(second)


def test_restarts_and_replicas_raise_no_false_alarm() -> None:
    """Writers that forget (restart) or do not see each other (replicas) fork or anchor."""
    events = complaint_story()
    replicas = [ChainSealer(), ChainSealer()]
    records: list[StoredRecord] = []
    for index, envelope in enumerate(events):
        if index == 20:
            replicas = [ChainSealer(), ChainSealer()]  # both restart
        sealers = {envelope.source: replicas[index % 2]}
        records.extend(sealed_records([envelope], sealers=sealers))
    # Re-number offsets per partition as the broker would have.
    renumbered = renumber(records)
    # A redelivery on another replica appends the same event again.
    renumbered = renumber([*renumbered, *sealed_records([events[5]], sealers={})])
    assert verify(renumbered).findings == ()


def renumber(records: list[StoredRecord]) -> list[StoredRecord]:
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for record in records:
        key = (record.topic.value, record.partition)
        out.append(dataclasses.replace(record, offset=offsets.get(key, 0)))
        offsets[key] = offsets.get(key, 0) + 1
    return out


def referenced_ids(records: list[StoredRecord]) -> set[str]:
    refs = set()
    for record in records:
        prev = link(record).prev
        if prev is not None:
            refs.add(str(prev))
        cause = dict(record.headers).get("ce_causationid")
        if cause:
            refs.add(cause.decode())
    return refs


def test_every_deleted_event_that_anything_refers_to_is_named() -> None:
    records = sealed_records(complaint_story())
    refs = referenced_ids(records)
    detected = 0
    for index, gone in enumerate(records):
        gone_id = header(gone, "ce_id")
        kept = renumber(records[:index] + records[index + 1 :])
        report = verify(kept)
        if gone_id in refs:
            assert ("deleted", gone_id) in failures(report), (gone_id, report.findings)
            detected += 1
        else:  # a chain's last event that nothing names: undetectable by design (docs/audit.md)
            assert report.failures == ()
    assert detected == len(records) - 4  # only the tips of the four chains


@pytest.mark.parametrize("what", ["value", "ce_time", "ce_causationid", "ce_type", "chain"])
def test_every_altered_event_is_named(what: str) -> None:
    records = sealed_records(complaint_story())
    for index, original in enumerate(records):
        headers = dict(original.headers)
        value = original.value or b""
        if what == "value":
            value = value.replace(b"}", b',"x":1}', 1) if b"}" in value else value + b" "
        elif what == "chain":
            digest = link(original).digest
            flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
            headers[CHAIN_HEADER] = headers[CHAIN_HEADER].replace(digest.encode(), flipped.encode())
        else:
            headers[what] = headers.get(what, b"") + b"0"
        tampered = dataclasses.replace(original, value=value, headers=tuple(headers.items()))
        report = verify([*records[:index], tampered, *records[index + 1 :]])
        named = failures(report)
        assert ("altered", header(original, "ce_id")) in named, (what, index, report.findings)


def test_a_reordered_event_is_named() -> None:
    records = sealed_records(complaint_story())
    routing = [i for i, r in enumerate(records) if r.topic.value == "redress.routing.decisions"]
    a, b = routing[1], routing[2]  # ComplaintAssigned, then SlaClockStarted (links to it)
    swapped = list(records)
    swapped[a] = dataclasses.replace(records[b], offset=records[a].offset)
    swapped[b] = dataclasses.replace(records[a], offset=records[b].offset)
    report = verify(swapped)
    assert failures(report) == [("reordered", header(records[b], "ce_id"))]
    assert "before its chain predecessor" in report.failures[0].message


def test_an_altered_copy_is_a_failure_and_a_writer_made_copy_only_a_warning() -> None:
    records = sealed_records(complaint_story())
    original = next(r for r in records if header(r, "ce_type") == "redress.routing.assigned.v1")
    forged_value = (original.value or b"").replace(b"product-safety", b"general")
    stale = dataclasses.replace(original, offset=10_000, value=forged_value)
    report = verify([*records, stale])
    assert [(f.kind, f.severity, f.position) for f in report.findings] == [
        ("altered", FAILURE, stale.position)
    ]
    # The same id re-sealed by a writer (e.g. intake idempotency on another replica): consumers
    # keep the first copy, the audit warns.
    resealed_headers = ChainSealer().batch().seal(headers=original.headers, value=forged_value)
    resealed = dataclasses.replace(stale, headers=tuple(resealed_headers))
    report = verify([*records, resealed])
    assert report.ok
    assert [f.kind for f in report.findings] == ["duplicate"]
