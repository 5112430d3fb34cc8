"""Management reports: pure aggregations over read-model rows (no I/O).

Each report is a table: `rows` (a list of flat dicts, so any report exports as CSV) and a
`summary`. The store streams the complaints in, so memory grows with the number of groups
(and, for percentiles, with the number of durations), never with the whole row set.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from redress_reporting.projection import ESCALATION_TIERS as TIERS
from redress_reporting.projection import ComplaintView, from_cents

CLOSED = frozenset({"resolved", "withdrawn"})

AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("<1d", timedelta(days=1)),
    ("1-3d", timedelta(days=3)),
    ("3-7d", timedelta(days=7)),
    ("7-14d", timedelta(days=14)),
    ("14-28d", timedelta(days=28)),
    ("28-56d", timedelta(days=56)),
    (">56d", None),
)
RECONTACT_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class ReportInput:
    """What a report reads. The store fills it lazily: each iterator is streamed once."""

    complaints: Callable[[], Iterator[ComplaintView]]
    incidents: Callable[[], list[dict[str, Any]]]
    receipts: Callable[[], Iterator[tuple[str, datetime, str]]]
    received_from: datetime | None
    received_to: datetime | None
    as_of: datetime


@dataclass
class Report:
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def percentile(sorted_values: list[float], share: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def money(value: int) -> str:
    amount = from_cents(value)
    return str(amount if amount is not None else Decimal("0.00"))


def _age_bucket(age: timedelta) -> str:
    for label, limit in AGE_BUCKETS:
        if limit is None or age < limit:
            return label
    return AGE_BUCKETS[-1][0]


def backlog(source: ReportInput) -> Report:
    by: dict[tuple[str, str], int] = Counter()
    total = 0
    for view in source.complaints():
        if view.status in CLOSED:
            continue
        total += 1
        start = view.received_at or view.first_seen_at or source.as_of
        by[("priority", view.priority or "none")] += 1
        by[("queue", view.queue or "none")] += 1
        by[("age", _age_bucket(source.as_of - start))] += 1
    order = {label: i for i, (label, _) in enumerate(AGE_BUCKETS)}
    rows = [
        {"dimension": dim, "value": value, "open": count}
        for (dim, value), count in sorted(
            by.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 0), kv[0][1])
        )
    ]
    return Report("backlog", rows, {"open": total, "as_of": source.as_of.isoformat()})


def sla_attainment(source: ReportInput) -> Report:
    met: Counter[tuple[str, str]] = Counter()
    breached: Counter[tuple[str, str]] = Counter()
    running: Counter[tuple[str, str]] = Counter()
    for view in source.complaints():
        for clock in view.sla:
            key = (clock.policy_id or "unknown", clock.target)
            if clock.breached_at is not None:
                breached[key] += 1
            elif clock.met_at is not None:
                met[key] += 1
            else:
                running[key] += 1
    keys = sorted(set(met) | set(breached) | set(running))
    rows = [
        {
            "policy_id": policy,
            "target": target,
            "met": met[(policy, target)],
            "breached": breached[(policy, target)],
            "running": running[(policy, target)],
            "attainment": ratio(
                met[(policy, target)], met[(policy, target)] + breached[(policy, target)]
            ),
        }
        for policy, target in keys
    ]
    all_met, all_breached = sum(met.values()), sum(breached.values())
    return Report(
        "sla-attainment",
        rows,
        {
            "met": all_met,
            "breached": all_breached,
            "attainment": ratio(all_met, all_met + all_breached),
        },
    )


def _durations(views: Iterable[ComplaintView]) -> dict[str, list[float]]:
    measured: dict[str, list[float]] = {"first_response": [], "resolution": []}
    for view in views:
        if view.received_at is None:
            continue
        if view.first_response_at is not None:
            measured["first_response"].append(
                (view.first_response_at - view.received_at).total_seconds()
            )
        if view.first_resolved_at is not None:
            measured["resolution"].append(
                (view.first_resolved_at - view.received_at).total_seconds()
            )
    return measured


def _timing_row(measure: str, values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    return {
        "measure": measure,
        "count": len(values),
        "mean_seconds": round(sum(values) / len(values), 3) if values else None,
        "p50_seconds": percentile(values, 0.50),
        "p90_seconds": percentile(values, 0.90),
        "p99_seconds": percentile(values, 0.99),
    }


def response_times(source: ReportInput) -> Report:
    measured = _durations(source.complaints())
    rows = [_timing_row(measure, values) for measure, values in measured.items()]
    return Report("response-times", rows, {"complaints_measured": rows[0]["count"]})


def escalations(source: ReportInput) -> Report:
    """Per tier: complaints whose highest tier was this one, and complaints at it now."""
    peak: Counter[str] = Counter()
    current: Counter[str] = Counter()
    escalated_total = 0
    for view in source.complaints():
        escalated_total += view.escalations
        if view.escalation_peak is not None:
            peak[view.escalation_peak] += 1
        if view.escalation_tier is not None:
            current[view.escalation_tier] += 1
    tiers = [*TIERS, *sorted((set(peak) | set(current)) - set(TIERS))]
    rows = [
        {
            "tier": tier,
            "complaints_peaked_here": peak[tier],
            "complaints_at_tier_now": current[tier],
        }
        for tier in tiers
    ]
    return Report(
        "escalations",
        rows,
        {"escalations": escalated_total, "complaints_escalated": sum(peak.values())},
    )


def incidents(source: ReportInput) -> Report:
    rows = []
    durations: list[float] = []
    for incident in source.incidents():
        detected, resolved = incident.get("detected_at"), incident.get("resolved_at")
        duration = (resolved - detected).total_seconds() if detected and resolved else None
        if duration is not None:
            durations.append(duration)
        rows.append(
            {
                "incident_id": incident["incident_id"],
                "product": incident.get("product"),
                "category": incident.get("category"),
                "priority": incident.get("priority"),
                "status": incident.get("status"),
                "detected_at": detected,
                "resolved_at": resolved,
                "duration_seconds": duration,
                "complaints_linked": incident.get("complaints_linked_now"),
            }
        )
    return Report(
        "incidents",
        rows,
        {
            "incidents": len(rows),
            "open": sum(1 for r in rows if r["status"] == "open"),
            "mean_duration_seconds": round(sum(durations) / len(durations), 3)
            if durations
            else None,
        },
    )


def remedies(source: ReportInput) -> Report:
    groups: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    sought_total = sought_matched = 0
    for view in source.complaints():
        for remedy in view.remedies:
            key = (remedy.remedy_type or "unknown", remedy.currency or "")
            counts = groups[key]
            counts["offered"] += 1
            counts["accepted"] += remedy.accepted_at is not None
            counts["declined"] += remedy.declined_at is not None
            counts["given"] += remedy.given_at is not None
            counts["outside_band"] += remedy.outside_band
            counts["value_offered_cents"] += remedy.amount_cents or 0
            if remedy.given_at is not None:
                counts["value_given_cents"] += remedy.amount_cents or 0
            if remedy.remedy_sought is not None:
                sought_total += 1
                sought_matched += remedy.remedy_sought == remedy.remedy_type
    rows = [
        {
            "remedy_type": remedy_type,
            "currency": currency or None,
            "offered": c["offered"],
            "accepted": c["accepted"],
            "declined": c["declined"],
            "given": c["given"],
            "outside_band": c["outside_band"],
            "value_offered": money(c["value_offered_cents"]) if currency else None,
            "value_given": money(c["value_given_cents"]) if currency else None,
        }
        for (remedy_type, currency), c in sorted(groups.items())
    ]
    per_currency: Counter[str] = Counter()
    for (_, currency), c in groups.items():
        if currency:
            per_currency[currency] += c["value_given_cents"]
    return Report(
        "remedies",
        rows,
        {
            "value_given": {cur: money(v) for cur, v in sorted(per_currency.items())},
            "offered_as_sought": ratio(sought_matched, sought_total),
        },
    )


def guarantees(source: ReportInput) -> Report:
    groups: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for view in source.complaints():
        for guarantee in view.guarantees:
            counts = groups[(guarantee.guarantee_id, guarantee.currency or "")]
            counts["triggered"] += guarantee.triggered_at is not None
            counts["paid"] += guarantee.issued_at is not None
            counts["paid_cents"] += guarantee.amount_cents or 0
    rows = [
        {
            "guarantee_id": gid,
            "currency": currency or None,
            "triggered": c["triggered"],
            "paid": c["paid"],
            "amount_paid": money(c["paid_cents"]) if currency else None,
        }
        for (gid, currency), c in sorted(groups.items())
    ]
    return Report(
        "guarantees",
        rows,
        {"triggered": sum(r["triggered"] for r in rows), "paid": sum(r["paid"] for r in rows)},
    )


def satisfaction(source: ReportInput) -> Report:
    scores: Counter[int] = Counter()
    for view in source.complaints():
        if view.satisfaction_score is not None:
            scores[view.satisfaction_score] += 1
    count = sum(scores.values())
    mean = round(sum(s * n for s, n in scores.items()) / count, 3) if count else None
    rows = [{"score": score, "responses": scores[score]} for score in range(1, 11)]
    return Report("satisfaction", rows, {"responses": count, "mean": mean})


def reopen_rate(source: ReportInput) -> Report:
    resolved = reopened = reopens = 0
    for view in source.complaints():
        if view.first_resolved_at is None:
            continue
        resolved += 1
        reopened += view.reopen_count > 0
        reopens += view.reopen_count
    rows = [
        {
            "resolved": resolved,
            "reopened": reopened,
            "reopens": reopens,
            "rate": ratio(reopened, resolved),
        }
    ]
    return Report("reopen-rate", rows, dict(rows[0]))


def recontact_rate(source: ReportInput) -> Report:
    """Share of complaints received in the range whose customer complained again within 30
    days after it (the receipts run to 30 days past the range's end)."""
    in_range = recontacted = 0
    previous: tuple[str, datetime] | None = None
    pending: list[datetime] = []

    def settle(later: datetime | None) -> None:
        nonlocal in_range, recontacted
        for at in pending:
            in_range += 1
            if later is not None and later - at <= RECONTACT_WINDOW:
                recontacted += 1

    for customer, at, _complaint in source.receipts():
        if previous is not None and previous[0] == customer:
            settle(at)
        else:
            settle(None)
        pending = [at] if _within(at, source) else []
        previous = (customer, at)
    settle(None)
    rows = [
        {
            "complaints": in_range,
            "recontacted_within_30d": recontacted,
            "rate": ratio(recontacted, in_range),
        }
    ]
    return Report("recontact-rate", rows, dict(rows[0]))


def _within(at: datetime, source: ReportInput) -> bool:
    if source.received_from is not None and at < source.received_from:
        return False
    return source.received_to is None or at < source.received_to


def fairness(source: ReportInput) -> Report:
    """SLA attainment, remedy value and satisfaction by customer tier and by channel."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}

    def group(dimension: str, value: str) -> dict[str, Any]:
        return groups.setdefault(
            (dimension, value),
            {"complaints": 0, "met": 0, "breached": 0, "scores": [], "given": Counter(), "frt": []},
        )

    for view in source.complaints():
        for dimension, value in (
            ("tier", view.tier or "unknown"),
            ("channel", view.channel or "unknown"),
        ):
            g = group(dimension, value)
            g["complaints"] += 1
            for clock in view.sla:
                if clock.breached_at is not None:
                    g["breached"] += 1
                elif clock.met_at is not None:
                    g["met"] += 1
            if view.satisfaction_score is not None:
                g["scores"].append(view.satisfaction_score)
            for remedy in view.remedies:
                if remedy.given_at is not None and remedy.currency:
                    g["given"][remedy.currency] += remedy.amount_cents or 0
            if view.first_response_at is not None and view.received_at is not None:
                g["frt"].append((view.first_response_at - view.received_at).total_seconds())
    rows = []
    for (dimension, value), g in sorted(groups.items()):
        scores = g["scores"]
        rows.append(
            {
                "dimension": dimension,
                "value": value,
                "complaints": g["complaints"],
                "sla_met": g["met"],
                "sla_breached": g["breached"],
                "sla_attainment": ratio(g["met"], g["met"] + g["breached"]),
                "remedy_value_given": ";".join(
                    f"{cur} {money(v)}" for cur, v in sorted(g["given"].items())
                ),
                "remedy_value_per_complaint": ";".join(
                    f"{cur} {money(round(v / g['complaints']))}"
                    for cur, v in sorted(g["given"].items())
                ),
                "satisfaction_mean": round(sum(scores) / len(scores), 3) if scores else None,
                "satisfaction_responses": len(scores),
                "first_response_p50_seconds": percentile(sorted(g["frt"]), 0.5),
            }
        )
    return Report("fairness", rows, {"groups": len(rows)})


REPORTS: dict[str, Callable[[ReportInput], Report]] = {
    "backlog": backlog,
    "sla-attainment": sla_attainment,
    "response-times": response_times,
    "escalations": escalations,
    "incidents": incidents,
    "remedies": remedies,
    "guarantees": guarantees,
    "satisfaction": satisfaction,
    "reopen-rate": reopen_rate,
    "recontact-rate": recontact_rate,
    "fairness": fairness,
}
