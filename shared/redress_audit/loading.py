"""What the audit commands read: one complaint's records (its topics' key partitions plus the
incidents it is linked to), or the whole log. Thin: reading is `reader`, deciding is pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from redress_events import Envelope, EventData, InvalidEvent, TopicName

from redress_audit.history import linked_incidents
from redress_audit.integrity import IntegrityReport, missing_causes, verify
from redress_audit.reader import LogReader, ReadScope
from redress_audit.records import AUDITED_TOPICS, COMPLAINT_TOPICS, StoredRecord, decode_all


class UnknownComplaint(Exception):
    pass


@dataclass(frozen=True)
class ComplaintLog:
    complaint_id: str
    records: list[StoredRecord]  # the complaint's own and its incidents' records
    events: list[Envelope[EventData]]
    invalid: list[tuple[StoredRecord, InvalidEvent]]
    incidents: list[str]


def complaint_key(complaint_id: str) -> str:
    """The canonical form of a complaint id (the record key), or ValueError."""
    return str(uuid.UUID(complaint_id))


async def load_complaint(
    reader: LogReader, complaint_id: str, *, scan: bool = False
) -> ComplaintLog:
    key = complaint_id.encode()
    await reader.require_topics(COMPLAINT_TOPICS)
    records = await reader.read([ReadScope(t, key, scan) for t in COMPLAINT_TOPICS])
    if not records and not scan:
        # Keys hash to one partition unless a topic's partition count changed: look everywhere
        # before saying the complaint does not exist.
        records = await reader.read([ReadScope(t, key, True) for t in COMPLAINT_TOPICS])
    if not records:
        raise UnknownComplaint(f"no events for complaint {complaint_id}")
    events, invalid = decode_all(records)
    incidents = linked_incidents(events)
    if incidents:
        incident_records = await reader.read(
            [ReadScope(TopicName.INCIDENTS, i.encode(), scan) for i in incidents]
        )
        more, more_invalid = decode_all(incident_records)
        records = records + incident_records
        events = events + more
        invalid = invalid + more_invalid
    return ComplaintLog(complaint_id, records, events, invalid, incidents)


async def check_complaint(
    reader: LogReader, complaint_id: str, *, scan: bool = False
) -> tuple[ComplaintLog, IntegrityReport]:
    log = await load_complaint(reader, complaint_id, scan=scan)
    own = {r for r in log.records if r.key == complaint_id.encode()}
    elsewhere: frozenset[str] = frozenset()
    missing = missing_causes(r for r in log.records if r in own)
    if missing:
        # A cause may be another subject's event (an incident, another complaint): before
        # calling it deleted, look for it in the whole log.
        everything = await reader.read([ReadScope(t) for t in AUDITED_TOPICS])
        elsewhere = frozenset(missing & _ids(everything))
    report = verify(log.records, check_cause=lambda r: r in own, known_elsewhere=elsewhere)
    return log, report


async def check_everything(reader: LogReader) -> IntegrityReport:
    await reader.require_topics(AUDITED_TOPICS)
    return verify(await reader.read([ReadScope(t) for t in AUDITED_TOPICS]))


def _ids(records: list[StoredRecord]) -> set[str]:
    found = set()
    for record in records:
        for name, raw in record.headers:
            if name == "ce_id" and raw is not None:
                found.add(raw.decode("utf-8", "replace"))
    return found
