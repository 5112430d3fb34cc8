"""Business-time arithmetic: when is a deadline that is N working hours (or days) away?

Opening hours are wall-clock times in the calendar's time zone, so a 09:00-17:00 day stays
09:00-17:00 across daylight-saving changes; all arithmetic happens on UTC instants. A deadline
falls inside an opening interval or exactly at its close ("by close of business"), never in
closed hours. Pure functions of their arguments: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

ALWAYS_OPEN_ID = "calendar"  # the SlaDeadline.calendar value for round-the-clock targets
_ZERO = timedelta(0)
_MEMO_DAYS = 4096  # days of opening intervals a calendar remembers (about eleven years)


class CalendarError(Exception):
    """The calendar has no opening hours within its search horizon (e.g. all days holidays)."""


def _require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("business-time arithmetic needs time-zone-aware datetimes")
    return moment.astimezone(UTC)


class Calendar(Protocol):
    @property
    def calendar_id(self) -> str: ...

    def add(self, start: datetime, duration: timedelta) -> datetime: ...
    def add_days(self, start: datetime, days: int) -> datetime: ...
    def between(self, start: datetime, end: datetime) -> timedelta: ...
    def is_open(self, moment: datetime) -> bool: ...


@dataclass(frozen=True)
class AlwaysOpen:
    """24x7: every hour counts ("calendar hours", CFPB's calendar days, DISP's 8 weeks)."""

    calendar_id: str = ALWAYS_OPEN_ID

    def add(self, start: datetime, duration: timedelta) -> datetime:
        return _require_aware(start) + max(duration, _ZERO)

    def add_days(self, start: datetime, days: int) -> datetime:
        return _require_aware(start) + timedelta(days=days)

    def between(self, start: datetime, end: datetime) -> timedelta:
        return max(_require_aware(end) - _require_aware(start), _ZERO)

    def is_open(self, moment: datetime) -> bool:
        return True


ALWAYS_OPEN = AlwaysOpen()

Hours = tuple[tuple[time, time | None], ...]  # None as an end means midnight after


@dataclass(frozen=True)
class BusinessCalendar:
    calendar_id: str
    zone: ZoneInfo
    weekly_hours: Mapping[int, Hours]  # weekday (0 = Monday) → opening intervals
    holidays: frozenset[date] = frozenset()
    horizon_days: int = 3 * 366
    # Memo of `_day_intervals` (a pure function of the day): every deadline walks the same
    # weeks, and rebuilding them per complaint was most of the routing worker's clock work.
    _memo: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def _day_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        memo = self._memo
        found = memo.get(day)
        if found is None:
            if len(memo) >= _MEMO_DAYS:
                memo.clear()
            found = memo[day] = tuple(self._compute_day_intervals(day))
        return found

    def _compute_day_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        if day in self.holidays:
            return []
        intervals = []
        for opens, closes in self.weekly_hours.get(day.weekday(), ()):
            start = datetime.combine(day, opens, tzinfo=self.zone).astimezone(UTC)
            if closes is None:
                end_local = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
            else:
                end_local = datetime.combine(day, closes, tzinfo=self.zone)
            end = end_local.astimezone(UTC)
            if end > start:  # a range swallowed by a DST gap is empty
                intervals.append((start, end))
        return intervals

    def _days_from(self, moment: datetime) -> Iterator[date]:
        first = moment.astimezone(self.zone).date()
        for offset in range(self.horizon_days):
            yield first + timedelta(days=offset)
        raise CalendarError(
            f"calendar {self.calendar_id}: no opening hours within {self.horizon_days} days"
        )

    def intervals_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Opening intervals (UTC) that end after `moment`, the first clipped to start there."""
        moment = _require_aware(moment)
        for day in self._days_from(moment):
            for start, end in self._day_intervals(day):
                if end > moment:
                    yield max(start, moment), end

    def add(self, start: datetime, duration: timedelta) -> datetime:
        remaining = max(duration, _ZERO)
        if remaining == _ZERO:
            return _require_aware(start)
        for opens, closes in self.intervals_from(start):
            span = closes - opens
            if remaining <= span:
                return opens + remaining
            remaining -= span
        raise CalendarError(f"calendar {self.calendar_id}: ran out of opening hours")

    def add_days(self, start: datetime, days: int) -> datetime:
        """Close of business on the `days`-th business day after the day `start` falls on."""
        start_day = _require_aware(start).astimezone(self.zone).date()
        counted = 0
        for day in self._days_from(start):
            if day == start_day:
                continue
            intervals = self._day_intervals(day)
            if intervals:
                counted += 1
                if counted == days:
                    return intervals[-1][1]
        raise CalendarError(f"calendar {self.calendar_id}: ran out of business days")

    def between(self, start: datetime, end: datetime) -> timedelta:
        end = _require_aware(end)
        total = _ZERO
        if end <= _require_aware(start):
            return total
        for opens, closes in self.intervals_from(start):
            if opens >= end:
                break
            total += min(closes, end) - opens
        return total

    def is_open(self, moment: datetime) -> bool:
        moment = _require_aware(moment)
        day = moment.astimezone(self.zone).date()
        for candidate in (day - timedelta(days=1), day):
            for opens, closes in self._day_intervals(candidate):
                if opens <= moment < closes:
                    return True
        return False
