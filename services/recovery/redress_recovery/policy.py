"""Recovery policy as data: service guarantees, remedy bands and ombudsman rules.

Loaded from YAML and validated once at start: a bad file stops the service with a message
naming the field, rather than paying (or refusing) compensation on a typo.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from redress_events.catalogue.routing import SlaTarget
from redress_events.values import CountryCode, CustomerTier, Money, Priority, RemedyType, Slug

Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


# Routing's priority is the default severity of a complaint when the agent does not name one.
SEVERITY_OF_PRIORITY = {
    Priority.P1: Severity.CRITICAL,
    Priority.P2: Severity.HIGH,
    Priority.P3: Severity.MEDIUM,
    Priority.P4: Severity.LOW,
}

# Remedies that are a sum of money: proposing one without an amount makes no sense.
MONEY_REMEDIES = frozenset(
    {RemedyType.REFUND, RemedyType.PARTIAL_REFUND, RemedyType.ACCOUNT_CREDIT}
)
# Remedies that are never a sum of money.
NON_MONEY_REMEDIES = frozenset({RemedyType.APOLOGY, RemedyType.CALLBACK, RemedyType.EXPLANATION})


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlaBreachTrigger(_Strict):
    """Fires on routing's SlaBreached for `target` (under any of `policy_ids`, or any policy)."""

    kind: Literal["sla_breached"]
    target: SlaTarget
    policy_ids: tuple[str, ...] = ()


class SatisfactionTrigger(_Strict):
    """Fires when a satisfaction score of at most `score` is recorded within `within_days` of
    the resolution."""

    kind: Literal["satisfaction_at_most"]
    score: int = Field(ge=1, le=10)
    within_days: int = Field(ge=1, le=3650)


Trigger = Annotated[SlaBreachTrigger | SatisfactionTrigger, Field(discriminator="kind")]


class Compensation(_Strict):
    type: RemedyType
    amount: Money | None = Field(default=None, description="a fixed sum")
    amount_from: Literal["amount_at_stake"] | None = Field(
        default=None, description="pay what the customer said was at stake (fixed sum as fallback)"
    )

    @model_validator(mode="after")
    def _amount_fits_type(self) -> Compensation:
        if self.type in NON_MONEY_REMEDIES and (self.amount or self.amount_from):
            raise ValueError(f"{self.type.value} compensation cannot carry an amount")
        if self.type in MONEY_REMEDIES and not (self.amount or self.amount_from):
            raise ValueError(f"{self.type.value} compensation needs amount or amount_from")
        return self


class Eligibility(_Strict):
    """Empty lists mean everyone."""

    tiers: tuple[CustomerTier, ...] = ()
    jurisdictions: tuple[CountryCode, ...] = ()
    categories: tuple[Slug, ...] = ()


class Guarantee(_Strict):
    id: Slug
    description: Text
    trigger: Trigger
    compensation: Compensation
    applies_to: Eligibility = Field(default_factory=Eligibility)
    effective_from: AwareDatetime | None = Field(
        default=None,
        description="triggers that happened earlier do not count, so a guarantee added to the "
        "policy does not pay out on old breaches when the log is replayed",
    )


class RemedyBand(_Strict):
    """What a (failure type, severity) usually gets; anything else needs a stated reason."""

    failure_type: Slug
    severity: Severity | Literal["any"] = "any"
    remedies: tuple[RemedyType, ...] = Field(min_length=1)
    max_amount: Money | None = None

    def allows(self, remedy_type: RemedyType, amount: Money | None) -> bool:
        if remedy_type not in self.remedies:
            return False
        if amount is None or self.max_amount is None:
            return True
        if amount.currency != self.max_amount.currency:
            return False  # not comparable: a person has to justify it
        return Decimal(amount.amount) <= Decimal(self.max_amount.amount)


class OmbudsmanRule(_Strict):
    ombudsman: Text
    referral_window_months: int = Field(ge=1, le=120)


class RecoveryPolicy(_Strict):
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    guarantees: tuple[Guarantee, ...] = ()
    bands: tuple[RemedyBand, ...] = ()
    jurisdictions: dict[CountryCode, OmbudsmanRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> RecoveryPolicy:
        ids = [g.id for g in self.guarantees]
        if len(ids) != len(set(ids)):
            raise ValueError(f"guarantee ids must be unique: {sorted(ids)}")
        keys = [(b.failure_type, str(b.severity)) for b in self.bands]
        if len(keys) != len(set(keys)):
            raise ValueError("at most one band per (failure_type, severity)")
        return self

    def band_for(self, failure_type: str, severity: Severity | None) -> RemedyBand | None:
        """The band for exactly this severity, else the failure type's `any` band."""
        exact = next(
            (b for b in self.bands if b.failure_type == failure_type and b.severity == severity),
            None,
        )
        if exact is not None:
            return exact
        return next(
            (b for b in self.bands if b.failure_type == failure_type and b.severity == "any"),
            None,
        )


class PolicyError(Exception):
    """The policy file is missing or invalid; the message names the file and the fields."""


def parse_policy(text: str, *, origin: str = "<string>") -> RecoveryPolicy:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{origin}: not valid YAML: {exc}") from exc
    try:
        return RecoveryPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise PolicyError(f"{origin}: invalid recovery policy: {problems}") from exc


def load_policy(path: Path) -> RecoveryPolicy:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read recovery policy: {exc}") from exc
    return parse_policy(text, origin=str(path))
