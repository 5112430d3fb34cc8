"""Maps a CloudEvents `type` to its data class; filled as event modules are imported."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redress_events.envelope import EventData

_BY_TYPE: dict[str, type[EventData]] = {}


def register(cls: type[EventData]) -> None:
    existing = _BY_TYPE.get(cls.event_type)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise RuntimeError(f"event type {cls.event_type} registered twice")
    _BY_TYPE[cls.event_type] = cls


def event_class_for(event_type: str) -> type[EventData] | None:
    _load_catalogue()
    return _BY_TYPE.get(event_type)


def registered_event_types() -> dict[str, type[EventData]]:
    _load_catalogue()
    return dict(sorted(_BY_TYPE.items()))


def _load_catalogue() -> None:
    import redress_events.catalogue  # noqa: F401  (importing registers every event)
