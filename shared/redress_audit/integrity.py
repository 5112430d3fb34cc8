"""Tamper evidence check: verifies every record's chain link and names each deleted, altered or
reordered event. Pure: it is given the records (as stored) and returns findings.

The writer side and the header format are in `redress_events.chain`. What is checked:

- altered: the record's digest is not sha256(predecessor's digest || its canonical bytes), i.e.
  its attributes, data or chain header changed after it was written (or its link is malformed);
- deleted: an event that another names as its chain predecessor or as its cause is not in the
  log (the finding names the missing event's id, chain and who referred to it);
- reordered: an event stands before its chain predecessor or its cause in the same partition.

Never a finding by design (so several writer replicas, restarts and redeliveries raise no false
alarm): forks (two events linking to one predecessor), anchored events (a writer that did not
know the subject), byte-identical duplicates. A second copy of an event id with different content
whose own link verifies is a warning (consumers keep the first copy), as is an unchained record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from redress_events import InvalidEvent
from redress_events.chain import (
    CHAIN_HEADER,
    ChainLink,
    MalformedChainLink,
    anchor_digest,
    canonical_bytes,
    chain_digest,
)
from redress_events.wire import header_map

from redress_audit.records import StoredRecord

FAILURE = "failure"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    kind: str  # altered | deleted | reordered | unreadable | duplicate | unchained
    severity: str  # failure | warning
    event_id: str | None
    event_type: str | None
    position: str | None
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "position": self.position,
            "message": self.message,
        }


@dataclass(frozen=True)
class IntegrityReport:
    records: int
    chains: int
    findings: tuple[Finding, ...]

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == FAILURE)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class _Entry:
    record: StoredRecord
    index: int
    attrs: dict[str, str]
    link: ChainLink | None
    canonical: bytes = b""
    verified: bool = False

    @property
    def event_id(self) -> str:
        return self.attrs.get("ce_id", "")

    @property
    def chain(self) -> tuple[str, str]:
        return (self.attrs.get("ce_source", ""), self.attrs.get("ce_subject", ""))

    @property
    def type(self) -> str | None:
        return self.attrs.get("ce_type")

    def before(self, other: _Entry) -> bool | None:
        """Whether self stands before other in one partition; None across partitions."""
        if (self.record.topic, self.record.partition) != (
            other.record.topic,
            other.record.partition,
        ):
            return None
        return self.record.offset < other.record.offset


@dataclass
class _Missing:
    event_id: str
    chain: tuple[str, str] | None = None
    referred_by: list[str] = field(default_factory=list)


def missing_causes(records: Iterable[StoredRecord]) -> set[str]:
    """Cause ids named by these records that are not among them (to look up elsewhere)."""
    ids: set[str] = set()
    causes: set[str] = set()
    for record in records:
        try:
            attrs = header_map(record.headers)
        except InvalidEvent:
            continue
        ids.add(attrs.get("ce_id", ""))
        if attrs.get("ce_causationid"):
            causes.add(attrs["ce_causationid"])
    return causes - ids


def verify(
    records: Sequence[StoredRecord],
    *,
    check_cause: Callable[[StoredRecord], bool] | None = None,
    known_elsewhere: frozenset[str] = frozenset(),
) -> IntegrityReport:
    """Check every record. `check_cause` says whose cause must be present (default: all);
    `known_elsewhere` are ids that exist outside `records` (found by a wider read)."""
    findings: list[Finding] = []
    entries: list[_Entry] = []
    for index, record in enumerate(records):
        try:
            attrs = header_map(record.headers)
        except InvalidEvent as exc:
            findings.append(_finding("unreadable", FAILURE, None, record, exc.detail))
            continue
        absent = [a for a in ("ce_id", "ce_source", "ce_subject") if not attrs.get(a)]
        if absent:
            findings.append(
                _finding("unreadable", FAILURE, None, record, f"no {', '.join(absent)} header")
            )
            continue
        entry = _Entry(record, index, attrs, None)
        entry.canonical = canonical_bytes(attrs=attrs, value=record.value or b"")
        raw_link = attrs.get(CHAIN_HEADER)
        if raw_link is None:
            findings.append(
                _finding(
                    "unchained",
                    WARNING,
                    entry,
                    record,
                    "no chain header (written before chaining, or not by a Redress writer)",
                )
            )
        else:
            try:
                entry.link = ChainLink.parse(raw_link)
            except MalformedChainLink as exc:
                findings.append(_finding("altered", FAILURE, entry, record, f"chain header: {exc}"))
        entries.append(entry)

    by_id: dict[str, list[_Entry]] = {}
    for entry in entries:
        by_id.setdefault(entry.event_id, []).append(entry)

    missing: dict[str, _Missing] = {}
    for entry in entries:
        if entry.link is not None:
            findings.extend(_check_link(entry, by_id, missing))
    for entry in entries:
        cause = entry.attrs.get("ce_causationid")
        if not cause or (check_cause is not None and not check_cause(entry.record)):
            continue
        copies = by_id.get(cause)
        if not copies:
            if cause not in known_elsewhere:
                gone = missing.setdefault(cause, _Missing(cause))
                gone.referred_by.append(f"the cause of {_name(entry)}")
            continue
        order = [c.before(entry) for c in copies]
        if all(o is False for o in order):
            findings.append(
                _finding(
                    "reordered",
                    FAILURE,
                    entry,
                    entry.record,
                    f"stands before its cause {cause} ({copies[0].type}) at "
                    f"{copies[0].record.position}",
                )
            )
    for gone in missing.values():
        chain = f" of {gone.chain[0]} about {gone.chain[1]}" if gone.chain else ""
        findings.append(
            Finding(
                kind="deleted",
                severity=FAILURE,
                event_id=gone.event_id,
                event_type=None,
                position=None,
                message=f"event {gone.event_id}{chain} is missing; it is "
                + "; ".join(gone.referred_by),
            )
        )
    findings.extend(_duplicates(by_id))
    chains = len({e.chain for e in entries if e.link is not None})
    return IntegrityReport(records=len(records), chains=chains, findings=tuple(findings))


def _check_link(
    entry: _Entry, by_id: dict[str, list[_Entry]], missing: dict[str, _Missing]
) -> list[Finding]:
    link = entry.link
    assert link is not None
    if link.prev is None:
        source, subject = entry.chain
        expected = chain_digest(
            previous=anchor_digest(source=source, subject=subject), canonical=entry.canonical
        )
        if expected == link.digest:
            entry.verified = True
            return []
        return [_altered(entry)]
    prev = str(link.prev)
    copies = by_id.get(prev)
    if not copies:
        gone = missing.setdefault(prev, _Missing(prev))
        gone.chain = entry.chain
        gone.referred_by.insert(0, f"the chain predecessor of {_name(entry)}")
        return []
    same_chain = [c for c in copies if c.chain == entry.chain and c.link is not None]
    matches = [
        c
        for c in same_chain
        if c.link is not None
        and chain_digest(previous=bytes.fromhex(c.link.digest), canonical=entry.canonical)
        == link.digest
    ]
    if not matches:
        if not same_chain:
            return [_altered(entry, "its chain predecessor belongs to another chain")]
        return [_altered(entry)]
    entry.verified = True
    order = [c.before(entry) for c in matches]
    if all(o is False for o in order):
        return [
            _finding(
                "reordered",
                FAILURE,
                entry,
                entry.record,
                f"stands before its chain predecessor {prev} ({matches[0].type}) at "
                f"{matches[0].record.position}",
            )
        ]
    return []


def _duplicates(by_id: dict[str, list[_Entry]]) -> list[Finding]:
    findings = []
    for copies in by_id.values():
        if len(copies) < 2:
            continue
        first = copies[0]
        for other in copies[1:]:
            if other.canonical == first.canonical:
                continue  # a redelivered copy: the same event again
            if first.verified and other.verified:
                findings.append(
                    _finding(
                        "duplicate",
                        WARNING,
                        other,
                        other.record,
                        f"a second copy of {first.event_id} with different content (the first, "
                        f"at {first.record.position}, is the one every consumer keeps)",
                    )
                )
    return findings


def _altered(entry: _Entry, why: str | None = None) -> Finding:
    return _finding(
        "altered",
        FAILURE,
        entry,
        entry.record,
        why or "its content or chain header changed after it was written (digest mismatch)",
    )


def _name(entry: _Entry) -> str:
    return f"{entry.type} {entry.event_id} at {entry.record.position}"


def _finding(
    kind: str, severity: str, entry: _Entry | None, record: StoredRecord, message: str
) -> Finding:
    return Finding(
        kind=kind,
        severity=severity,
        event_id=entry.event_id if entry else None,
        event_type=entry.type if entry else None,
        position=record.position,
        message=message,
    )
