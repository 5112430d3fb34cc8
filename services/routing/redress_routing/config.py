"""The routing policy file (rules, calendars, SLA policies, escalation, surge) and its loader.

Everything routing decides is data in one versioned YAML file. It is validated when the service
starts; a bad file stops the service with a message naming the line and the problem, because a
routing service running on a half-understood policy is worse than one that does not start.
"""

from __future__ import annotations

import itertools
import re
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from redress_events.catalogue.routing import EscalationTier, SlaTarget
from redress_events.values import Channel, CustomerTier, Priority, RemedyType

from redress_routing.calendars import ALWAYS_OPEN_ID, BusinessCalendar

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9_.:-]*$")]


class ConfigError(Exception):
    """A policy file that must not be used; the message names the line and the problem."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------- priority and assignment rules


class AmountAtLeast(_Model):
    amount: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class RepeatComplaints(_Model):
    """At least `at_least` earlier complaints by the same customer in the last `days` days."""

    days: int = Field(ge=1, le=366)
    at_least: int = Field(ge=1)


class Condition(_Model):
    """Every field given must hold (AND); a list means any of its values (OR)."""

    category: tuple[str, ...] | None = None
    product: tuple[str, ...] | None = None
    channel: tuple[Channel, ...] | None = None
    public: bool | None = None
    tier: tuple[CustomerTier, ...] | None = None
    vulnerable: bool | None = None
    keywords_any: tuple[str, ...] | None = Field(
        default=None, description="whole words or phrases in the description, case-insensitive"
    )
    remedy_sought: tuple[RemedyType, ...] | None = None
    amount_at_least: AmountAtLeast | None = None
    jurisdiction: tuple[str, ...] | None = None
    repeat: RepeatComplaints | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_fields_set:
            raise ValueError("a condition needs at least one field")
        return self


class Rule(_Model):
    id: Id
    when: Condition
    priority: Priority | None = None
    queue: str | None = Field(default=None, min_length=1)
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _fair(self) -> Rule:
        if self.priority is None and self.queue is None:
            raise ValueError("a rule must set a priority, a queue, or both")
        # Fairness (ISO 10002): who the customer is may pick a queue, never the urgency.
        if self.when.tier is not None and self.priority is not None:
            raise ValueError(
                "a rule conditioned on customer tier may set a queue, not a priority "
                "(priority follows the substance of the complaint)"
            )
        return self


# ---------------------------------------------------------------- calendars and SLA policies

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


def _parse_hours(text: str) -> tuple[time, time | None]:
    """'09:00-17:30' → (09:00, 17:30); an end of 24:00 is returned as None (midnight after)."""
    match = _HOURS.match(text)
    if not match:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r} is not a valid time range")
    start = time(h1, m1)
    if h2 == 24:
        return start, None
    end = time(h2, m2)
    if end <= start:
        raise ValueError(f"{text!r} ends before it starts")
    return start, end


class CalendarSpec(_Model):
    timezone: str
    hours: dict[str, tuple[str, ...]] = Field(description="weekday (mon..sun) → HH:MM-HH:MM list")
    holidays: tuple[date, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for day, ranges in value.items():
            if day not in _WEEKDAYS:
                raise ValueError(f"{day!r} is not one of {', '.join(_WEEKDAYS)}")
            parsed = sorted(_parse_hours(r) for r in ranges)
            for (_, end), (next_start, _) in itertools.pairwise(parsed):
                if end is None or end > next_start:
                    raise ValueError(f"{day}: opening hours overlap")
        if not any(value.values()):
            raise ValueError("a business calendar needs opening hours on at least one weekday")
        return value

    def build(self, calendar_id: str) -> BusinessCalendar:
        return BusinessCalendar(
            calendar_id=calendar_id,
            zone=ZoneInfo(self.timezone),
            weekly_hours={
                _WEEKDAYS.index(day): tuple(sorted(_parse_hours(r) for r in ranges))
                for day, ranges in self.hours.items()
            },
            holidays=frozenset(self.holidays),
        )


class Duration(_Model):
    """Exactly one of: hours on the business calendar, hours round the clock, business days
    (due at close of the Nth business day after the start day) or calendar days."""

    business_hours: float | None = Field(default=None, gt=0)
    calendar_hours: float | None = Field(default=None, gt=0)
    business_days: int | None = Field(default=None, ge=1)
    calendar_days: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Duration:
        if len(self.model_fields_set) != 1:
            raise ValueError(
                "give exactly one of business_hours, calendar_hours, business_days, calendar_days"
            )
        return self

    @property
    def on_business_calendar(self) -> bool:
        return self.business_hours is not None or self.business_days is not None

    def describe(self) -> str:
        (name,) = self.model_fields_set
        return f"{getattr(self, name):g} {name.replace('_', ' ')}"

    @property
    def as_timedelta(self) -> timedelta | None:
        """Hour-based durations as time on their calendar; None for day-based ones."""
        hours = self.business_hours if self.business_hours is not None else self.calendar_hours
        return timedelta(hours=hours) if hours is not None else None


class SlaPolicy(_Model):
    id: Id
    priorities: tuple[Priority, ...]
    jurisdictions: tuple[str, ...] | None = Field(default=None, description="None = any")
    calendar: str = Field(description="id of a business calendar for business_* durations")
    targets: dict[SlaTarget, Duration]

    @field_validator("targets")
    @classmethod
    def _no_regulatory(cls, value: dict[SlaTarget, Duration]) -> dict[SlaTarget, Duration]:
        if SlaTarget.REGULATORY in value:
            raise ValueError("regulatory deadlines come from `regulatory` templates, not policies")
        if not value:
            raise ValueError("a policy needs at least one target")
        return value


class RegulatoryTemplate(_Model):
    """A regulator's deadline, chosen by jurisdiction and (optionally) product. Regulatory clocks
    do not pause while the firm waits on the customer."""

    id: Id
    regulation: str = Field(min_length=1, description="e.g. FCA DISP 1.6")
    jurisdictions: tuple[str, ...]
    products: tuple[str, ...] | None = Field(default=None, description="None = any product")
    calendar: str | None = None
    deadline: Duration
    after_holding_reply: Duration | None = Field(
        default=None, description="the longer deadline a holding reply allows (DISP: 35 days)"
    )
    first_response_at_most: Duration | None = Field(
        default=None, description="caps the policy's first response target (CFPB: 15 days)"
    )


class SlaSection(_Model):
    warning_share: float = Field(default=0.8, gt=0, lt=1)
    policies: tuple[SlaPolicy, ...]
    regulatory: tuple[RegulatoryTemplate, ...] = ()


# ---------------------------------------------------------------- escalation

Trigger = Literal["prioritized", "sla_warning", "sla_breached", "incident_linked"]


class EscalationWhen(_Model):
    priority: tuple[Priority, ...] | None = None
    public: bool | None = None
    matched_rules_any: tuple[str, ...] | None = None
    targets: tuple[SlaTarget, ...] | None = Field(default=None, description="for sla_* triggers")


class EscalationRule(_Model):
    id: Id
    trigger: Trigger  # not `on`: YAML 1.1 reads a bare `on` key as the boolean true
    when: EscalationWhen = EscalationWhen()
    to: EscalationTier
    until: Literal["response", "resolution"] = Field(
        description="what brings the complaint back down from this rule's tier"
    )
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _targets_only_for_sla(self) -> EscalationRule:
        if self.when.targets is not None and not self.trigger.startswith("sla_"):
            raise ValueError("`targets` applies only to sla_warning and sla_breached triggers")
        if self.to == EscalationTier.AGENT:
            raise ValueError("escalating to `agent` moves nothing")
        return self


class EscalationSection(_Model):
    rules: tuple[EscalationRule, ...] = ()


# ---------------------------------------------------------------- surge detection


class SurgeSection(_Model):
    window_minutes: int = Field(default=60, ge=1)
    bucket_minutes: int = Field(default=5, ge=1)
    baseline_windows: int = Field(
        default=24, ge=1, description="how many windows before this one make the baseline"
    )
    factor: float = Field(default=3.0, gt=1)
    min_count: int = Field(default=20, ge=1)
    baseline_floor: float = Field(
        default=1.0, gt=0, description="a quiet product's baseline counts as at least this"
    )
    subsides_below_share: float = Field(
        default=0.5, gt=0, le=1, description="resolved when the window falls below this share"
    )
    incident_priority: Priority = Priority.P2
    policy_rule: Id = "surge-incident"

    @model_validator(mode="after")
    def _buckets_fit(self) -> SurgeSection:
        if self.window_minutes % self.bucket_minutes:
            raise ValueError("window_minutes must be a multiple of bucket_minutes")
        return self


# ---------------------------------------------------------------- the whole file


class RoutingPolicy(_Model):
    version: str = Field(min_length=1)
    default_priority: Priority = Priority.P4
    default_queue: str = Field(default="general", min_length=1)
    rules: tuple[Rule, ...]
    calendars: dict[str, CalendarSpec] = {}
    sla: SlaSection
    escalation: EscalationSection = EscalationSection()
    surge: SurgeSection = SurgeSection()

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Cross-references a field validator cannot see, as (where in the file, problem)."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        where: tuple[str | int, ...]
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                found.append((("rules", index, "id"), f"rule id {rule.id!r} is used twice"))
            seen.add(rule.id)
        if ALWAYS_OPEN_ID in self.calendars:
            found.append((("calendars", ALWAYS_OPEN_ID), "is the built-in 24x7 calendar"))
        for index, policy in enumerate(self.sla.policies):
            if policy.calendar != ALWAYS_OPEN_ID and policy.calendar not in self.calendars:
                where = ("sla", "policies", index, "calendar")
                found.append((where, f"unknown calendar {policy.calendar!r}"))
        for index, template in enumerate(self.sla.regulatory):
            durations = [template.deadline, template.after_holding_reply]
            needs_calendar = any(d is not None and d.on_business_calendar for d in durations)
            if needs_calendar and template.calendar not in self.calendars:
                where = ("sla", "regulatory", index)
                found.append((where, "business_days need a known business `calendar`"))
        for priority in Priority:
            covering = [p for p in self.sla.policies if priority in p.priorities]
            if not any(p.jurisdictions is None for p in covering):
                found.append(
                    (
                        ("sla", "policies"),
                        f"no policy covers {priority.value} in every jurisdiction",
                    )
                )
        return found

    def calendar(self, calendar_id: str) -> BusinessCalendar | None:
        spec = self.calendars.get(calendar_id)
        return spec.build(calendar_id) if spec else None


# ---------------------------------------------------------------- loading with line numbers

Path_ = tuple[str | int, ...]


def _line_index(node: yaml.Node, path: Path_ = ()) -> dict[Path_, int]:
    """Map every path in the document to the 1-based line where its value starts."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines.update(_line_index(value_node, (*path, key)))
            # A problem with a value is reported on the line of its key.
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_index(item, (*path, index)))
    return lines


def _line_of(loc: tuple[Any, ...], lines: dict[Path_, int]) -> int:
    """The line of the deepest part of a pydantic error location found in the document."""
    best = lines.get((), 1)
    path: Path_ = ()
    for part in loc:
        candidate = (*path, part)
        if candidate in lines:
            path = candidate
            best = lines[path]
        # else: a pydantic-internal segment (union tag, validator name) — skip it
    return best


def parse_policy(text: str, *, origin: str) -> RoutingPolicy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw: Any = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else "?"
        raise ConfigError(f"{origin}:{line}: not valid YAML: {exc.problem}") from exc
    if root is None or not isinstance(raw, dict):
        raise ConfigError(f"{origin}:1: expected a mapping with version, rules and sla")
    lines = _line_index(root)
    try:
        policy = RoutingPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = [(tuple(error["loc"]), error["msg"]) for error in exc.errors()]
    else:
        problems = policy.problems()
        if not problems:
            return policy
    raise ConfigError(
        "\n".join(
            f"{origin}:{_line_of(loc, lines)}: {'.'.join(str(p) for p in loc) or '(top)'}: {msg}"
            for loc, msg in problems
        )
    )


def load_policy(path: Path) -> RoutingPolicy:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_policy(text, origin=str(path))
