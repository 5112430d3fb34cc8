"""The case state machine, exhaustively: every command in every case status and every remedy
command on a remedy in every remedy status, against a specification table written out by hand;
then random command sequences (hypothesis) for the invariants that must hold on any path."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redress_events import EventData
from redress_events.catalogue import (
    AgentResponded,
    ComplaintAcknowledged,
    ComplaintPrioritized,
    ComplaintReopened,
    ComplaintResolved,
    CustomerReplied,
    InformationRequested,
    RemedyAccepted,
    RemedyDeclined,
    RemedyFulfilmentRecorded,
    RemedyProposed,
    SatisfactionRecorded,
)
from redress_events.catalogue.recovery import FulfilmentStep, Outcome
from redress_events.values import Priority, RemedyType
from redress_recovery.domain import (
    ACTIVE,
    CaseStatus,
    CommandRejected,
    ProposeRemedy,
    RecordFulfilment,
    Rejection,
    RemedyStatus,
    Resolve,
    add_months,
    decide,
    evolve,
)
from redress_recovery.policy import Severity

from tests.unit.recovery.cases import (
    ACCEPTED,
    CID,
    COMMANDS,
    DECLINED,
    FULFILLED,
    NEW_REMEDY,
    NOW,
    POLICY,
    PROPOSED,
    STATUSES,
    UNKNOWN_REMEDY,
    case_in,
    command,
    fold,
    money,
    received,
)

# The specification. Rows: commands; columns: the status the case is in. A cell names the status
# after the command, or the status code of the refusal (404: unknown, 409: illegal transition).
SHORT = {
    "unknown": "unknown",
    "open": "open",
    "prog": "in_progress",
    "wait": "awaiting_customer",
    "done": "resolved",
    "gone": "withdrawn",
}
SPEC = """
command              unknown  open  prog  wait  done  gone
acknowledge          404      prog  409   409   409   409
respond              404      prog  prog  wait  409   409
request_information  404      wait  wait  409   409   409
customer_reply       404      409   409   prog  409   409
propose_remedy       404      open  prog  wait  409   409
accept_remedy        404      open  prog  wait  done  409
decline_remedy       404      open  prog  wait  done  409
fulfil_remedy        404      open  prog  wait  done  409
resolve              404      done  done  done  409   409
reopen               404      409   409   409   prog  409
record_satisfaction  404      409   409   409   done  409
"""

EVENT_OF = {
    "acknowledge": ComplaintAcknowledged,
    "respond": AgentResponded,
    "request_information": InformationRequested,
    "customer_reply": CustomerReplied,
    "propose_remedy": RemedyProposed,
    "accept_remedy": RemedyAccepted,
    "decline_remedy": RemedyDeclined,
    "fulfil_remedy": RemedyFulfilmentRecorded,
    "resolve": ComplaintResolved,
    "reopen": ComplaintReopened,
    "record_satisfaction": SatisfactionRecorded,
}


def _spec() -> list[tuple[str, str, str]]:
    header, *rows = [line.split() for line in SPEC.strip().splitlines()]
    columns = [SHORT[name] for name in header[1:]]
    assert columns == list(STATUSES)
    assert [row[0] for row in rows] == list(COMMANDS)  # every command, every status
    return [
        (row[0], status, SHORT.get(cell, cell))
        for row in rows
        for status, cell in zip(columns, row[1:], strict=True)
    ]


@pytest.mark.parametrize(("name", "status", "expected"), _spec())
def test_every_command_in_every_status(name: str, status: str, expected: str) -> None:
    case = case_in(status)
    if expected in ("404", "409"):
        with pytest.raises(CommandRejected) as refused:
            decide(case, command(name), policy=POLICY, now=NOW)
        kind = Rejection.NOT_FOUND if expected == "404" else Rejection.CONFLICT
        assert refused.value.kind is kind
        assert refused.value.reason  # every refusal says why
        return
    events = decide(case, command(name), policy=POLICY, now=NOW)
    assert [type(e) for e in events] == [EVENT_OF[name]]
    assert all(e.complaint_id == CID for e in events)  # type: ignore[attr-defined]
    after = fold(*events, case=case)
    assert after.status.value == expected


# Remedy answers and fulfilment against a remedy in each remedy status ("completed" step).
REMEDY_SPEC = {
    "accept_remedy": {
        PROPOSED: RemedyStatus.ACCEPTED,
        ACCEPTED: 409,
        DECLINED: 409,
        FULFILLED: 409,
        UNKNOWN_REMEDY: 404,
    },
    "decline_remedy": {
        PROPOSED: RemedyStatus.DECLINED,
        ACCEPTED: 409,
        DECLINED: 409,
        FULFILLED: 409,
        UNKNOWN_REMEDY: 404,
    },
    "fulfil_remedy": {
        PROPOSED: 409,
        ACCEPTED: RemedyStatus.FULFILLED,
        DECLINED: 409,
        FULFILLED: 409,
        UNKNOWN_REMEDY: 404,
    },
}


@pytest.mark.parametrize("status", ["open", "in_progress", "awaiting_customer", "resolved"])
@pytest.mark.parametrize(
    ("name", "remedy_id", "expected"),
    [(name, rid, exp) for name, cells in REMEDY_SPEC.items() for rid, exp in cells.items()],
)
def test_every_remedy_command_on_a_remedy_in_every_remedy_status(
    status: str, name: str, remedy_id: uuid.UUID, expected: RemedyStatus | int
) -> None:
    case = case_in(status)
    if isinstance(expected, int):
        with pytest.raises(CommandRejected) as refused:
            decide(case, command(name, remedy_id), policy=POLICY, now=NOW)
        kind = Rejection.NOT_FOUND if expected == 404 else Rejection.CONFLICT
        assert refused.value.kind is kind
        return
    events = decide(case, command(name, remedy_id), policy=POLICY, now=NOW)
    remedy = fold(*events, case=case).remedy(remedy_id)
    assert remedy is not None and remedy.status is expected


# ------------------------------------------------------------------------ fulfilment steps


def _accepted(remedy_type: RemedyType) -> object:
    case = case_in("in_progress")
    proposal = ProposeRemedy(
        complaint_id=CID,
        actor="agent",
        remedy_id=NEW_REMEDY,
        remedy_type=remedy_type,
        failure_type="delivery",  # no band: any remedy goes
        amount=money("5.00") if remedy_type is RemedyType.REFUND else None,
    )
    case = fold(*decide(case, proposal, policy=POLICY, now=NOW), case=case)
    return fold(RemedyAccepted(complaint_id=CID, remedy_id=NEW_REMEDY, accepted_at=NOW), case=case)


def _step(case: object, step: FulfilmentStep) -> object:
    cmd = RecordFulfilment(complaint_id=CID, actor="agent", remedy_id=NEW_REMEDY, step=step)
    return fold(*decide(case, cmd, policy=POLICY, now=NOW), case=case)  # type: ignore[arg-type]


def test_replacement_goes_through_return_logistics_in_order() -> None:
    case = _accepted(RemedyType.REPLACEMENT)
    for step in ("label_issued", "item_received", "replacement_shipped", "completed"):
        case = _step(case, FulfilmentStep(step))
    remedy = case.remedy(NEW_REMEDY)  # type: ignore[attr-defined]
    assert remedy.status is RemedyStatus.FULFILLED
    assert [s.value for s in remedy.steps] == [
        "label_issued",
        "item_received",
        "replacement_shipped",
        "completed",
    ]


@pytest.mark.parametrize(
    ("remedy_type", "done", "step", "why"),
    [
        (RemedyType.REPLACEMENT, ["item_received"], "label_issued", "comes before"),
        (RemedyType.REPLACEMENT, ["label_issued"], "label_issued", "comes before"),
        (RemedyType.REPLACEMENT, [], "refund_paid", "not a step of a replacement"),
        (RemedyType.APOLOGY, [], "label_issued", "not a step of a apology"),
        (RemedyType.REFUND, ["completed"], "refund_paid", "fulfilled"),
    ],
)
def test_fulfilment_steps_out_of_order_or_foreign_are_refused(
    remedy_type: RemedyType, done: list[str], step: str, why: str
) -> None:
    case = _accepted(remedy_type)
    for earlier in done:
        case = _step(case, FulfilmentStep(earlier))
    with pytest.raises(CommandRejected) as refused:
        _step(case, FulfilmentStep(step))
    assert refused.value.kind is Rejection.CONFLICT
    assert why in refused.value.reason


# ------------------------------------------------------------------------- remedy bands


def _propose(case: object, **fields: object) -> RemedyProposed:
    cmd = ProposeRemedy(
        complaint_id=CID,
        actor="agent",
        remedy_id=NEW_REMEDY,
        **{"failure_type": "product_defect", **fields},  # type: ignore[arg-type]
    )
    (event,) = decide(case, cmd, policy=POLICY, now=NOW)  # type: ignore[arg-type]
    assert isinstance(event, RemedyProposed)
    return event


def test_a_remedy_inside_its_band_is_not_flagged_and_records_what_was_sought() -> None:
    event = _propose(case_in("open"), remedy_type=RemedyType.REFUND, amount=money("49.99"))
    assert not event.outside_band and event.band_reason is None
    assert event.remedy_sought is RemedyType.REPLACEMENT


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ({"remedy_type": RemedyType.ACCOUNT_CREDIT, "amount": money("5.00")}, "type not in band"),
        ({"remedy_type": RemedyType.REFUND, "amount": money("100.01")}, "over the maximum"),
        ({"remedy_type": RemedyType.REFUND, "amount": money("5.00", "EUR")}, "other currency"),
    ],
)
def test_outside_the_band_needs_a_reason_and_is_flagged(
    fields: dict[str, object], what: str
) -> None:
    case = case_in("open")
    with pytest.raises(CommandRejected) as refused:
        _propose(case, **fields)
    assert (refused.value.kind, refused.value.field) == (Rejection.INVALID, "reason"), what
    event = _propose(case, **fields, reason="long-standing customer")
    assert event.outside_band and event.band_reason == "long-standing customer"


def test_severity_defaults_to_routings_priority_and_selects_the_band() -> None:
    case = fold(
        ComplaintPrioritized(
            complaint_id=CID,
            priority=Priority.P1,
            matched_rules=("x",),
            rules_version="1",
            reason="r",
        ),
        case=case_in("open"),
    )
    event = _propose(case, remedy_type=RemedyType.ACCOUNT_CREDIT, amount=money("200.00"))
    assert event.severity == "critical"
    assert not event.outside_band  # the critical band allows credits up to 500 GBP
    named = _propose(
        case,
        remedy_type=RemedyType.ACCOUNT_CREDIT,
        amount=money("5"),
        severity=Severity.LOW,
        reason="agent judged it minor",
    )
    assert named.severity == "low" and named.outside_band


@pytest.mark.parametrize(
    ("remedy_type", "amount", "field_ok"),
    [
        (RemedyType.REFUND, None, False),
        (RemedyType.ACCOUNT_CREDIT, None, False),
        (RemedyType.APOLOGY, "1.00", False),
        (RemedyType.REPLACEMENT, None, True),
        (RemedyType.DISCOUNT, "3.00", True),
    ],
)
def test_amount_where_it_applies(
    remedy_type: RemedyType, amount: str | None, field_ok: bool
) -> None:
    cmd = ProposeRemedy(
        complaint_id=CID,
        actor="agent",
        remedy_id=NEW_REMEDY,
        remedy_type=remedy_type,
        failure_type="delivery",
        amount=money(amount) if amount else None,
    )
    if field_ok:
        assert decide(case_in("open"), cmd, policy=POLICY, now=NOW)
        return
    with pytest.raises(CommandRejected) as refused:
        decide(case_in("open"), cmd, policy=POLICY, now=NOW)
    assert (refused.value.kind, refused.value.field) == (Rejection.INVALID, "amount")


def test_a_remedy_id_cannot_be_proposed_twice() -> None:
    case = case_in("open")
    cmd = ProposeRemedy(
        complaint_id=CID,
        actor="a",
        remedy_id=PROPOSED,
        remedy_type=RemedyType.APOLOGY,
        failure_type="delivery",
    )
    with pytest.raises(CommandRejected) as refused:
        decide(case, cmd, policy=POLICY, now=NOW)
    assert refused.value.kind is Rejection.CONFLICT


# ----------------------------------------------------------------------- final response


def test_gb_final_response_names_the_ombudsman_and_the_six_month_deadline() -> None:
    resolve = Resolve(complaint_id=CID, actor="agent", outcome=Outcome.PARTIALLY_UPHELD, reason="r")
    (event,) = decide(case_in("in_progress"), resolve, policy=POLICY, now=NOW)
    assert isinstance(event, ComplaintResolved)
    assert event.ombudsman == "Financial Ombudsman Service"
    assert event.referral_deadline == NOW.replace(month=9)
    assert event.remedy_sought is RemedyType.REPLACEMENT
    assert event.remedies_offered == ("replacement", "replacement", "repair", "apology")
    assert event.remedies_given == ("replacement", "apology")  # accepted and fulfilled


def test_other_jurisdictions_without_a_rule_name_no_ombudsman() -> None:
    case = fold(received(jurisdiction="US"), ACK_EVENT)
    resolve = Resolve(complaint_id=CID, actor="agent", outcome=Outcome.REJECTED, reason="r")
    (event,) = decide(case, resolve, policy=POLICY, now=NOW)
    assert isinstance(event, ComplaintResolved)
    assert event.ombudsman is None and event.referral_deadline is None


ACK_EVENT = ComplaintAcknowledged(complaint_id=CID, actor="agent", acknowledged_at=NOW)


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        ("2026-08-31", 6, "2027-02-28"),
        ("2027-08-31", 6, "2028-02-29"),
        ("2026-01-15", 6, "2026-07-15"),
        ("2026-12-01", 1, "2027-01-01"),
    ],
)
def test_add_months_clamps_to_the_end_of_the_month(start: str, months: int, end: str) -> None:
    year, month, day = map(int, start.split("-"))
    moment = NOW.replace(year=year, month=month, day=day)
    assert add_months(moment, months).date().isoformat() == end


# --------------------------------------------------------------------------- evolve


def test_evolve_is_order_tolerant_across_topics() -> None:
    """A replay may read the case topic before the complaints topic: same state either way."""
    case_first = fold(ACK_EVENT, received())
    complaint_first = fold(received(), ACK_EVENT)
    assert case_first == complaint_first
    assert case_first.status is CaseStatus.IN_PROGRESS


def test_a_new_resolution_cycle_clears_the_satisfaction_score() -> None:
    case = fold(
        SatisfactionRecorded(complaint_id=CID, score=2, recorded_at=NOW), case=case_in("resolved")
    )
    assert case.satisfaction_score == 2
    reopened = fold(ComplaintReopened(complaint_id=CID, reason="r", reopened_at=NOW), case=case)
    again = fold(
        ComplaintResolved(
            complaint_id=CID,
            outcome=Outcome.UPHELD,
            reason="r",
            actor="a",
            resolved_at=NOW + timedelta(days=1),
        ),
        case=reopened,
    )
    assert (again.times_reopened, again.times_resolved, again.satisfaction_score) == (1, 2, None)


# ------------------------------------------------------------ random command sequences

P, A, D, F = RemedyStatus
FORWARD = {(P, P), (P, A), (P, D), (A, A), (A, F), (D, D), (F, F)}

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(COMMANDS),
        st.sampled_from([PROPOSED, ACCEPTED, NEW_REMEDY, UNKNOWN_REMEDY]),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=ACTIONS)
def test_any_command_sequence_keeps_the_invariants(
    actions: list[tuple[str, uuid.UUID]],
) -> None:
    case = fold(received())
    log: list[EventData] = [received()]
    for name, remedy_id in actions:
        before = case
        try:
            events = decide(case, command(name, remedy_id), policy=POLICY, now=NOW)
        except CommandRejected as refused:
            assert refused.reason
            continue
        assert len(events) == 1
        log.extend(events)
        case = fold(*events, case=case)
        # Satisfaction only belongs to a resolved case; a resolved case takes no new work.
        if case.satisfaction_score is not None:
            assert case.status is CaseStatus.RESOLVED
        if before.status is CaseStatus.RESOLVED:
            assert name in ("reopen", "record_satisfaction") or name.endswith("_remedy")
        # Remedies only move forward.
        for remedy in before.remedies:
            after = case.remedy(remedy.remedy_id)
            assert after is not None
            assert (remedy.status, after.status) in FORWARD
        assert case.status in ACTIVE | {CaseStatus.RESOLVED}
    # Rebuilding from the log gives the same case: the state is a pure fold of the events.
    assert fold(*log) == case


def test_evolve_ignores_events_it_does_not_know() -> None:
    from redress_events.catalogue import IncidentDetected

    case = case_in("open")
    incident = IncidentDetected(
        incident_id=uuid.uuid4(),
        product="p",
        category="c",
        window_seconds=60,
        count=5,
        baseline=1.0,
        factor=5.0,
        priority=Priority.P2,
        detected_at=NOW,
        reason="surge",
    )
    assert evolve(case, incident) == case
