"""Surge detection per (product, category): sliding windows against a recent baseline.

Counts are kept in fixed buckets of event time (the complaint's `received_at`), so replaying the
same complaints gives the same incidents with the same ids. A window is the last
`window_minutes` of buckets; the baseline is the mean count of the `baseline_windows` windows
before it. A window that reaches both `min_count` and `factor` times the baseline opens an
incident — once: while it is open, further complaints are linked to it, never a second one. It
resolves when the window falls below `subsides_below_share` of the level that opened it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from redress_events import EventData, derived_event_id
from redress_events.catalogue.routing import (
    ComplaintLinkedToIncident,
    IncidentDetected,
    IncidentResolved,
)

from redress_routing.config import SurgeSection

RECENT_COMPLAINTS_KEPT = 256


class OpenIncident(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incident_id: uuid.UUID
    threshold: float
    linked: int = 0


class SurgeState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: str
    category: str
    buckets: dict[int, int] = {}
    incident: OpenIncident | None = None
    recent_complaints: list[str] = []


def _copy(state: SurgeState) -> SurgeState:
    """A copy the caller may change without touching `state`: what `model_copy(deep=True)`
    gives, without deep-copying the (immutable) strings and ids inside — it ran per complaint."""
    incident = state.incident
    return state.model_copy(
        update={
            "buckets": dict(state.buckets),
            "incident": incident.model_copy() if incident is not None else None,
            "recent_complaints": list(state.recent_complaints),
        }
    )


@dataclass(frozen=True)
class SurgeEmit:
    data: EventData
    event_id: uuid.UUID
    subject: str


def surge_key(product: str, category: str) -> str:
    return f"{product}/{category}"


class SurgeDetector:
    def __init__(self, policy: SurgeSection) -> None:
        self.policy = policy
        self.bucket_seconds = policy.bucket_minutes * 60
        self.buckets_per_window = policy.window_minutes // policy.bucket_minutes

    def _bucket(self, moment: datetime) -> int:
        return int(moment.timestamp()) // self.bucket_seconds

    def _window_count(self, state: SurgeState, bucket: int) -> int:
        low = bucket - self.buckets_per_window
        return sum(count for b, count in state.buckets.items() if low < b <= bucket)

    def _baseline(self, state: SurgeState, bucket: int) -> float:
        high = bucket - self.buckets_per_window
        low = high - self.buckets_per_window * self.policy.baseline_windows
        total = sum(count for b, count in state.buckets.items() if low < b <= high)
        return total / self.policy.baseline_windows

    def _threshold(self, baseline: float) -> float:
        return max(
            float(self.policy.min_count),
            self.policy.factor * max(baseline, self.policy.baseline_floor),
        )

    def _prune(self, state: SurgeState, bucket: int) -> None:
        keep_from = bucket - self.buckets_per_window * (self.policy.baseline_windows + 1)
        state.buckets = {b: c for b, c in state.buckets.items() if b > keep_from}

    def _resolved(self, state: SurgeState, at: datetime, reason: str) -> SurgeEmit:
        incident = state.incident
        assert incident is not None
        state.incident = None
        resolved = IncidentResolved(
            incident_id=incident.incident_id,
            product=state.product,
            category=state.category,
            resolved_at=at,
            complaints_linked=incident.linked,
            reason=reason,
        )
        return SurgeEmit(
            resolved,
            derived_event_id(incident.incident_id, "resolved"),
            str(incident.incident_id),
        )

    def _subsided(self, state: SurgeState, bucket: int) -> bool:
        incident = state.incident
        return incident is not None and self._window_count(state, bucket) < (
            incident.threshold * self.policy.subsides_below_share
        )

    def on_complaint(
        self, state: SurgeState, *, complaint_id: uuid.UUID, received_at: datetime
    ) -> tuple[SurgeState, list[SurgeEmit]]:
        if str(complaint_id) in state.recent_complaints:
            return state, []  # redelivered: already counted
        state = _copy(state)
        state.recent_complaints = [*state.recent_complaints, str(complaint_id)][
            -RECENT_COMPLAINTS_KEPT:
        ]
        bucket = self._bucket(received_at)
        emits: list[SurgeEmit] = []
        if self._subsided(state, bucket):
            emits.append(self._resolved(state, received_at, "the surge subsided"))
        state.buckets[bucket] = state.buckets.get(bucket, 0) + 1
        self._prune(state, bucket)

        if state.incident is None:
            count = self._window_count(state, bucket)
            baseline = self._baseline(state, bucket)
            threshold = self._threshold(baseline)
            if count < threshold:
                return state, emits
            # One incident per surge: its id comes from where and when the surge began.
            incident_id = derived_event_id(
                surge_key(state.product, state.category), "incident", str(bucket)
            )
            state.incident = OpenIncident(incident_id=incident_id, threshold=threshold)
            detected = IncidentDetected(
                incident_id=incident_id,
                product=state.product,
                category=state.category,
                window_seconds=self.policy.window_minutes * 60,
                count=count,
                baseline=round(baseline, 4),
                factor=self.policy.factor,
                priority=self.policy.incident_priority,
                detected_at=received_at,
                reason=(
                    f"{count} complaints in {self.policy.window_minutes} min against a baseline "
                    f"of {baseline:.2f} per window (threshold {threshold:g}: factor "
                    f"{self.policy.factor:g}, minimum {self.policy.min_count})"
                ),
            )
            emits.append(
                SurgeEmit(detected, derived_event_id(incident_id, "detected"), str(incident_id))
            )

        incident = state.incident
        incident.linked += 1
        linked = ComplaintLinkedToIncident(
            complaint_id=complaint_id,
            incident_id=incident.incident_id,
            product=state.product,
            category=state.category,
            priority=self.policy.incident_priority,
            policy_rule=self.policy.policy_rule,
            reason=f"{surge_key(state.product, state.category)} is surging",
        )
        emits.append(
            SurgeEmit(
                linked,
                derived_event_id(complaint_id, "linked", str(incident.incident_id)),
                str(complaint_id),
            )
        )
        return state, emits

    def resolution_due(self, state: SurgeState, now: datetime) -> bool:
        return self._subsided(state, self._bucket(now))

    def on_tick(self, state: SurgeState, *, now: datetime) -> tuple[SurgeState, list[SurgeEmit]]:
        """The worker's timer asks: has an open incident gone quiet by `now`?"""
        if not self._subsided(state, self._bucket(now)):
            return state, []
        state = state.model_copy(deep=True)
        return state, [self._resolved(state, now, "the surge subsided (no new complaints)")]
