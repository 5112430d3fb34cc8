"""The read-model store (SQLAlchemy Core: SQLite by default, PostgreSQL by DSN).

Each batch of events is applied in one transaction together with the consumer offsets that
follow it, so a crash anywhere leaves the projection and its offsets agreeing: a restart neither
skips nor double-applies. Event ids are primary keys, so a duplicate is dropped, not re-applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

from redress_events import Envelope, EventData
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Connection, Engine

from redress_reporting.projection import ComplaintView, project, timeline_entry


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

complaints = Table(
    "complaints",
    metadata,
    Column("complaint_id", String(64), primary_key=True),
    Column("status", String(32), nullable=False, index=True),
    Column("priority", String(4), index=True),
    Column("queue", String(128), index=True),
    Column("customer_id", String(128), index=True),
    Column("tier", String(32)),
    Column("channel", String(16)),
    Column("public", Boolean, nullable=False, default=False),
    Column("category", String(64)),
    Column("product", String(64)),
    Column("jurisdiction", String(2)),
    Column("remedy_sought", String(32)),
    Column("received_at", UtcDateTime(), index=True),
    Column("updated_at", UtcDateTime()),
    Column("extra", JSON, nullable=False, default=dict),
)

timeline = Table(
    "timeline",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("complaint_id", String(64), nullable=False, index=True),
    Column("type", String(128), nullable=False),
    Column("time", UtcDateTime(), nullable=False),
    Column("source", String(128), nullable=False),
    Column("causation_id", String(64)),
    Column("summary", JSON, nullable=False),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", Integer, nullable=False),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("group_id", String(255), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", Integer, nullable=False),
)

_VIEW_FIELDS = [f.name for f in fields(ComplaintView)]


def create_store_engine(url: str) -> Engine:
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    metadata.create_all(engine)
    return engine


class ReadModelStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(consumer_offsets).where(consumer_offsets.c.group_id == group_id)
            )
            return {(r.topic, r.partition): r.next_offset for r in rows}

    def apply_batch(
        self,
        events: Sequence[Envelope[EventData]],
        *,
        group_id: str,
        next_offsets: dict[tuple[str, int], int],
    ) -> int:
        """Apply events and store offsets in one transaction; returns how many were new."""
        applied = 0
        with self.engine.begin() as conn:
            seen = _already_applied(conn, [str(e.id) for e in events])
            views: dict[str, ComplaintView | None] = {}
            for envelope in events:
                event_id = str(envelope.id)
                if event_id in seen:
                    continue
                seen.add(event_id)
                entry = timeline_entry(envelope)
                topic, partition, offset = envelope.position or ("", -1, -1)
                conn.execute(
                    timeline.insert().values(
                        **asdict(entry), topic=topic, partition=partition, offset=offset
                    )
                )
                subject = envelope.subject
                if subject not in views:
                    views[subject] = _load_view(conn, subject)
                views[subject] = project(views[subject], envelope)
                applied += 1
            for view in views.values():
                if view is not None:
                    _save_view(conn, view)
            for (topic, partition), next_offset in next_offsets.items():
                _save_offset(conn, group_id, topic, partition, next_offset)
        return applied

    def complaint(self, complaint_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(complaints).where(complaints.c.complaint_id == complaint_id)
            ).first()
            if row is None:
                return None
            events = conn.execute(
                select(timeline)
                .where(timeline.c.complaint_id == complaint_id)
                .order_by(timeline.c.time, timeline.c.event_id)
            ).all()
        result = dict(row._mapping)
        result["timeline"] = [
            {
                "event_id": e.event_id,
                "type": e.type,
                "time": e.time,
                "source": e.source,
                "caused_by": e.causation_id,
                "data": e.summary,
            }
            for e in events
        ]
        return result

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return {
                "complaints": conn.execute(
                    select(func.count()).select_from(complaints)
                ).scalar_one(),
                "events": conn.execute(select(func.count()).select_from(timeline)).scalar_one(),
            }


def _already_applied(conn: Connection, event_ids: Iterable[str]) -> set[str]:
    ids = list(event_ids)
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(
            conn.execute(
                select(timeline.c.event_id).where(timeline.c.event_id.in_(chunk))
            ).scalars()
        )
    return found


def _load_view(conn: Connection, complaint_id: str) -> ComplaintView | None:
    row = conn.execute(select(complaints).where(complaints.c.complaint_id == complaint_id)).first()
    if row is None:
        return None
    values = dict(row._mapping)
    values["extra"] = values.get("extra") or {}
    return ComplaintView(**{k: values[k] for k in _VIEW_FIELDS})


def _save_view(conn: Connection, view: ComplaintView) -> None:
    values = {k: getattr(view, k) for k in _VIEW_FIELDS}
    values["extra"] = json.loads(json.dumps(values["extra"], default=str))
    updated = conn.execute(
        complaints.update().where(complaints.c.complaint_id == view.complaint_id).values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(complaints.insert().values(**values))


def _save_offset(conn: Connection, group_id: str, topic: str, partition: int, offset: int) -> None:
    where = (
        (consumer_offsets.c.group_id == group_id)
        & (consumer_offsets.c.topic == topic)
        & (consumer_offsets.c.partition == partition)
    )
    updated = conn.execute(consumer_offsets.update().where(where).values(next_offset=offset))
    if updated.rowcount == 0:
        conn.execute(
            consumer_offsets.insert().values(
                group_id=group_id, topic=topic, partition=partition, next_offset=offset
            )
        )
