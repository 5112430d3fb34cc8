"""Schema evolution: old event data is upgraded on read, never rewritten in the log.

Every record says which version of its type's data it holds (`ce_dataschemaversion`; the data
class declares the current one as `schema_version`). A change that keeps the meaning of a type
(a field renamed, split, made structured) bumps `schema_version` and registers an upcaster
(type, from_version) → function from the old data dict to the next version's dict. A change of
meaning is a new type name (`….v2`). `decode_record` applies the upcasters one version at a
time before validating, so every consumer and every replay sees current data only.

Every past version keeps a fixture under tests/fixtures/events/, replayed by the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]

_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class UpcastError(Exception):
    """No way from the stored version to the current one."""


def upcaster(event_type: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register `function` as the step from `from_version` to `from_version + 1` of a type."""

    def register(function: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in _UPCASTERS and _UPCASTERS[key] is not function:
            raise RuntimeError(f"two upcasters for {event_type} version {from_version}")
        _UPCASTERS[key] = function
        return function

    return register


def registered_upcasters() -> dict[tuple[str, int], Upcaster]:
    return dict(_UPCASTERS)


def upcast(*, event_type: str, from_version: int, to_version: int, data: Data) -> Data:
    """`data` (a `from_version` dict) as a `to_version` dict; the input is not modified."""
    if from_version > to_version:
        raise UpcastError(
            f"{event_type} data version {from_version} is newer than this build's {to_version}"
        )
    current = dict(data)
    for version in range(from_version, to_version):
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise UpcastError(f"no upcaster for {event_type} from version {version}")
        current = step(dict(current))
    return current


# ---------------------------------------------------------------------------------------------
# Upcasters. Keep each one small, total and pure; never delete one while fixtures of its
# version exist.


@upcaster("redress.routing.prioritized.v1", from_version=0)
def _prioritized_v0_to_v1(data: Data) -> Data:
    """Version 0 (the routing pilot) named the matched rules `rules`, the rule set `ruleset`
    and the explanation `explanation`."""
    data["matched_rules"] = list(data.pop("rules", []))
    data["rules_version"] = data.pop("ruleset", "unknown")
    data["reason"] = data.pop("explanation", "")
    return data
