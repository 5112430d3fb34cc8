"""The SLA timer's index: what it holds, and that it agrees with the clock machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from redress_events.values import Priority
from redress_routing.clocks import ComplaintClock, next_signal_at, next_signal_at_stored
from redress_routing.due_index import DueIndex

from tests.unit.routing.test_clocks import MACHINE, MONDAY_10, apply_signals, started

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_due_lists_what_is_due_earliest_first_and_at_most_the_limit(tmp_path: Path) -> None:
    index = DueIndex(tmp_path / "due.sqlite")
    index.set("late", at(30))
    index.set("early", at(5))
    index.set("middle", at(10))
    index.set("future", at(90))
    assert index.due(at(60), limit=10) == ["early", "middle", "late"]
    assert index.due(at(60), limit=2) == ["early", "middle"]
    assert index.due(at(4), limit=10) == []
    assert index.next_at() == at(5)
    assert len(index) == 4


def test_the_last_write_for_a_clock_wins_and_none_removes_it(tmp_path: Path) -> None:
    index = DueIndex(tmp_path / "due.sqlite", pending_max=2)  # some writes flushed, some not
    index.set("a", at(5))
    index.set("b", at(6))  # flushes a and b
    index.set("a", at(50))  # pending
    index.set("b", None)  # flushes: b removed, a moved
    index.set("c", at(1))
    index.set("c", None)  # never reached the file
    assert index.due(at(60), limit=10) == ["a"]
    assert index.due(at(49), limit=10) == []
    assert len(index) == 1


def test_clear_forgets_written_and_pending_clocks(tmp_path: Path) -> None:
    index = DueIndex(tmp_path / "due.sqlite")
    index.set("a", at(1))
    index.flush()
    index.set("b", at(2))
    index.clear()
    assert index.due(at(60), limit=10) == []
    assert len(index) == 0


def test_a_new_index_starts_empty_even_over_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "due.sqlite"
    first = DueIndex(path)
    first.set("a", at(1))
    first.flush()
    first.close()
    # Derived state: a restarted worker rebuilds it from the table, never trusts the old file.
    assert DueIndex(path).due(at(60), limit=10) == []


def test_a_failed_flush_keeps_its_writes_for_the_next_one(tmp_path: Path) -> None:
    index = DueIndex(tmp_path / "due.sqlite")
    index.set("a", at(1))
    real = index._db

    class Failing:
        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "BEGIN":
                raise OSError("disk full")
            return real.execute(sql, *args)

    index._db = Failing()  # type: ignore[assignment]
    try:
        index.flush()
    except OSError:
        pass
    else:
        raise AssertionError("the failure must reach the caller")
    index._db = real
    index.set("b", at(2))
    assert index.due(at(60), limit=10) == ["a", "b"]


# Steps a complaint's clock can take: time passes (the timer's signals are recorded), or a
# case event arrives.
STEP = st.one_of(
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=60 * 24 * 10)),
    st.tuples(
        st.sampled_from(["acknowledged", "responded", "paused", "resumed", "resolved"]),
        st.just(0),
    ),
)
PRIORITY = st.sampled_from(["P1", "P2", "P3", "P4"])


def take_step(
    clock: ComplaintClock, now: datetime, n: int, kind: str, minutes: int
) -> tuple[ComplaintClock, datetime]:
    """One step of a complaint's life: time passes (the timer's signals recorded), or a case
    event arrives."""
    if kind == "wait":
        now += timedelta(minutes=minutes)
        return apply_signals(clock, now)[0], now
    return MACHINE.on_fact(clock, kind, at=now, event_id=f"fact-{n}")[0], now  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(priority=PRIORITY, steps=st.lists(STEP, max_size=8))
def test_next_signal_at_is_exactly_when_due_signals_first_has_something(
    priority: str, steps: list[tuple[str, int]]
) -> None:
    clock, _ = started(priority)
    now = MONDAY_10
    states: list[ComplaintClock] = [clock]
    for n, (kind, minutes) in enumerate(steps):
        clock, now = take_step(clock, now, n, kind, minutes)
        states.append(clock)
    for state in states:
        due = next_signal_at(state)
        stored = state.model_dump(mode="json")
        assert next_signal_at_stored(stored) == due
        if due is None:
            assert MACHINE.due_signals(state, MONDAY_10 + timedelta(days=3650)) == []
        else:
            assert MACHINE.due_signals(state, due - timedelta(microseconds=1)) == []
            assert MACHINE.due_signals(state, due) != []


def test_stored_clocks_in_another_shape_are_read_through_the_model() -> None:
    clock, _ = started("P2")
    stored = clock.model_dump(mode="json")
    stored["targets"] = list(stored["targets"].values())  # not the shape model_dump writes
    try:
        next_signal_at_stored(stored)
    except Exception as exc:  # the model refuses it too: a clear validation error, not a guess
        assert "targets" in str(exc)
    else:
        raise AssertionError("a clock of the wrong shape must not be indexed by guesswork")


@settings(max_examples=100, deadline=None)
@given(priority=PRIORITY, steps=st.lists(STEP, max_size=8))
def test_the_machine_never_changes_the_state_it_is_given(
    priority: str, steps: list[tuple[str, int]]
) -> None:
    # Staged batches keep each key's earlier state (and dead-lettering drops a record's new
    # one), so the machine's copies must share nothing mutable with its input.
    clock, _ = started(priority)
    now = MONDAY_10
    for n, (kind, minutes) in enumerate(steps):
        before = clock.model_dump()
        new, now = take_step(clock, now, n, kind, minutes)
        after = new.model_dump()
        MACHINE.on_incident_link(
            new,
            incident_id=f"incident-{n}",
            incident_priority=Priority.P1,
            policy_rule="surge",
            event_id=f"link-{n}",
        )
        assert clock.model_dump() == before
        assert new.model_dump() == after
        clock = new
