"""Tiered escalation (agent → team lead → manager → executive) as a pure function of policy.

A complaint sits at the highest tier that any active escalation rule holds it at. A rule becomes
active when its trigger fires and its conditions hold, and is lifted by what its `until` names
(a response, or the resolution). Rules cannot look at customer tier (the policy schema has no
such field), so the executive tier is reached only through policy signals such as a breached
regulatory deadline or a public safety report — never by who the customer is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redress_events.catalogue.routing import EscalationTier, SlaTarget
from redress_events.values import Priority

from redress_routing.config import EscalationRule, EscalationSection

TIER_ORDER = (
    EscalationTier.AGENT,
    EscalationTier.TEAM_LEAD,
    EscalationTier.MANAGER,
    EscalationTier.EXECUTIVE,
)

Lift = Literal["response", "resolution"]


def tier_rank(tier: EscalationTier) -> int:
    return TIER_ORDER.index(tier)


def tier_of(holds: dict[str, tuple[EscalationTier, Lift]]) -> EscalationTier:
    return max((tier for tier, _ in holds.values()), key=tier_rank, default=EscalationTier.AGENT)


@dataclass(frozen=True)
class Signal:
    """Something that may move a complaint up: a trigger plus the facts rules can test."""

    trigger: str  # prioritized | sla_warning | sla_breached | incident_linked
    priority: Priority
    public: bool
    matched_rules: tuple[str, ...]
    target: SlaTarget | None = None

    @property
    def label(self) -> str:
        return f"{self.trigger}:{self.target.value}" if self.target else self.trigger


def rule_applies(rule: EscalationRule, signal: Signal) -> bool:
    when = rule.when
    return (
        rule.trigger == signal.trigger
        and (when.priority is None or signal.priority in when.priority)
        and (when.public is None or signal.public == when.public)
        and (
            when.matched_rules_any is None
            or any(r in signal.matched_rules for r in when.matched_rules_any)
        )
        and (when.targets is None or signal.target in when.targets)
    )


@dataclass(frozen=True)
class TierChange:
    from_tier: EscalationTier
    tier: EscalationTier
    trigger: str
    policy_rule: str
    reason: str


def escalate(
    holds: dict[str, tuple[EscalationTier, Lift]], signal: Signal, policy: EscalationSection
) -> tuple[dict[str, tuple[EscalationTier, Lift]], TierChange | None]:
    """New holds after `signal`, and the move up if the complaint's tier rose."""
    before = tier_of(holds)
    updated = dict(holds)
    newly = [r for r in policy.rules if r.id not in holds and rule_applies(r, signal)]
    for rule in newly:
        updated[rule.id] = (rule.to, rule.until)
    after = tier_of(updated)
    if tier_rank(after) <= tier_rank(before):
        return updated, None
    top = next(r for r in newly if r.to == after)
    return updated, TierChange(
        from_tier=before,
        tier=after,
        trigger=signal.label,
        policy_rule=top.id,
        reason=f"{top.id}: {top.reason}",
    )


def lift(
    holds: dict[str, tuple[EscalationTier, Lift]], *, on: Lift, trigger: str
) -> tuple[dict[str, tuple[EscalationTier, Lift]], TierChange | None]:
    """New holds after a response (lifts `until: response`) or resolution (lifts all)."""
    before = tier_of(holds)
    kept = {rule_id: hold for rule_id, hold in holds.items() if on == "response" and hold[1] != on}
    lifted = sorted(set(holds) - set(kept))
    after = tier_of(kept)
    if tier_rank(after) >= tier_rank(before):
        return kept, None
    return kept, TierChange(
        from_tier=before,
        tier=after,
        trigger=trigger,
        policy_rule=",".join(lifted),
        reason=f"{trigger} lifted {', '.join(lifted)}",
    )
