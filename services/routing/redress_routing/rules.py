"""Priority and assignment: pure, deterministic evaluation of the policy's rules.

Every rule whose conditions hold is recorded. The most urgent priority any matching rule gives
wins, so no rule can lower what another rule's substance earned; the first matching rule that
names a queue picks the queue. Rules conditioned on customer tier may only pick a queue (the
policy loader refuses anything else).
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from redress_events.catalogue import ComplaintReceived
from redress_events.values import Priority

from redress_routing.config import Condition, ConfigError, RoutingPolicy, Rule, load_policy

RulesError = ConfigError  # the name __main__ and older callers know
load_rules = load_policy


@dataclass(frozen=True)
class CustomerHistory:
    """When the same customer's earlier complaints arrived (kept by the routing worker)."""

    earlier: tuple[datetime, ...] = ()
    # Sorted once, so each repeat condition counts by bisection: a busy customer keeps up to 200
    # complaints, and parsing and counting them one by one took about a fifth of routing's CPU
    # on a million complaints from 256 customers (py-spy, docs/PERFORMANCE.md).
    _sorted: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sorted", tuple(sorted(self.earlier)))

    def count_within(self, days: int, *, before: datetime) -> int:
        """How many arrived in [before - days, before)."""
        since = before - timedelta(days=days)
        return bisect_left(self._sorted, before) - bisect_left(self._sorted, since)


@functools.cache
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(keyword.lower())}(?!\w)")


def _contains_keyword(text: str, keyword: str) -> bool:
    return _keyword_pattern(keyword).search(text) is not None


def condition_holds(
    condition: Condition, complaint: ComplaintReceived, history: CustomerHistory
) -> bool:
    checks: list[bool] = []
    if condition.category is not None:
        checks.append(complaint.category in condition.category)
    if condition.product is not None:
        checks.append(complaint.product in condition.product)
    if condition.channel is not None:
        checks.append(complaint.channel in condition.channel)
    if condition.public is not None:
        checks.append(complaint.public == condition.public)
    if condition.tier is not None:
        checks.append(complaint.customer.tier in condition.tier)
    if condition.vulnerable is not None:
        checks.append(complaint.customer.vulnerable == condition.vulnerable)
    if condition.keywords_any is not None:
        text = complaint.description.lower()
        checks.append(any(_contains_keyword(text, word) for word in condition.keywords_any))
    if condition.remedy_sought is not None:
        checks.append(complaint.remedy_sought in condition.remedy_sought)
    if condition.amount_at_least is not None:
        stake = complaint.amount_at_stake
        threshold = condition.amount_at_least
        checks.append(
            stake is not None
            and stake.currency == threshold.currency
            and stake.amount >= Decimal(str(threshold.amount))
        )
    if condition.jurisdiction is not None:
        checks.append(complaint.jurisdiction in condition.jurisdiction)
    if condition.repeat is not None:
        earlier = history.count_within(condition.repeat.days, before=complaint.received_at)
        checks.append(earlier >= condition.repeat.at_least)
    return all(checks)


@dataclass(frozen=True)
class RoutingDecision:
    priority: Priority
    priority_rules: tuple[str, ...]
    priority_reason: str
    queue: str
    queue_rules: tuple[str, ...]
    queue_reason: str
    matched_rules: tuple[str, ...]


def _explain(rules: list[Rule]) -> str:
    return "; ".join(f"{rule.id}: {rule.reason}" for rule in rules)


def decide(
    complaint: ComplaintReceived, policy: RoutingPolicy, history: CustomerHistory | None = None
) -> RoutingDecision:
    history = history or CustomerHistory()
    matched = [rule for rule in policy.rules if condition_holds(rule.when, complaint, history)]
    with_priority = [rule for rule in matched if rule.priority is not None]
    with_queue = [rule for rule in matched if rule.queue is not None]

    if with_priority:
        priority = min((r.priority for r in with_priority if r.priority), key=lambda p: p.rank)
        deciding = [rule for rule in with_priority if rule.priority == priority]
        others = [rule for rule in with_priority if rule.priority != priority]
        priority_reason = f"{priority.value} because {_explain(deciding)}"
        if others:
            priority_reason += f"; also matched (less urgent): {_explain(others)}"
    else:
        priority = policy.default_priority
        deciding = []
        priority_reason = f"{priority.value}: no priority rule matched; default priority"

    if with_queue:
        queue_rule = with_queue[0]
        queue = queue_rule.queue or policy.default_queue
        queue_rules: tuple[str, ...] = (queue_rule.id,)
        queue_reason = f"queue {queue} because {_explain([queue_rule])}"
    else:
        queue, queue_rules = policy.default_queue, ()
        queue_reason = f"queue {queue}: no queue rule matched; default queue"

    return RoutingDecision(
        priority=priority,
        priority_rules=tuple(rule.id for rule in with_priority),
        priority_reason=priority_reason,
        queue=queue,
        queue_rules=queue_rules,
        queue_reason=queue_reason,
        matched_rules=tuple(rule.id for rule in matched),
    )


def longest_repeat_window_days(policy: RoutingPolicy) -> int:
    """How far back the worker must remember a customer's complaints."""
    return max((r.when.repeat.days for r in policy.rules if r.when.repeat), default=0)


__all__ = [
    "CustomerHistory",
    "RoutingDecision",
    "RulesError",
    "condition_holds",
    "decide",
    "load_rules",
    "longest_repeat_window_days",
]
