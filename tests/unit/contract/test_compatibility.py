"""Contract compatibility: a change that would break readers of a published event version
fails, unless it is published as a new version."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from types import ModuleType
from typing import Any

from pydantic import BaseModel


def schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="serialization")


class Money(BaseModel):
    amount: str
    currency: str


class Colour(StrEnum):
    RED = "red"


class ColourMore(StrEnum):
    RED = "red"
    BLUE = "blue"


class V1(BaseModel):
    complaint_id: uuid.UUID
    reason: str | None = None
    at: datetime
    money: Money
    tags: list[str]
    colour: Colour


class RemovedField(BaseModel):
    complaint_id: uuid.UUID
    at: datetime
    money: Money
    tags: list[str]
    colour: Colour


class RetypedField(BaseModel):
    complaint_id: int
    reason: str | None = None
    at: datetime
    money: Money
    tags: list[str]
    colour: Colour


class NoLongerAlwaysThere(BaseModel):
    complaint_id: uuid.UUID
    reason: str | None = None
    at: datetime | None = None
    money: Money
    tags: list[str]
    colour: Colour


class NestedMoney(BaseModel):
    amount: float
    currency: str


class NestedRetype(BaseModel):
    complaint_id: uuid.UUID
    reason: str | None = None
    at: datetime
    money: NestedMoney
    tags: list[int]
    colour: Colour


class Compatible(BaseModel):
    complaint_id: uuid.UUID
    reason: str | None = None
    at: datetime
    money: Money
    tags: list[str]
    colour: ColourMore
    note: str | None = None  # an added optional field


def test_removed_retyped_and_optionalised_fields_break_readers(generator: ModuleType) -> None:
    problems = generator.compatibility_problems
    assert problems(schema(V1), schema(V1)) == []
    assert problems(schema(V1), schema(RemovedField)) == ["reason: removed"]
    assert any(
        p.startswith("complaint_id: retyped") for p in problems(schema(V1), schema(RetypedField))
    )
    assert "at: no longer always present" in problems(schema(V1), schema(NoLongerAlwaysThere))
    nested = problems(schema(V1), schema(NestedRetype))
    assert any(p.startswith("money.amount: retyped") for p in nested), nested
    assert any(p.startswith("tags[]: retyped") for p in nested), nested


def test_additions_do_not_break_readers(generator: ModuleType) -> None:
    assert generator.compatibility_problems(schema(V1), schema(Compatible)) == []


def test_the_catalogue_keeps_every_published_event_version_compatible(
    generator: ModuleType,
) -> None:
    published = generator.published_event_schemas()
    assert "redress.complaint.received.v1" in published, "no published schemas found"
    breaks = generator.breaking_changes(generator.event_schemas())
    assert breaks == {}, (
        "these changes would break readers of published events; publish a new version "
        f"(.v2) instead: {breaks}"
    )


def test_dropping_a_published_event_type_is_a_break(generator: ModuleType) -> None:
    current = generator.event_schemas()
    current.pop("redress.complaint.withdrawn.v1")
    breaks = generator.breaking_changes(current)
    assert list(breaks) == ["redress.complaint.withdrawn.v1"]
