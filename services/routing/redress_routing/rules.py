"""Priority rules as data: parsed and validated at start, evaluated by a pure function."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redress_events.catalogue import ComplaintReceived
from redress_events.values import Priority


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    category: tuple[str, ...] | None = None
    channel: tuple[str, ...] | None = None
    public: bool | None = None
    text_contains_any: tuple[str, ...] | None = None

    def matches(self, complaint: ComplaintReceived) -> bool:
        if self.category is not None and complaint.category not in self.category:
            return False
        if self.channel is not None and complaint.channel.value not in self.channel:
            return False
        if self.public is not None and complaint.public != self.public:
            return False
        if self.text_contains_any is not None:
            text = complaint.description.lower()
            if not any(word.lower() in text for word in self.text_contains_any):
                return False
        return True


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    priority: Priority
    when: Condition
    reason: str = Field(min_length=1)


class RuleSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1)
    default_priority: Priority = Priority.P4
    rules: tuple[Rule, ...]


class RulesError(Exception):
    """A rules file that must not be used; the message names the place and the problem."""


def load_rules(path: Path) -> RuleSet:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return RuleSet.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise RulesError(f"{path}: {problems}") from exc


@dataclass(frozen=True)
class PriorityDecision:
    priority: Priority
    matched_rules: tuple[str, ...]
    reason: str


def decide_priority(complaint: ComplaintReceived, rules: RuleSet) -> PriorityDecision:
    matched = [rule for rule in rules.rules if rule.when.matches(complaint)]
    if not matched:
        return PriorityDecision(rules.default_priority, (), "no rule matched; default priority")
    best = min(matched, key=lambda r: r.priority.rank)
    reason = "; ".join(f"{r.id}: {r.reason}" for r in matched)
    return PriorityDecision(best.priority, tuple(r.id for r in matched), reason)
