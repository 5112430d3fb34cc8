"""The store's batch path: a whole batch applied in memory and written back in one transaction
with its offsets. Same rows as the pure projection event by event, whatever is in the batch;
a batch lost in a crash before its commit, or delivered twice, changes nothing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from redress_events import Envelope, EventData
from redress_reporting import store as store_module
from redress_reporting.projection import ComplaintView, SlaClock, project, replace
from redress_reporting.store import (
    READ_MODEL_TABLES,
    ReadModelStore,
    _Writer,
    create_store_engine,
    load_view,
    metadata,
)
from sqlalchemy import inspect

from tests.unit.reporting.stories import Story, cid, incident_events, incident_id, with_positions


def _store(tmp_path: Path, name: str = "r.db") -> ReadModelStore:
    return ReadModelStore(create_store_engine(f"sqlite:///{tmp_path / name}"))


def _rows(store: ReadModelStore) -> dict[str, list[dict[str, Any]]]:
    return {name: list(store.iter_table(name)) for name in READ_MODEL_TABLES}


def _offsets(batch: list[Envelope[EventData]]) -> dict[tuple[str, int], int]:
    return {(e.position[0], e.position[1]): e.position[2] + 1 for e in batch if e.position}


def _fold(events: list[Envelope[EventData]]) -> ComplaintView | None:
    view: ComplaintView | None = None
    for event in events:
        view = project(view, event)
    return view


def _mixed() -> list[Envelope[EventData]]:
    return with_positions(
        [
            *Story(1).full_life(breach=True).linked(incident_id(1)).events,
            *Story(2, customer_id="C-2", tier="vip").full_life(satisfaction=3).events,
            *Story(3).received().routed().withdrawn().events,
            *incident_events(1),
        ]
    )


def test_a_batch_with_many_events_of_one_complaint_applies_them_all_in_order(
    tmp_path: Path,
) -> None:
    story = Story(1).full_life(breach=True)
    events = with_positions(story.events)
    store = _store(tmp_path)
    assert store.apply(events, group_id="g", next_offsets=_offsets(events)).applied == len(events)
    with store.engine.connect() as conn:
        assert load_view(conn, cid(1)) == _fold(events)
    assert len(_rows(store)["timeline"]) == len(events)


def test_one_batch_equals_event_by_event(tmp_path: Path) -> None:
    events = _mixed()
    whole, single = _store(tmp_path, "a.db"), _store(tmp_path, "b.db")
    whole.apply(events, group_id="g", next_offsets=_offsets(events))
    for event in events:
        single.apply([event], group_id="g", next_offsets=_offsets([event]))
    assert _rows(whole) == _rows(single)
    assert whole.offsets("g") == single.offsets("g")


def test_a_duplicate_inside_one_batch_is_applied_once(tmp_path: Path) -> None:
    events = with_positions(Story(1).received().routed().events)
    store = _store(tmp_path)
    doubled = [*events, *events]
    result = store.apply(doubled, group_id="g", next_offsets=_offsets(events))
    assert result.applied == len(events)
    assert [e.id for e in result.fresh] == [e.id for e in events]
    with store.engine.connect() as conn:
        assert load_view(conn, cid(1)) == _fold(events)


def test_a_batch_lost_before_its_commit_then_redelivered_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _mixed()
    first, rest = events[:10], events[10:]
    store, reference = _store(tmp_path, "a.db"), _store(tmp_path, "b.db")
    for target in (store, reference):
        target.apply(first, group_id="g", next_offsets=_offsets(first))
    before, offsets_before = _rows(store), store.offsets("g")

    def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("killed before the commit")

    # The crash comes after every row of the batch was written, before the commit.
    monkeypatch.setattr(store_module, "_save_offsets", crash)
    with pytest.raises(RuntimeError):
        store.apply(rest, group_id="g", next_offsets=_offsets(rest))
    monkeypatch.undo()
    assert _rows(store) == before and store.offsets("g") == offsets_before

    # Redelivered from the stored offsets (the first batch's records come again too).
    assert store.apply(events, group_id="g", next_offsets=_offsets(events)).applied == len(rest)
    reference.apply(rest, group_id="g", next_offsets=_offsets(rest))
    assert _rows(store) == _rows(reference)
    assert store.offsets("g") == reference.offsets("g")
    # ...and delivered yet again after the commit: nothing applied, nothing changes.
    assert store.apply(events, group_id="g", next_offsets=_offsets(events)).applied == 0
    assert _rows(store) == _rows(reference)


def test_only_changed_rows_are_rewritten_and_unchanged_children_stay(tmp_path: Path) -> None:
    story = Story(1).received().routed()
    events = with_positions(story.events)
    store = _store(tmp_path)
    store.apply(events, group_id="g", next_offsets=_offsets(events))
    clocks = _rows(store)["sla_clocks"]
    assert clocks
    later = with_positions(Story(1).received().routed().withdrawn().events)[len(events) :]
    store.apply(later, group_id="g", next_offsets=_offsets(later))
    assert _rows(store)["sla_clocks"] == clocks
    with store.engine.connect() as conn:
        assert load_view(conn, cid(1)) == _fold([*events, *later])


def test_the_fast_writer_stores_what_sqlalchemy_would(tmp_path: Path) -> None:
    """Every table written through `_Writer` and through `conn.execute(insert, rows)` holds
    the same rows (types' bind processors applied alike, None and JSON included)."""
    events = _mixed()
    source = _store(tmp_path, "a.db")
    source.apply(events, group_id="g", next_offsets=_offsets(events))
    rows = _rows(source)
    fast, plain = _store(tmp_path, "b.db"), _store(tmp_path, "c.db")
    with fast.engine.begin() as a, plain.engine.begin() as b:
        writer = _Writer(a.dialect)
        for name, table in READ_MODEL_TABLES.items():
            writer.insert(a, table, rows[name])
            if rows[name]:
                b.execute(table.insert(), rows[name])
    assert _rows(fast) == _rows(plain) == rows


def test_replace_is_dataclasses_replace() -> None:
    view = ComplaintView(complaint_id="c", sla=(SlaClock(target="resolution"),))
    assert replace(view, priority="P1", responses=3) == dataclasses.replace(
        view, priority="P1", responses=3
    )
    changed = replace(view, priority="P1")
    assert view.priority is None and changed.priority == "P1" and changed.sla is view.sla
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.priority = "P2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        replace(view, no_such_field=1)


def _index_names(store: ReadModelStore) -> set[str]:
    inspector = inspect(store.engine)
    return {
        str(index["name"])
        for table in metadata.sorted_tables
        for index in inspector.get_indexes(table.name)
    }


def test_bulk_load_drops_and_makes_the_indexes_again(tmp_path: Path) -> None:
    wanted = _index_names(_store(tmp_path, "plain.db"))
    assert {"ix_complaints_status", "ix_timeline_complaint_id"} <= wanted
    store = ReadModelStore(create_store_engine(f"sqlite:///{tmp_path / 'r.db'}", bulk_load=True))
    with store.engine.connect() as conn:  # no fsync while a fresh store fills
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 0
    store.drop_indexes()
    assert _index_names(store) == set()
    events = _mixed()
    store.apply(events, group_id="g", next_offsets=_offsets(events))
    store.create_indexes()
    assert _index_names(store) == wanted
    # Checkpointed into the database file: a plain engine sees it all.
    assert (tmp_path / "r.db-wal").stat().st_size == 0
    rows = _rows(store)
    store.dispose()
    assert _rows(_store(tmp_path)) == rows
    store = _store(tmp_path)
    # A load killed before it made them: the next open of the store makes them.
    store.drop_indexes()
    store.dispose()
    reopened = _store(tmp_path)
    assert _index_names(reopened) == wanted


def test_a_store_remembering_its_views_stores_what_a_plain_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild's store keeps the views it committed instead of reading them back: same rows,
    batch after batch, and a batch that failed before its commit leaves nothing remembered."""
    events = _mixed()
    plain, remembering = _store(tmp_path, "a.db"), _store(tmp_path, "b.db")
    remembering.remember_views(limit=2)  # fewer than the complaints: some are read back
    batches = [events[:7], events[7:20], events[20:21], events[21:]]
    for batch in batches[:2]:
        for target in (plain, remembering):
            target.apply(batch, group_id="g", next_offsets=_offsets(batch))
    assert _rows(remembering) == _rows(plain)

    def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("killed before the commit")

    monkeypatch.setattr(store_module, "_save_offsets", crash)
    with pytest.raises(RuntimeError):
        remembering.apply(events[20:], group_id="g", next_offsets=_offsets(events[20:]))
    monkeypatch.undo()
    for batch in batches[2:]:
        for target in (plain, remembering):
            target.apply(batch, group_id="g", next_offsets=_offsets(batch))
    assert _rows(remembering) == _rows(plain)
    assert remembering.offsets("g") == plain.offsets("g")
    with remembering.engine.connect() as conn:
        for n in (1, 2, 3):
            assert load_view(conn, cid(n)) == _fold([e for e in events if e.subject == cid(n)])


def test_project_complaint_leaves_the_view_it_was_given_alone() -> None:
    events = Story(1).full_life(breach=True).events
    views: list[ComplaintView | None] = [None]
    for event in events:
        views.append(project(views[-1], event))
    copies = [dataclasses.replace(v) for v in views if v is not None]
    for view, event in zip(views, events, strict=False):
        project(view, event)  # once more from the same view
    assert [v for v in views if v is not None] == copies


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"a": 1, "b": [1.5, None, True, False], "c": {"d": 'é ✓ \u2028 "q" \\ \n'}},
        {"nan": float("nan"), "inf": float("inf"), "big": 10**30, "neg": -0.0},
        ["x", 1, 2.25],
        "text",
        None,
    ],
)
def test_the_sqlite_json_serializer_writes_what_json_dumps_does(value: Any) -> None:
    assert store_module._json_dumps(value) == json.dumps(value)


def test_the_sqlite_json_serializer_refuses_what_json_dumps_refuses() -> None:
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError):
        store_module._json_dumps(looped)
    with pytest.raises(TypeError):
        store_module._json_dumps({"when": object()})
    assert store_module._json_dumps({"fine": "again"}) == json.dumps({"fine": "again"})
