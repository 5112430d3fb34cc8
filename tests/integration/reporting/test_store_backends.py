"""The read-model store on SQLite and on a real PostgreSQL: the same events give the same rows,
lists filter and paginate alike, and the reports say the same."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redress_events import Envelope, EventData
from redress_reporting.rebuild import differences
from redress_reporting.reports import REPORTS, ReportInput, recontact_rate
from redress_reporting.store import ComplaintFilter, ReadModelStore, create_store_engine, load_view
from sqlalchemy import update

from tests.integration.reporting.postgres import PostgresServer
from tests.unit.reporting.stories import (
    T0,
    Story,
    cid,
    incident_events,
    incident_id,
    with_positions,
)
from tests.unit.reporting.test_projection import fold

DAY = timedelta(days=1)
AS_OF = T0 + 60 * DAY


def dataset() -> tuple[list[Envelope[EventData]], dict[str, list[Envelope[EventData]]]]:
    """24 complaints and 2 incidents (see the expectations in the tests below)."""
    stories = [
        Story(1, customer_id="C-1").full_life(breach=True).linked(incident_id(1)),
        Story(2, customer_id="C-2", tier="vip", channel="social", received_at=T0 + DAY).full_life(
            satisfaction=3
        ),
        Story(3, customer_id="C-1", tier="premium", channel="phone", received_at=T0 + 10 * DAY)
        .received()
        .routed(priority="P1", queue="safety"),
        Story(4, customer_id="C-3", channel="email", received_at=T0 + 40 * DAY)
        .received()
        .routed()
        .withdrawn(),
    ]
    for i in range(5, 25):
        stories.append(
            Story(i, customer_id=f"C-{100 + i}", received_at=T0 + 2 * DAY + timedelta(hours=i))
            .received()
            .routed(priority="P3" if i % 2 else "P4", queue="general")
        )
    events = [e for s in stories for e in s.events]
    events += incident_events(1) + incident_events(2, detected_at=T0 + 3 * DAY, resolved=False)
    by_complaint = {s.complaint_id: s.events for s in stories}
    return with_positions(events), by_complaint


def load(store: ReadModelStore, events: list[Envelope[EventData]], batch: int = 50) -> None:
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        offsets = {(e.position[0], e.position[1]): e.position[2] + 1 for e in chunk if e.position}
        store.apply(chunk, group_id="reporting", next_offsets=offsets)


def ids(rows: list[dict[str, Any]]) -> set[str]:
    return {r["complaint_id"] for r in rows}


def listed(store: ReadModelStore, **filters: Any) -> set[str]:
    return ids(list(store.iter_complaints(ComplaintFilter(**filters), chunk=7)))


def test_stored_views_equal_the_pure_projection(store: ReadModelStore) -> None:
    events, by_complaint = dataset()
    load(store, events)
    with store.engine.connect() as conn:
        for complaint_id, own in by_complaint.items():
            assert load_view(conn, complaint_id) == fold(own), complaint_id


def test_filters_and_cursor_pagination(store: ReadModelStore) -> None:
    events, _ = dataset()
    load(store, events)
    everything = listed(store)
    assert len(everything) == 24
    assert listed(store, status="resolved") == {cid(1), cid(2)}
    assert listed(store, status="withdrawn") == {cid(4)}
    assert len(listed(store, status="open")) == 21
    assert listed(store, priority="P1") == {cid(3)}
    assert listed(store, queue="safety") == {cid(3)}
    assert listed(store, tier="vip") == {cid(2)}
    assert listed(store, channel="phone") == {cid(3)}
    assert listed(store, breached=True) == {cid(1)}
    assert len(listed(store, breached=False)) == 23
    assert listed(store, incident="any") == {cid(1)}
    assert listed(store, incident=incident_id(1)) == {cid(1)}
    assert listed(store, escalation_tier="agent") == {cid(1)}
    assert listed(store, product="kettle-2000") == everything
    assert listed(store, received_from=T0, received_to=T0 + DAY + timedelta(seconds=1)) == {
        cid(1),
        cid(2),
    }
    assert listed(store, priority="P3", status="open", queue="general") == {
        cid(i) for i in range(5, 25, 2)
    }
    # Pages of 5: every complaint exactly once, newest first, the last page says so.
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.list_complaints(ComplaintFilter(), limit=5, cursor=cursor)
        assert len(page) <= 5
        seen += page
        pages += 1
        if cursor is None:
            break
    assert pages == 5 and len(seen) == 24 and ids(seen) == everything
    keys = [(r["first_seen_at"], r["complaint_id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)


def _report(store: ReadModelStore, name: str, **window: datetime | None) -> Any:
    start, end = window.get("start"), window.get("end")
    source = ReportInput(
        complaints=lambda: store.iter_views(
            ComplaintFilter(received_from=start, received_to=end), chunk=7
        ),
        incidents=lambda: store.list_incidents(detected_from=start, detected_to=end),
        receipts=lambda: store.customer_receipts(received_from=start, received_to=None),
        received_from=start,
        received_to=end,
        as_of=AS_OF,
    )
    return REPORTS[name](source)


def test_reports_over_the_dataset(store: ReadModelStore) -> None:
    events, _ = dataset()
    load(store, events)
    satisfaction = _report(store, "satisfaction")
    assert satisfaction.summary == {"responses": 2, "mean": 5.5}
    assert {r["score"]: r["responses"] for r in satisfaction.rows}[3] == 1
    assert _report(store, "reopen-rate").summary["rate"] == 1.0
    recontact = _report(store, "recontact-rate")
    assert recontact.summary == {"complaints": 24, "recontacted_within_30d": 1, "rate": 0.0417}
    sla = {(r["policy_id"], r["target"]): r for r in _report(store, "sla-attainment").rows}
    assert (
        sla[("uk-standard", "first_response")]["met"],
        sla[("uk-standard", "first_response")]["attainment"],
    ) == (2, 1.0)
    assert sla[("uk-standard", "resolution")]["breached"] == 1
    assert sla[("uk-standard", "resolution")]["running"] == 23
    remedies = {r["remedy_type"]: r for r in _report(store, "remedies").rows}
    assert remedies["refund"]["value_given"] == "99.98" and remedies["refund"]["given"] == 2
    assert remedies["repair"]["declined"] == 2
    guarantees = _report(store, "guarantees").rows
    assert guarantees == [
        {
            "guarantee_id": "late-resolution",
            "currency": "GBP",
            "triggered": 1,
            "paid": 1,
            "amount_paid": "10.00",
        }
    ]
    backlog = _report(store, "backlog")
    assert backlog.summary["open"] == 21
    assert {(r["dimension"], r["value"]): r["open"] for r in backlog.rows}[
        ("queue", "general")
    ] == 20
    times = {r["measure"]: r for r in _report(store, "response-times").rows}
    assert (
        times["first_response"]["count"] == 2 and times["first_response"]["p50_seconds"] == 1800.0
    )
    escalations = _report(store, "escalations")
    assert escalations.summary == {"escalations": 1, "complaints_escalated": 1}
    tiers = {r["tier"]: r for r in escalations.rows}
    assert tiers["team_lead"]["complaints_peaked_here"] == 1
    assert (
        tiers["agent"]["complaints_at_tier_now"] == 1
        and tiers["manager"]["complaints_peaked_here"] == 0
    )
    incidents = _report(store, "incidents")
    assert incidents.summary["incidents"] == 2 and incidents.summary["open"] == 1
    fairness = {(r["dimension"], r["value"]): r for r in _report(store, "fairness").rows}
    assert fairness[("tier", "vip")]["satisfaction_mean"] == 3.0
    assert fairness[("tier", "standard")]["satisfaction_mean"] == 8.0
    assert fairness[("tier", "standard")]["sla_breached"] == 1
    assert fairness[("channel", "social")]["remedy_value_given"] == "GBP 49.99"
    # A window holding only the first day's complaint.
    first_day = _report(store, "satisfaction", start=T0, end=T0 + DAY)
    assert first_day.summary == {"responses": 1, "mean": 8.0}


def test_recontact_counts_only_complaints_in_the_window(store: ReadModelStore) -> None:
    events, _ = dataset()
    load(store, events)
    window = ReportInput(
        complaints=lambda: iter(()),
        incidents=list,
        receipts=lambda: store.customer_receipts(received_from=T0 + 5 * DAY, received_to=None),
        received_from=T0 + 5 * DAY,
        received_to=T0 + 20 * DAY,
        as_of=AS_OF,
    )
    # Only complaint 3 is in the window, and C-1 did not complain again after it.
    assert recontact_rate(window).summary == {
        "complaints": 1,
        "recontacted_within_30d": 0,
        "rate": 0.0,
    }


def test_sqlite_and_postgres_hold_the_same_read_models(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    events, _ = dataset()
    lite = ReadModelStore(create_store_engine(f"sqlite:///{tmp_path / 'lite.db'}"))
    pg = ReadModelStore(create_store_engine(postgres.new_database()))
    try:
        load(lite, events, batch=1000)
        load(pg, events, batch=3)
        assert lite.counts() == pg.counts()
        assert list(differences(lite, pg)) == []
        assert lite.offsets("reporting") == pg.offsets("reporting")
        # The comparison is not blind: one altered cell is found and named.
        from redress_reporting.store import complaints

        with pg.engine.begin() as conn:
            conn.execute(
                update(complaints).where(complaints.c.complaint_id == cid(3)).values(priority="P4")
            )
        found = list(differences(lite, pg))
        assert [(d.table, d.key, d.column, d.live, d.rebuilt) for d in found] == [
            ("complaints", (cid(3),), "priority", "P1", "P4")
        ]
    finally:
        lite.dispose()
        pg.dispose()


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_runs_on_an_empty_store(store: ReadModelStore, name: str) -> None:
    built = _report(store, name)
    assert built.name == name
    assert isinstance(built.rows, list) and isinstance(built.summary, dict)
