"""Business metrics derived from the events reporting applies and from its read model.

Reporting reads every event topic, so these metrics appear whichever service wrote the events
(routing's SLA clocks, recovery's remedies). Two entry points:

- `observe_applied(events, engine, stored=...)`: called by the projector after each batch is
  committed (`stored`: the events the store says that batch stored).
  Counters and histograms move only for events this delivery actually applied (a duplicate id
  whose stored position differs from the record's is skipped), so a redelivered copy is never
  counted twice.
- `refresh_from_store(engine)`: gauges that are states of the read model (open complaints by
  priority, incidents open), recomputed from the store; `refresh_periodically` runs it on a
  timer, so the gauges are right after a restart and never drift from the read model.

Labels are bounded enums (priority, SLA target, escalation tier, ISO 4217 currency): never a
complaint id, customer id or anything personal. Counters restart from zero with the process,
as Prometheus counters do; a rebuild from offset 0 replays history into them (rate() shows it
as a burst).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from redress_events import Envelope, EventData
from redress_events.catalogue import (
    AgentResponded,
    CompensationIssued,
    ComplaintEscalated,
    ComplaintReceived,
    ComplaintResolved,
    ExternalAgentResponded,
    SatisfactionRecorded,
    SlaBreached,
    SlaMet,
)
from redress_events.catalogue.routing import EscalationTier, SlaTarget
from redress_events.values import ISO_4217, Priority
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from redress_reporting.store import complaints, incidents, timeline

log = logging.getLogger(__name__)

# ---- metric objects -------------------------------------------------------------------------

NO_PRIORITY = "none"  # received, not prioritized yet
NO_CURRENCY = "none"  # a non-monetary compensation (e.g. an apology or a replacement)
OTHER = "other"  # a label value this build does not know (newer producer); keeps labels bounded
PRIORITY_LABELS = (*(p.value for p in Priority), NO_PRIORITY)
SLA_TARGET_LABELS = tuple(t.value for t in SlaTarget)
TIER_LABELS = tuple(t.value for t in EscalationTier)
# Statuses that are not open: finished ones, and "unknown" (events of a complaint whose receipt
# has not been applied yet). Open: received, open, in_progress, awaiting_customer, reopened.
CLOSED_STATUSES = ("resolved", "closed", "withdrawn", "unknown")

# Complaint handling runs from minutes (first response) to weeks (FCA DISP: 8 weeks).
DURATION_BUCKETS = (
    1.0,
    10.0,
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    4 * 3600.0,
    8 * 3600.0,
    86400.0,
    3 * 86400.0,
    7 * 86400.0,
    15 * 86400.0,
    28 * 86400.0,
    56 * 86400.0,
    90 * 86400.0,
)
SATISFACTION_BUCKETS = tuple(float(score) for score in range(1, 11))

COMPLAINTS_OPEN = Gauge(
    "redress_complaints_open",
    "Complaints not yet resolved, closed or withdrawn, by priority (none = not prioritized yet)",
    ["priority"],
)
INCIDENTS_OPEN = Gauge(
    "redress_incidents_open",
    "Incidents detected and not yet resolved",
)
SLA_BREACHES = Counter(
    "redress_sla_breaches_total",
    "SLA deadlines breached, by target (first_response, next_update, resolution, regulatory)",
    ["target"],
)
SLA_MET = Counter(
    "redress_sla_met_total",
    "SLA deadlines met, by target",
    ["target"],
)
TIME_TO_FIRST_RESPONSE = Histogram(
    "redress_time_to_first_response_seconds",
    "Wall-clock time from a complaint's receipt to the first response to the customer",
    buckets=DURATION_BUCKETS,
)
TIME_TO_RESOLUTION = Histogram(
    "redress_time_to_resolution_seconds",
    "Wall-clock time from a complaint's receipt to its first resolution",
    buckets=DURATION_BUCKETS,
)
ESCALATIONS = Counter(
    "redress_escalations_total",
    "Escalations, by the tier the complaint moved to",
    ["tier"],
)
COMPENSATION_AMOUNT = Counter(
    "redress_compensation_amount_total",
    "Compensation issued, in major units of the currency (e.g. pounds), by ISO 4217 currency",
    ["currency"],
)
COMPENSATIONS = Counter(
    "redress_compensations_issued_total",
    "Compensations issued (including non-monetary ones), by ISO 4217 currency or none",
    ["currency"],
)
SATISFACTION = Histogram(
    "redress_satisfaction_score",
    "Customer satisfaction scores recorded after resolution (1 = worst, 10 = best)",
    buckets=SATISFACTION_BUCKETS,
)
METRICS_REFRESHED = Gauge(
    "redress_business_metrics_refreshed_timestamp_seconds",
    "Unix time of the last successful refresh of the read-model gauges",
)

# Every known label value exists from the start at 0, so dashboards and alerts see a series
# (and rate() sees the first increment) before the first event of its kind.
for _priority in PRIORITY_LABELS:
    COMPLAINTS_OPEN.labels(_priority)
for _target in SLA_TARGET_LABELS:
    SLA_BREACHES.labels(_target)
    SLA_MET.labels(_target)
for _tier in TIER_LABELS:
    ESCALATIONS.labels(_tier)

RESPONSE_TYPES = (AgentResponded.event_type, ExternalAgentResponded.event_type)
RESOLVED_TYPES = (ComplaintResolved.event_type,)
RECEIVED_TYPE = ComplaintReceived.event_type


def _bounded(value: str, known: Iterable[str]) -> str:
    return value if value in known else OTHER


# ---- per batch ------------------------------------------------------------------------------

# Set when a batch applied something since the last gauge refresh.
_dirty = threading.Event()


def observe_applied(
    events: Sequence[Envelope[EventData]],
    engine: Engine,
    *,
    stored: Sequence[Envelope[EventData]] | None = None,
    stored_ids: Sequence[str] | None = None,
) -> None:
    """Move counters and histograms for the events of a committed batch. Never raises: a
    metrics failure must not stop the projection (it is logged). `stored`, when the caller
    knows it (`ReadModelStore.apply(...).fresh`), is the events that very batch stored: then
    the store is not asked which of `events` it stored from these records. `stored_ids`: their
    ids as strings (`...fresh_ids`), where the caller has them (`str(uuid)` is not free)."""
    if not events:
        return
    try:
        with engine.connect() as conn:
            if stored is None:
                fresh, fresh_ids = _freshly_applied(conn, events)
            else:
                ids = [str(e.id) for e in stored] if stored_ids is None else stored_ids
                fresh, fresh_ids = _not_yet_observed(stored, ids)
            if not fresh:
                return
            _dirty.set()
            for envelope in fresh:
                _count(envelope.data)
            _observe_durations(conn, fresh, set(fresh_ids))
    except Exception:
        log.exception("business metrics: observing a batch failed")


# Ids observed lately: the same record delivered twice at the same position (which the
# position check alone cannot tell from the first delivery) is counted once.
_OBSERVED_MAX = 100_000
_observed: OrderedDict[str, None] = OrderedDict()
_observed_lock = threading.Lock()


def _freshly_applied(
    conn: Connection, events: Sequence[Envelope[EventData]]
) -> tuple[list[Envelope[EventData]], list[str]]:
    """The events whose stored timeline row came from this very record, each once: a duplicate
    event id read at another position was dropped by the store and is not counted again."""
    stored: dict[str, tuple[str, int, int]] = {}
    event_ids = [str(e.id) for e in events]
    ids = list(set(event_ids))
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(
                timeline.c.event_id, timeline.c.topic, timeline.c.partition, timeline.c.offset
            ).where(timeline.c.event_id.in_(ids[start : start + 500]))
        )
        for row in rows:
            stored[row.event_id] = (row.topic, row.partition, row.offset)
    found = [
        (e, event_id)
        for e, event_id in zip(events, event_ids, strict=True)
        if stored.get(event_id) == tuple(e.position or ("", -1, -1))
    ]
    return _not_yet_observed([e for e, _ in found], [event_id for _, event_id in found])


def _not_yet_observed(
    events: Sequence[Envelope[EventData]], event_ids: Sequence[str]
) -> tuple[list[Envelope[EventData]], list[str]]:
    """The events (with their ids, `event_ids` being theirs) not observed lately, each once;
    marks them observed."""
    fresh: list[Envelope[EventData]] = []
    fresh_ids: list[str] = []
    with _observed_lock:
        for envelope, event_id in zip(events, event_ids, strict=True):
            if event_id in _observed:
                continue
            _observed[event_id] = None
            fresh.append(envelope)
            fresh_ids.append(event_id)
        while len(_observed) > _OBSERVED_MAX:
            _observed.popitem(last=False)
    return fresh, fresh_ids


def _count(data: EventData) -> None:
    match data:
        case SlaBreached():
            SLA_BREACHES.labels(_bounded(data.target.value, SLA_TARGET_LABELS)).inc()
        case SlaMet():
            SLA_MET.labels(_bounded(data.target.value, SLA_TARGET_LABELS)).inc()
        case ComplaintEscalated():
            ESCALATIONS.labels(_bounded(data.tier.value, TIER_LABELS)).inc()
        case CompensationIssued():
            if data.amount is None:
                COMPENSATIONS.labels(NO_CURRENCY).inc()
            else:
                currency = _bounded(data.amount.currency, ISO_4217)
                COMPENSATIONS.labels(currency).inc()
                COMPENSATION_AMOUNT.labels(currency).inc(float(data.amount.amount))
        case SatisfactionRecorded():
            SATISFACTION.observe(float(data.score))


def _observe_durations(
    conn: Connection, fresh: Sequence[Envelope[EventData]], fresh_ids: set[str]
) -> None:
    """Time to first response and to resolution, observed once per complaint: when the later
    of (its receipt, its first response / resolution) is applied. Topics are not ordered with
    each other, so either may arrive first. `fresh_ids`: the ids of `fresh`."""
    touched = {
        e.subject
        for e in fresh
        if e.type == RECEIVED_TYPE or e.type in RESPONSE_TYPES or e.type in RESOLVED_TYPES
    }
    if not touched:
        return
    subjects = sorted(touched)
    received: dict[str, tuple[str, datetime]] = {}
    firsts: dict[tuple[str, str], tuple[str, datetime]] = {}
    for start in range(0, len(subjects), 500):
        chunk = subjects[start : start + 500]
        rows = conn.execute(
            select(
                timeline.c.complaint_id,
                timeline.c.event_id,
                timeline.c.type,
                timeline.c.time,
                timeline.c.summary,
            )
            .where(timeline.c.complaint_id.in_(chunk))
            .where(timeline.c.type.in_((RECEIVED_TYPE, *RESPONSE_TYPES, *RESOLVED_TYPES)))
            .order_by(timeline.c.time, timeline.c.event_id)
        )
        for row in rows:
            when = _domain_time(row.summary, row.time)
            if row.type == RECEIVED_TYPE:
                received.setdefault(row.complaint_id, (row.event_id, when))
            else:
                kind = "response" if row.type in RESPONSE_TYPES else "resolution"
                firsts.setdefault((row.complaint_id, kind), (row.event_id, when))
    for (subject, kind), (first_id, first_at) in firsts.items():
        if subject not in received:
            continue
        received_id, received_at = received[subject]
        if first_id not in fresh_ids and received_id not in fresh_ids:
            continue  # observed when the earlier of the two was applied
        seconds = max(0.0, (first_at - received_at).total_seconds())
        histogram = TIME_TO_FIRST_RESPONSE if kind == "response" else TIME_TO_RESOLUTION
        histogram.observe(seconds)


_TIME_FIELDS = ("received_at", "responded_at", "resolved_at")


def _domain_time(summary: Any, fallback: datetime) -> datetime:
    """The event's own time field (when it happened), else the envelope time."""
    if isinstance(summary, dict):
        for key in _TIME_FIELDS:
            value = summary.get(key)
            if isinstance(value, str):
                try:
                    parsed = datetime.fromisoformat(value)
                except ValueError:
                    continue
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback if fallback.tzinfo else fallback.replace(tzinfo=UTC)


# ---- gauges from the read model -------------------------------------------------------------

EngineSource = Engine | Callable[[], Engine]


def refresh_from_store(engine: Engine) -> None:
    """Recompute the read-model gauges: open complaints by priority, incidents open."""
    open_by_priority = dict.fromkeys(PRIORITY_LABELS, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(complaints.c.priority, func.count())
            .where(complaints.c.status.not_in(CLOSED_STATUSES))
            .group_by(complaints.c.priority)
        )
        for priority, count in rows:
            label = NO_PRIORITY if priority is None else _bounded(priority, PRIORITY_LABELS)
            open_by_priority[label] = open_by_priority.get(label, 0) + int(count)
        incidents_open = conn.execute(
            select(func.count()).select_from(incidents).where(incidents.c.status == "open")
        ).scalar_one()
    for label, count in open_by_priority.items():
        COMPLAINTS_OPEN.labels(label).set(count)
    INCIDENTS_OPEN.set(int(incidents_open))
    METRICS_REFRESHED.set(time.time())


async def refresh_periodically(source: EngineSource, interval_s: float = 5.0) -> None:
    """Refresh the gauges now, then at most every `interval_s` when a batch applied something.
    `source` may be a callable giving the store in force (it changes after a rebuild). Runs
    until cancelled; a failed refresh is logged and retried on the next tick."""
    first = True
    while True:
        if first or _dirty.is_set():
            _dirty.clear()
            try:
                engine = source() if callable(source) else source
                await asyncio.to_thread(refresh_from_store, engine)
                first = False
            except Exception:
                _dirty.set()
                log.exception("business metrics: refreshing gauges from the store failed")
        await asyncio.sleep(interval_s)
