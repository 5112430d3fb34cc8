"""Service guarantees as pure decisions, the policy file's validation, and the casebook's
duplicate dropping — everything that makes a guarantee pay exactly once, without a broker."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from redress_events import Envelope, EventData
from redress_events.catalogue import (
    CompensationIssued,
    GuaranteeTriggered,
    SatisfactionRecorded,
    SlaBreached,
)
from redress_events.catalogue.routing import SlaTarget
from redress_recovery.casebook import Casebook
from redress_recovery.domain import Case
from redress_recovery.guarantees import (
    compensation_event_id,
    decide_guarantees,
    triggered_event_id,
)
from redress_recovery.policy import PolicyError, load_policy, parse_policy
from redress_recovery.settings import DEFAULT_POLICY_FILE

from tests.unit.recovery.cases import CID, NOW, POLICY, case_in, fold, received

TRIGGER_ID = uuid.UUID("00000000-0000-4000-8000-0000000000aa")


def breach(target: SlaTarget, policy_id: str = "standard") -> SlaBreached:
    return SlaBreached(
        complaint_id=CID, target=target, policy_id=policy_id, due_at=NOW, breached_at=NOW
    )


def score(value: int, *, days_after_resolution: float = 1) -> SatisfactionRecorded:
    return SatisfactionRecorded(
        complaint_id=CID, score=value, recorded_at=NOW + timedelta(days=days_after_resolution)
    )


def decide(case: Case, event: EventData) -> list[tuple[str, str, Decimal | None, str | None]]:
    payouts = decide_guarantees(case, event, trigger_event_id=TRIGGER_ID, policy=POLICY, now=NOW)
    return [
        (
            p.guarantee.id,
            p.compensation.compensation_type.value,
            p.compensation.amount.amount if p.compensation.amount else None,
            p.compensation.amount.currency if p.compensation.amount else None,
        )
        for p in payouts
    ]


def test_first_response_breach_pays_the_fixed_credit() -> None:
    assert decide(case_in("open"), breach(SlaTarget.FIRST_RESPONSE)) == [
        ("first-response", "account_credit", Decimal("10.00"), "EUR")
    ]


@pytest.mark.parametrize("target", [SlaTarget.NEXT_UPDATE, SlaTarget.REGULATORY])
def test_breaches_no_guarantee_covers_pay_nothing(target: SlaTarget) -> None:
    assert decide(case_in("in_progress"), breach(target)) == []


def test_eligibility_limits_a_guarantee_to_its_customers() -> None:
    assert decide(case_in("in_progress"), breach(SlaTarget.RESOLUTION)) == []  # standard tier
    vip = fold(received(customer={"id": "C-9", "tier": "vip"}))
    assert decide(vip, breach(SlaTarget.RESOLUTION)) == [
        ("vip-resolution", "fee_waiver", None, None)
    ]


@pytest.mark.parametrize(
    ("value", "days", "pays"),
    [(3, 1, True), (1, 29.9, True), (4, 1, False), (2, 30.5, False), (10, 1, False)],
)
def test_satisfaction_guarantee_refunds_what_was_at_stake(
    value: int, days: float, pays: bool
) -> None:
    expected = [("satisfaction", "refund", Decimal("49.99"), "GBP")] if pays else []
    assert decide(case_in("resolved"), score(value, days_after_resolution=days)) == expected


def test_a_guarantee_added_later_does_not_pay_on_earlier_breaches() -> None:
    late_policy = POLICY.model_copy(
        update={
            "guarantees": tuple(
                g.model_copy(update={"effective_from": NOW + timedelta(hours=1)})
                for g in POLICY.guarantees
            )
        }
    )

    def fired(breached_at_offset: timedelta) -> list[str]:
        event = breach(SlaTarget.FIRST_RESPONSE).model_copy(
            update={"breached_at": NOW + breached_at_offset}
        )
        payouts = decide_guarantees(
            case_in("open"), event, trigger_event_id=TRIGGER_ID, policy=late_policy, now=NOW
        )
        return [p.guarantee.id for p in payouts]

    assert fired(timedelta(minutes=59)) == []
    assert fired(timedelta(hours=1)) == ["first-response"]


def test_satisfaction_guarantee_needs_a_resolution() -> None:
    assert decide(case_in("in_progress"), score(1)) == []


def test_unknown_complaints_trigger_nothing() -> None:
    assert decide(Case(complaint_id=CID), breach(SlaTarget.FIRST_RESPONSE)) == []


def test_a_guarantee_fires_once_per_complaint_whatever_comes_after() -> None:
    case = case_in("resolved")
    payouts = decide_guarantees(
        case, breach(SlaTarget.FIRST_RESPONSE), trigger_event_id=TRIGGER_ID, policy=POLICY, now=NOW
    )
    (payout,) = payouts
    assert payout.triggered is not None
    case = fold(payout.triggered, payout.compensation, case=case)
    assert case.guarantees_triggered == {"first-response"}
    assert decide(case, breach(SlaTarget.FIRST_RESPONSE)) == []
    assert decide(case, breach(SlaTarget.FIRST_RESPONSE, policy_id="other")) == []
    # A different guarantee still fires on its own trigger.
    assert [g for g, *_ in decide(case, score(2))] == ["satisfaction"]


def test_a_payout_cut_short_after_the_trigger_is_completed_not_repeated() -> None:
    """GuaranteeTriggered was acknowledged but CompensationIssued was not: the redelivered
    trigger appends only the compensation, with its usual id."""
    case = case_in("open")
    (payout,) = decide_guarantees(
        case, breach(SlaTarget.FIRST_RESPONSE), trigger_event_id=TRIGGER_ID, policy=POLICY, now=NOW
    )
    assert payout.triggered is not None
    half_paid = fold(payout.triggered, case=case)
    (completion,) = decide_guarantees(
        half_paid,
        breach(SlaTarget.FIRST_RESPONSE),
        trigger_event_id=TRIGGER_ID,
        policy=POLICY,
        now=NOW,
    )
    assert completion.triggered is None
    assert [eid for eid, _ in completion.events] == [compensation_event_id(CID, "first-response")]
    paid = fold(completion.compensation, case=half_paid)
    assert decide(paid, breach(SlaTarget.FIRST_RESPONSE)) == []


def test_event_ids_depend_on_complaint_and_guarantee_only() -> None:
    case = case_in("open")
    first = decide_guarantees(
        case,
        breach(SlaTarget.FIRST_RESPONSE),
        trigger_event_id=uuid.uuid4(),
        policy=POLICY,
        now=NOW,
    )
    again = decide_guarantees(
        case,
        breach(SlaTarget.FIRST_RESPONSE),
        trigger_event_id=uuid.uuid4(),
        policy=POLICY,
        now=NOW + timedelta(hours=1),
    )
    assert [eid for p in first for eid, _ in p.events] == [
        eid for p in again for eid, _ in p.events
    ]
    assert [eid for eid, _ in first[0].events] == [
        triggered_event_id(CID, "first-response"),
        compensation_event_id(CID, "first-response"),
    ]
    other = uuid.uuid4()
    assert triggered_event_id(other, "first-response") != triggered_event_id(CID, "first-response")
    assert triggered_event_id(CID, "satisfaction") != triggered_event_id(CID, "first-response")


def test_casebook_drops_an_event_it_already_applied() -> None:
    casebook = Casebook()
    (payout,) = decide_guarantees(
        fold(received()),
        breach(SlaTarget.FIRST_RESPONSE),
        trigger_event_id=TRIGGER_ID,
        policy=POLICY,
        now=NOW,
    )
    envelopes = [
        Envelope[EventData].new(received(), subject=str(CID), source="/t"),
        *(
            Envelope[EventData].new(data, subject=str(CID), source="/t", event_id=eid)
            for eid, data in payout.events
        ),
    ]
    assert [casebook.apply(e) for e in envelopes] == [True, True, True]
    state = casebook.get(CID)
    assert [casebook.apply(e) for e in envelopes] == [False, False, False]
    assert casebook.get(CID) == state
    assert state.compensations_issued == {"first-response"}
    assert isinstance(payout.triggered, GuaranteeTriggered)
    assert isinstance(payout.compensation, CompensationIssued)


# --------------------------------------------------------------------------- policy file


def test_the_shipped_policy_file_is_valid() -> None:
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert {g.id for g in policy.guarantees} >= {
        "first-response-24h",
        "resolution-within-sla",
        "satisfaction-refund",
    }
    assert policy.jurisdictions["GB"].referral_window_months == 6


GOOD = """
version: "1"
guarantees:
  - id: g1
    description: d
    trigger: {kind: sla_breached, target: first_response}
    compensation: {type: account_credit, amount: {amount: "5.00", currency: EUR}}
"""


@pytest.mark.parametrize(
    ("mutation", "named"),
    [
        (("first_response", "first_reply"), "trigger.sla_breached.target"),
        (("account_credit, amount", "account_credit, amout"), "compensation"),
        (("currency: EUR", "currency: EURO"), "currency"),
        (("kind: sla_breached", "kind: sometimes"), "trigger"),
        (("- id: g1", "- id: G 1"), "guarantees.0.id"),
        (('version: "1"', "versoin: 1"), "version"),
    ],
)
def test_an_invalid_policy_is_refused_naming_the_field(
    mutation: tuple[str, str], named: str
) -> None:
    assert parse_policy(GOOD).guarantees[0].id == "g1"
    with pytest.raises(PolicyError) as refused:
        parse_policy(GOOD.replace(*mutation), origin="policy.yaml")
    assert "policy.yaml" in str(refused.value)
    assert named in str(refused.value)


def test_duplicate_guarantee_ids_and_money_without_amount_are_refused() -> None:
    twice = GOOD + GOOD.split("guarantees:\n", 1)[1]
    with pytest.raises(PolicyError, match="unique"):
        parse_policy(twice)
    with pytest.raises(PolicyError, match="needs amount"):
        parse_policy(GOOD.replace(', amount: {amount: "5.00", currency: EUR}', ""))
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("guarantees: [")


def test_a_missing_policy_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nowhere.yaml")
