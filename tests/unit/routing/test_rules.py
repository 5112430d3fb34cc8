"""Priority and queue rules: explainable, deterministic, fair; the policy file's validation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redress_events.catalogue import ComplaintReceived
from redress_routing.config import ConfigError, RoutingPolicy, load_policy, parse_policy
from redress_routing.rules import CustomerHistory, decide
from redress_routing.settings import DEFAULT_RULES

POLICY = load_policy(DEFAULT_RULES)
POLICY_TEXT = DEFAULT_RULES.read_text()
RECEIVED = datetime(2026, 11, 23, 10, tzinfo=UTC)


def complaint(**overrides: Any) -> ComplaintReceived:
    fields: dict[str, Any] = {
        "customer": {"id": "C-1", "tier": "standard"},
        "channel": "email",
        "public": False,
        "category": "delivery",
        "product": "parcel-standard",
        "description": "The parcel arrived two days late.",
        "jurisdiction": "GB",
        "complaint_id": uuid.UUID(int=1),
        "received_at": RECEIVED,
    }
    fields.update(overrides)
    return ComplaintReceived(**fields)


def test_nothing_special_gets_the_defaults_and_says_so() -> None:
    decision = decide(complaint(), POLICY)
    assert (decision.priority, decision.queue) == ("P4", "general")
    assert decision.matched_rules == ()
    assert "default priority" in decision.priority_reason


def test_safety_words_make_p1_with_every_matching_rule_recorded() -> None:
    decision = decide(
        complaint(
            category="product_defect",
            channel="social",
            public=True,
            description="The kettle caught FIRE and I was injured.",
        ),
        POLICY,
    )
    assert decision.priority == "P1"
    assert decision.matched_rules == ("safety-injury", "public-social", "product-defect")
    assert decision.priority_reason.startswith("P1 because safety-injury")
    assert "also matched (less urgent): public-social" in decision.priority_reason
    assert (decision.queue, decision.queue_rules) == ("product-safety", ("safety-injury",))


def test_keywords_match_whole_words_only() -> None:
    assert decide(complaint(description="The firewall blocks my app."), POLICY).priority == "P4"
    assert decide(complaint(description="Smoke came out."), POLICY).priority == "P1"


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"customer": {"id": "C-1", "vulnerable": True}}, "vulnerable-customer"),
        ({"description": "I will see you in court."}, "legal-threat"),
        ({"amount_at_stake": {"amount": "1000.00", "currency": "GBP"}}, "high-value"),
        ({"category": "billing", "remedy_sought": "refund"}, "refund-billing"),
    ],
)
def test_each_kind_of_condition(overrides: dict[str, Any], rule: str) -> None:
    assert rule in decide(complaint(**overrides), POLICY).matched_rules


def test_amount_in_another_currency_or_below_does_not_count() -> None:
    for stake in ({"amount": "999.99", "currency": "GBP"}, {"amount": "5000", "currency": "USD"}):
        assert "high-value" not in decide(complaint(amount_at_stake=stake), POLICY).matched_rules


def test_repeat_complaints_count_only_inside_the_window() -> None:
    recent = CustomerHistory(earlier=(RECEIVED - timedelta(days=3), RECEIVED - timedelta(days=29)))
    old = CustomerHistory(earlier=(RECEIVED - timedelta(days=3), RECEIVED - timedelta(days=31)))
    assert decide(complaint(), POLICY, recent).priority == "P2"
    assert "repeat-complainant" in decide(complaint(), POLICY, recent).matched_rules
    assert decide(complaint(), POLICY, old).priority == "P4"


@given(
    offsets_h=st.lists(st.integers(min_value=-2000, max_value=2000), max_size=60),
    days=st.integers(min_value=0, max_value=60),
)
def test_counting_repeat_complaints_by_bisection_counts_each_one_in_the_window(
    offsets_h: list[int], days: int
) -> None:
    earlier = tuple(RECEIVED + timedelta(hours=h) for h in offsets_h)  # any order, duplicates
    since = RECEIVED - timedelta(days=days)
    expected = sum(1 for at in earlier if since <= at < RECEIVED)
    assert CustomerHistory(earlier=earlier).count_within(days, before=RECEIVED) == expected


def test_customer_tier_changes_the_queue_never_the_priority() -> None:
    standard = decide(complaint(), POLICY)
    vip = decide(complaint(customer={"id": "C-1", "tier": "vip"}), POLICY)
    assert vip.priority == standard.priority
    assert (vip.queue, vip.queue_rules) == ("premium-care", ("premium-desk",))


complaints = st.builds(
    lambda category, channel, public, words, vulnerable, remedy: complaint(
        category=category,
        channel=channel,
        public=public,
        description=" ".join(words) or "nothing",
        customer={"id": "C-1", "vulnerable": vulnerable},
        remedy_sought=remedy,
    ),
    st.sampled_from(["delivery", "billing", "product_defect", "service"]),
    st.sampled_from(["email", "social", "web", "phone"]),
    st.booleans(),
    st.lists(st.sampled_from(["late", "burn", "court", "rude", "fire", "refund", "ok"])),
    st.booleans(),
    st.sampled_from([None, "refund", "apology"]),
)


@settings(max_examples=100, deadline=None)
@given(case=complaints, tier=st.sampled_from(["standard", "premium", "business", "vip"]))
def test_fairness_no_tier_changes_the_priority_and_decisions_are_deterministic(
    case: ComplaintReceived, tier: str
) -> None:
    as_tier = case.model_copy(update={"customer": case.customer.model_copy(update={"tier": tier})})
    assert decide(as_tier, POLICY).priority == decide(case, POLICY).priority
    assert decide(case, POLICY) == decide(case, POLICY)


# ------------------------------------------------------------------ the policy file


def broken(old: str, new: str) -> str:
    assert POLICY_TEXT.count(old) == 1, old
    return POLICY_TEXT.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    """The line of the last occurrence of `fragment` (a duplicate is the later one)."""
    return max(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_the_shipped_policy_is_valid() -> None:
    assert isinstance(POLICY, RoutingPolicy)
    assert POLICY.sla.warning_share == 0.8


@pytest.mark.parametrize(
    ("old", "new", "marker", "problem"),
    [
        (
            "    priority: P3\n    queue: billing",
            "    priority: P9\n    queue: billing",
            "P9",
            "P1",
        ),
        (
            "    queue: premium-care\n",
            "    queue: premium-care\n    priority: P1\n",
            "- id: premium-desk",
            "customer tier may set a queue, not a priority",
        ),
        ("timezone: America/New_York", "timezone: America/Gotham", "Gotham", "unknown time zone"),
        (
            'thu: ["08:00-18:00"]',
            'thu: ["08:00-28:00"]',
            'hours: {mon: ["08:00',
            "valid time range",
        ),
        ("- id: legal-threat", "- id: safety-injury", "- id: safety-injury", "used twice"),
        (
            "calendar: us-office\n      targets:\n        first_response: {business_hours: 4}",
            "calendar: mars-office\n      targets:\n        first_response: {business_hours: 4}",
            "calendar: mars-office",
            "unknown calendar",
        ),
        (
            "first_response: {calendar_hours: 1}",
            "first_response: {calendar_hours: 1, business_hours: 2}",
            "business_hours: 2}",
            "exactly one",
        ),
        (
            "to: executive\n      until: resolution",
            "to: chairman\n      until: resolution",
            "chairman",
            "executive",
        ),
    ],
)
def test_a_bad_policy_names_the_line_and_the_problem(
    old: str, new: str, marker: str, problem: str
) -> None:
    text = broken(old, new)
    with pytest.raises(ConfigError) as failure:
        parse_policy(text, origin="rules.yaml")
    message = str(failure.value)
    assert problem in message
    assert f"rules.yaml:{line_of(text, marker)}:" in message, message


def test_yaml_syntax_errors_name_the_line() -> None:
    text = broken("default_queue: general", "default_queue: [general")
    with pytest.raises(ConfigError, match=r"rules\.yaml:\d+: not valid YAML"):
        parse_policy(text, origin="rules.yaml")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "nope.yaml")
