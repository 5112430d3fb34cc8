"""Business-time arithmetic: weekends, holidays, daylight-saving changes, pauses."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redress_routing.calendars import ALWAYS_OPEN, BusinessCalendar, CalendarError
from redress_routing.clocks import shift_for_pause

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
NINE_TO_FIVE = ((time(9), time(17)),)

UK = BusinessCalendar(
    calendar_id="uk",
    zone=LONDON,
    weekly_hours=dict.fromkeys(range(5), NINE_TO_FIVE),
    holidays=frozenset({date(2026, 12, 25), date(2026, 12, 28)}),
)
# Split days and a Saturday morning, to exercise more than one interval per day.
US = BusinessCalendar(
    calendar_id="us",
    zone=NEW_YORK,
    weekly_hours={
        **dict.fromkeys(range(5), ((time(8), time(12)), (time(13), time(18)))),
        5: ((time(10), time(14)),),
    },
    holidays=frozenset({date(2026, 11, 26)}),
)


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def test_hours_run_within_the_day() -> None:
    assert UK.add(london(2026, 11, 23, 10), timedelta(hours=3)) == london(2026, 11, 23, 13)


def test_hours_left_at_close_carry_to_the_next_morning() -> None:
    assert UK.add(london(2026, 11, 23, 16), timedelta(hours=2)) == london(2026, 11, 24, 10)


def test_a_friday_afternoon_carries_over_the_weekend() -> None:
    assert UK.add(london(2026, 11, 27, 16), timedelta(hours=4)) == london(2026, 11, 30, 12)


def test_received_at_night_starts_at_the_next_opening() -> None:
    assert UK.add(london(2026, 11, 24, 22), timedelta(hours=1)) == london(2026, 11, 25, 10)


def test_holidays_are_skipped() -> None:
    # Thu 24 Dec 16:00 + 2h: Fri 25 (holiday), weekend, Mon 28 (holiday) → Tue 29 10:00.
    assert UK.add(london(2026, 12, 24, 16), timedelta(hours=2)) == london(2026, 12, 29, 10)


def test_a_deadline_can_fall_exactly_at_close_of_business() -> None:
    assert UK.add(london(2026, 11, 23, 9), timedelta(hours=8)) == london(2026, 11, 23, 17)


def test_spring_forward_keeps_wall_clock_opening_hours() -> None:
    # Clocks go forward on Sunday 29 March 2026: Friday 09:00 is GMT, Monday 09:00 is BST.
    due = UK.add(london(2026, 3, 27, 16), timedelta(hours=2))
    assert due == london(2026, 3, 30, 10)
    assert due.astimezone(UTC) == datetime(2026, 3, 30, 9, tzinfo=UTC)


def test_fall_back_keeps_wall_clock_opening_hours() -> None:
    due = UK.add(london(2026, 10, 23, 16), timedelta(hours=2))
    assert due.astimezone(UTC) == datetime(2026, 10, 26, 10, tzinfo=UTC)


def test_a_24x7_day_across_the_dst_change_is_23_hours_of_wall_clock() -> None:
    start = london(2026, 3, 28, 12)
    assert ALWAYS_OPEN.add(start, timedelta(hours=24)).astimezone(LONDON) == london(2026, 3, 29, 13)


def test_split_days_and_us_thanksgiving() -> None:
    # Wed 25 Nov 17:00 + 3h: 1h Wed, Thu holiday, Fri 08:00-10:00 → Fri 10:00.
    start = datetime(2026, 11, 25, 17, tzinfo=NEW_YORK)
    assert US.add(start, timedelta(hours=3)) == datetime(2026, 11, 27, 10, tzinfo=NEW_YORK)
    # Lunch hour is closed.
    start = datetime(2026, 11, 24, 11, tzinfo=NEW_YORK)
    assert US.add(start, timedelta(hours=2)) == datetime(2026, 11, 24, 14, tzinfo=NEW_YORK)


def test_business_days_end_at_close_of_the_nth_business_day_after_receipt() -> None:
    # FCA DISP 1.5: received Friday → close of the 3rd business day after: Wednesday.
    assert UK.add_days(london(2026, 11, 27, 11), 3) == london(2026, 12, 2, 17)
    # Received on a Saturday counts from the Monday.
    assert UK.add_days(london(2026, 11, 28, 11), 1) == london(2026, 11, 30, 17)
    # Christmas: received Wed 23 Dec → 24, 29, 30 Dec.
    assert UK.add_days(london(2026, 12, 23, 11), 3) == london(2026, 12, 30, 17)


def test_between_counts_only_open_time() -> None:
    assert UK.between(london(2026, 11, 27, 16), london(2026, 11, 30, 12)) == timedelta(hours=4)
    assert UK.between(london(2026, 11, 30, 12), london(2026, 11, 27, 16)) == timedelta(0)


def test_a_calendar_without_any_open_day_in_reach_fails_loudly() -> None:
    closed = BusinessCalendar(
        calendar_id="closed",
        zone=LONDON,
        weekly_hours={0: NINE_TO_FIVE},
        holidays=frozenset(date(2026, 1, 5) + timedelta(weeks=w) for w in range(10)),
        horizon_days=60,
    )
    with pytest.raises(CalendarError):
        closed.add(london(2026, 1, 1), timedelta(hours=1))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        UK.add(datetime(2026, 11, 23, 10), timedelta(hours=1))


moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(hours=120))
calendars = st.sampled_from([UK, US])


def inside_or_at_close(calendar: BusinessCalendar, moment: datetime) -> bool:
    """Open at `moment`, or `moment` is a close of business (open just before it)."""
    return calendar.is_open(moment) or calendar.is_open(moment - timedelta(microseconds=1))


@settings(max_examples=150, deadline=None)
@given(calendar=calendars, start=moments, duration=durations)
def test_a_due_time_is_never_inside_closed_hours(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    due = calendar.add(start, duration)
    assert inside_or_at_close(calendar, due)
    assert calendar.between(start, due) == duration
    assert due >= start


@settings(max_examples=100, deadline=None)
@given(calendar=calendars, start=moments, days=st.integers(min_value=1, max_value=40))
def test_a_business_day_deadline_is_a_close_of_business(
    calendar: BusinessCalendar, start: datetime, days: int
) -> None:
    due = calendar.add_days(start, days)
    assert inside_or_at_close(calendar, due)
    assert not calendar.is_open(due)


@settings(max_examples=150, deadline=None)
@given(
    calendar=st.sampled_from([UK, US, ALWAYS_OPEN]),
    start=moments,
    duration=durations,
    pause_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)),
    pause_for=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)),
)
def test_pausing_then_resuming_never_shortens_a_deadline(
    calendar: BusinessCalendar,
    start: datetime,
    duration: timedelta,
    pause_after: timedelta,
    pause_for: timedelta,
) -> None:
    due = calendar.add(start, duration)
    warn = calendar.add(start, duration * 0.8)
    paused = start + pause_after
    if paused >= due:
        return  # a clock is not paused after its deadline
    new_due, new_warn = shift_for_pause(
        calendar, due=due, warn=warn, paused=paused, resumed=paused + pause_for
    )
    assert new_due >= due
    assert new_warn >= warn
    assert new_warn <= new_due
    # The business time left at the pause is granted again in full after it.
    assert calendar.between(paused + pause_for, new_due) >= calendar.between(paused, due)
    if calendar is not ALWAYS_OPEN:
        assert inside_or_at_close(calendar, new_due)
