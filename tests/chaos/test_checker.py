"""The no-loss checker must be able to fail: each kind of damage it claims to detect, made by
hand on a snapshot of a small consistent history, is reported with the offending id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from redress_events import Envelope, derived_event_id
from redress_events.catalogue import (
    CompensationIssued,
    ComplaintAcknowledged,
    ComplaintPrioritized,
    ComplaintReceived,
    ComplaintSubmission,
    GuaranteeTriggered,
    SlaBreached,
)
from redress_events.catalogue.routing import SlaTarget
from redress_events.values import Priority, RemedyType

from tests.support.checker import Expectation, LogView, evaluate
from tests.support.complaints import complaint_body

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _history() -> tuple[str, list[Envelope[Any]]]:
    cid = uuid.uuid4()
    received = Envelope.new(
        ComplaintReceived(
            **ComplaintSubmission.model_validate(complaint_body()).model_dump(),
            complaint_id=cid,
            received_at=NOW,
        ),
        subject=str(cid),
        source="/redress/intake",
    )

    def derived(data: Any, name: str) -> Envelope[Any]:
        return Envelope.new(
            data,
            subject=str(cid),
            source="/test",
            cause=received,
            event_id=derived_event_id(received.id, name),
        )

    prioritized = derived(
        ComplaintPrioritized(
            complaint_id=cid,
            priority=Priority.P1,
            matched_rules=("safety-injury",),
            rules_version="1",
            reason="burn",
        ),
        "prioritized",
    )
    acked = derived(
        ComplaintAcknowledged(complaint_id=cid, actor="agent", acknowledged_at=NOW), "ack"
    )
    breach = derived(
        SlaBreached(
            complaint_id=cid,
            target=SlaTarget.RESOLUTION,
            policy_id="p1",
            due_at=NOW,
            breached_at=NOW,
        ),
        "breach",
    )
    triggered = derived(
        GuaranteeTriggered(
            complaint_id=cid,
            guarantee_id="resolution-within-sla",
            guarantee_version="1",
            trigger_event_id=breach.id,
            trigger="sla_breached:resolution",
            triggered_at=NOW,
        ),
        "triggered",
    )
    compensated = derived(
        CompensationIssued(
            complaint_id=cid,
            guarantee_id="resolution-within-sla",
            compensation_type=RemedyType.FEE_WAIVER,
            issued_at=NOW,
        ),
        "compensated",
    )
    return str(cid), [received, prioritized, acked, breach, triggered, compensated]


def _log(events: list[Envelope[Any]]) -> LogView:
    log = LogView()
    for e in events:
        log.add(e, e.data.model_dump_json().encode())
    return log


def _details(cid: str, events: list[Envelope[Any]]) -> dict[str, dict[str, Any] | int]:
    return {
        cid: {
            "complaint_id": cid,
            "priority": "P1",
            "timeline": [{"event_id": str(e.id), "type": e.type} for e in events],
        }
    }


def _expect(cid: str, **actions: Any) -> Expectation:
    submission = SimpleNamespace(acknowledged=True, remedy_ids=[], resolved=False, **actions)
    return Expectation(sent=1, accepted={cid: submission})


def _applicable(breach: Envelope[Any], log: LogView) -> set[str]:
    return {"resolution-within-sla"} if breach.data.target == SlaTarget.RESOLUTION else set()


def test_a_consistent_history_passes() -> None:
    cid, events = _history()
    report = evaluate("ok", _log(events), _expect(cid), _details(cid, events), True, _applicable)
    assert report.ok, report.problems
    assert not report.lost and not report.duplicated


def test_each_kind_of_damage_is_named() -> None:
    cid, events = _history()
    received, prioritized, acked, _breach, triggered, compensated = events

    def problems(log_events: list[Envelope[Any]], timeline: list[Envelope[Any]], **kw: Any) -> str:
        report = evaluate(
            "damaged",
            _log(log_events),
            kw.get("expect", _expect(cid)),
            kw.get("details", _details(cid, timeline)),
            True,
            _applicable,
        )
        assert not report.ok
        return "\n".join(report.problems)

    # an accepted complaint whose ComplaintReceived is not in the log
    assert "no ComplaintReceived" in problems(events[1:], events[1:])
    # routing never prioritized it
    out = problems([e for e in events if e is not prioritized], events)
    assert "never prioritized" in out and cid in out
    # a second, different ComplaintReceived for the same complaint
    again = received.model_copy(update={"id": uuid.uuid4()})
    assert "more than one ComplaintReceived" in problems([*events, again], [*events, again])
    # the same cause prioritized twice under two event ids is a duplicate ...
    twice = prioritized.model_copy(update={"id": uuid.uuid4()})
    assert "prioritized more than once" in problems([*events, twice], [*events, twice])
    # ... a re-prioritization for another cause (an incident link) is not
    relinked = prioritized.model_copy(update={"id": uuid.uuid4(), "causation_id": uuid.uuid4()})
    report = evaluate(
        "incident",
        _log([*events, relinked]),
        _expect(cid),
        _details(cid, [*events, relinked]),
        True,
        _applicable,
    )
    assert report.ok, report.problems
    # one event id carrying two payloads
    log = _log(events)
    log.add(acked, b'{"tampered": true}')
    report = evaluate("tampered", log, _expect(cid), _details(cid, events), True, _applicable)
    assert any("two different payloads" in p for p in report.problems)
    # an acknowledgement the client was told succeeded, missing from the log
    assert "acknowledgements answered 2xx" in problems(
        [e for e in events if e is not acked], [e for e in events if e is not acked]
    )
    # a guarantee triggered without its compensation, and a breach without its guarantee
    assert "without a CompensationIssued" in problems(
        [e for e in events if e is not compensated], [e for e in events if e is not compensated]
    )
    out = problems(
        [e for e in events if e is not triggered], [e for e in events if e is not triggered]
    )
    assert "without their applicable guarantee" in out and cid in out
    # the read model: missing complaint, no priority, event missing, event listed twice
    assert "missing from the reporting read model" in problems(events, events, details={cid: 404})
    no_priority = _details(cid, events)
    no_priority[cid]["priority"] = None  # type: ignore[index]
    assert "without a priority" in problems(events, events, details=no_priority)
    assert "missing from the reporting timeline" in problems(events, events[:-1])
    assert "listed twice" in problems(events, [*events, acked])
