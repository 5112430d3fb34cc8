"""Reporting's business metrics, driven through the real read-model store (SQLite): counters
and histograms move once per applied event, whatever order the topics deliver in."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redress_events import Envelope, EventData
from redress_events.catalogue import (
    AgentResponded,
    CompensationIssued,
    ComplaintEscalated,
    ComplaintPrioritized,
    ComplaintReceived,
    ComplaintResolved,
    IncidentDetected,
    IncidentResolved,
    SatisfactionRecorded,
    SlaBreached,
    SlaMet,
)
from redress_events.catalogue.recovery import Outcome
from redress_events.catalogue.routing import EscalationTier, SlaTarget
from redress_events.values import Channel, Customer, Money, Priority
from redress_reporting import metrics
from redress_reporting.store import ReadModelStore, create_store_engine

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_offsets = itertools.count()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def store(tmp_path: Path) -> ReadModelStore:
    return ReadModelStore(create_store_engine(f"sqlite:///{tmp_path / 'reporting.db'}"))


def envelope(data: EventData, subject: uuid.UUID, at: datetime) -> Envelope[EventData]:
    env = Envelope[EventData].new(data, subject=str(subject), source="test/observability", time=at)
    return env.model_copy(update={"position": (data.topic.value, 0, next(_offsets))})


def redelivered(env: Envelope[EventData]) -> Envelope[EventData]:
    """The same event read again at another offset (a producer retry's duplicate)."""
    return env.model_copy(update={"position": (env.data.topic.value, 0, next(_offsets))})


# How observe_applied learns which events a batch stored: it asks the store (the old way), or
# the projector tells it (`ReadModelStore.apply(...).fresh`); every test runs both ways.
_TOLD = {"yes": False}


@pytest.fixture(autouse=True, params=["asks the store", "is told by the store"])
def fresh_events_known(request: pytest.FixtureRequest) -> Iterator[None]:
    _TOLD["yes"] = request.param == "is told by the store"
    yield
    _TOLD["yes"] = False


def apply(store: ReadModelStore, *events: Envelope[EventData]) -> None:
    result = store.apply(list(events), group_id="test", next_offsets={})
    if _TOLD["yes"]:
        metrics.observe_applied(list(events), store.engine, stored=result.fresh)
    else:
        metrics.observe_applied(list(events), store.engine)


def received(cid: uuid.UUID, at: datetime = T0) -> Envelope[EventData]:
    return envelope(
        ComplaintReceived(
            customer=Customer(id="C-42"),
            channel=Channel.EMAIL,
            category="billing",
            product="card-basic",
            description="Charged twice.",
            jurisdiction="GB",
            complaint_id=cid,
            received_at=at,
        ),
        cid,
        at,
    )


def prioritized(cid: uuid.UUID, priority: Priority) -> Envelope[EventData]:
    return envelope(
        ComplaintPrioritized(
            complaint_id=cid,
            priority=priority,
            matched_rules=("r1",),
            rules_version="v1",
            reason="test",
        ),
        cid,
        T0 + timedelta(seconds=1),
    )


def responded(cid: uuid.UUID, after_s: float) -> Envelope[EventData]:
    at = T0 + timedelta(seconds=after_s)
    data = AgentResponded(complaint_id=cid, actor="agent-7", message="On it.", responded_at=at)
    return envelope(data, cid, at)


def resolved(cid: uuid.UUID, after_s: float) -> Envelope[EventData]:
    at = T0 + timedelta(seconds=after_s)
    data = ComplaintResolved(
        complaint_id=cid, outcome=Outcome.UPHELD, reason="Refunded.", actor="a", resolved_at=at
    )
    return envelope(data, cid, at)


def histogram(name: str) -> tuple[float, float]:
    return sample(f"{name}_count"), sample(f"{name}_sum")


def delta(before: tuple[float, ...], after: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(a - b, 6) for a, b in zip(after, before, strict=True))


def test_first_response_and_resolution_are_observed_once_each(store: ReadModelStore) -> None:
    cid = uuid.uuid4()
    response0 = histogram("redress_time_to_first_response_seconds")
    resolution0 = histogram("redress_time_to_resolution_seconds")
    apply(store, received(cid))
    apply(store, responded(cid, 120))
    apply(store, responded(cid, 900))  # a later response is not a first response
    apply(store, resolved(cid, 7200))
    assert delta(response0, histogram("redress_time_to_first_response_seconds")) == (1, 120)
    assert delta(resolution0, histogram("redress_time_to_resolution_seconds")) == (1, 7200)


def test_a_response_read_before_the_receipt_is_observed_when_the_receipt_arrives(
    store: ReadModelStore,
) -> None:
    cid = uuid.uuid4()
    before = histogram("redress_time_to_first_response_seconds")
    apply(store, responded(cid, 300))
    assert delta(before, histogram("redress_time_to_first_response_seconds")) == (0, 0)
    receipt = received(cid)
    apply(store, receipt)
    assert delta(before, histogram("redress_time_to_first_response_seconds")) == (1, 300)
    apply(store, redelivered(receipt))
    assert delta(before, histogram("redress_time_to_first_response_seconds")) == (1, 300)


def test_receipt_and_response_in_one_batch_count_once(store: ReadModelStore) -> None:
    cid = uuid.uuid4()
    before = histogram("redress_time_to_first_response_seconds")
    apply(store, received(cid), responded(cid, 60), responded(cid, 90))
    assert delta(before, histogram("redress_time_to_first_response_seconds")) == (1, 60)


def test_event_counters_by_bounded_label_and_duplicates_counted_once(
    store: ReadModelStore,
) -> None:
    cid = uuid.uuid4()
    keys: list[tuple[str, dict[str, Any]]] = [
        ("redress_sla_breaches_total", {"target": "first_response"}),
        ("redress_sla_breaches_total", {"target": "regulatory"}),
        ("redress_sla_met_total", {"target": "resolution"}),
        ("redress_escalations_total", {"tier": "manager"}),
        ("redress_compensation_amount_total", {"currency": "GBP"}),
        ("redress_compensations_issued_total", {"currency": "GBP"}),
        ("redress_compensations_issued_total", {"currency": "none"}),
        ("redress_satisfaction_score_count", {}),
        ("redress_satisfaction_score_sum", {}),
        ("redress_satisfaction_score_bucket", {"le": "7.0"}),
    ]
    before = tuple(sample(name, **labels) for name, labels in keys)
    due = T0 + timedelta(hours=4)
    breach = envelope(
        SlaBreached(
            complaint_id=cid,
            target=SlaTarget.FIRST_RESPONSE,
            policy_id="default",
            due_at=due,
            breached_at=due,
        ),
        cid,
        due,
    )
    events = [
        breach,
        envelope(
            SlaBreached(
                complaint_id=cid,
                target=SlaTarget.REGULATORY,
                policy_id="fca",
                due_at=due,
                breached_at=due,
            ),
            cid,
            due,
        ),
        envelope(
            SlaMet(
                complaint_id=cid,
                target=SlaTarget.RESOLUTION,
                policy_id="default",
                due_at=due,
                met_at=due,
                elapsed_seconds=10.0,
            ),
            cid,
            due,
        ),
        envelope(
            ComplaintEscalated(
                complaint_id=cid,
                from_tier=EscalationTier.TEAM_LEAD,
                tier=EscalationTier.MANAGER,
                trigger="sla_breached:first_response",
                policy_rule="esc-2",
                reason="breach",
            ),
            cid,
            due,
        ),
        envelope(
            CompensationIssued(
                complaint_id=cid,
                guarantee_id="late-response",
                compensation_type="account_credit",
                amount=Money(amount=Decimal("12.50"), currency="GBP"),
                issued_at=due,
            ),
            cid,
            due,
        ),
        envelope(
            CompensationIssued(
                complaint_id=cid,
                guarantee_id="apology",
                compensation_type="apology",
                issued_at=due,
            ),
            cid,
            due,
        ),
        envelope(SatisfactionRecorded(complaint_id=cid, score=7, recorded_at=due), cid, due),
    ]
    apply(store, *events)
    apply(store, redelivered(breach), breach)  # both copies were already applied
    after = tuple(sample(name, **labels) for name, labels in keys)
    assert delta(before, after) == (1, 1, 1, 1, 12.5, 1, 1, 1, 7, 1)


def test_every_known_label_value_is_exported_before_its_first_event() -> None:
    for target in SlaTarget:
        assert (
            REGISTRY.get_sample_value("redress_sla_breaches_total", {"target": target.value})
            is not None
        )
    for tier in EscalationTier:
        assert (
            REGISTRY.get_sample_value("redress_escalations_total", {"tier": tier.value}) is not None
        )
    for priority in (*Priority, "none"):
        assert (
            REGISTRY.get_sample_value("redress_complaints_open", {"priority": str(priority)})
            is not None
        )


def test_gauges_follow_the_read_model(store: ReadModelStore) -> None:
    p1, p3, done, unprioritized = (uuid.uuid4() for _ in range(4))
    apply(store, received(p1), prioritized(p1, Priority.P1))
    apply(store, received(p3), prioritized(p3, Priority.P3))
    apply(store, received(done), prioritized(done, Priority.P3), resolved(done, 60))
    apply(store, received(unprioritized))
    incident, other = uuid.uuid4(), uuid.uuid4()
    for iid in (incident, other):
        apply(
            store,
            envelope(
                IncidentDetected(
                    incident_id=iid,
                    product="card-basic",
                    category="billing",
                    window_seconds=600,
                    count=12,
                    baseline=1.5,
                    factor=8.0,
                    priority=Priority.P2,
                    detected_at=T0,
                    reason="surge",
                ),
                iid,
                T0,
            ),
        )
    apply(
        store,
        envelope(
            IncidentResolved(
                incident_id=other,
                product="card-basic",
                category="billing",
                resolved_at=T0,
                complaints_linked=12,
                reason="fixed",
            ),
            other,
            T0,
        ),
    )
    metrics.refresh_from_store(store.engine)
    open_now = {
        label: sample("redress_complaints_open", priority=label)
        for label in metrics.PRIORITY_LABELS
    }
    assert open_now == {"P1": 1, "P2": 0, "P3": 1, "P4": 0, "none": 1}
    assert sample("redress_incidents_open") == 1
    assert sample("redress_business_metrics_refreshed_timestamp_seconds") > 0


def test_a_broken_store_does_not_stop_the_projector(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    engine.dispose()
    (tmp_path / "x.db").unlink()
    (tmp_path / "x.db").mkdir()  # the database is now unreadable
    metrics.observe_applied([received(uuid.uuid4())], engine)  # logs, does not raise
