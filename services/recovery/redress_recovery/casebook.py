"""Every complaint's case, in memory, folded from the log (no private database to disagree
with it). Applying an event twice is a no-op: event ids already applied are dropped."""

from __future__ import annotations

import uuid
from typing import Any

from redress_events import Envelope, EventData
from redress_observability.metrics import DUPLICATES_DROPPED

from redress_recovery.domain import Case, evolve


class Casebook:
    def __init__(self) -> None:
        self._cases: dict[uuid.UUID, Case] = {}
        self._applied: set[uuid.UUID] = set()

    def get(self, complaint_id: uuid.UUID) -> Case:
        return self._cases.get(complaint_id) or Case(complaint_id=complaint_id)

    def has_applied(self, event_id: uuid.UUID) -> bool:
        return event_id in self._applied

    def apply(self, envelope: Envelope[Any]) -> bool:
        """Fold one event in; False when it was already applied (or concerns no complaint)."""
        if envelope.id in self._applied:
            DUPLICATES_DROPPED.labels("recovery", envelope.data.topic.value).inc()
            return False
        complaint_id = complaint_id_of(envelope.data)
        if complaint_id is None:
            return False
        self._applied.add(envelope.id)
        self._cases[complaint_id] = evolve(self.get(complaint_id), envelope.data)
        return True

    def __len__(self) -> int:
        return len(self._cases)


def complaint_id_of(data: EventData) -> uuid.UUID | None:
    value = getattr(data, "complaint_id", None)
    return value if isinstance(value, uuid.UUID) else None
