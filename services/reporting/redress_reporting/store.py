"""The read-model store (SQLAlchemy Core: SQLite by default, PostgreSQL by DSN, same code).

Each batch of events is applied in one transaction together with the consumer offsets that
follow it, so a crash anywhere leaves the projection and its offsets agreeing: a restart neither
skips nor double-applies. Event ids are primary keys, so a duplicate is dropped, not re-applied.

Tables are made from the projection's dataclasses (one column per field), so the pure model
and its storage cannot drift apart.
"""

from __future__ import annotations

import base64
import json
import operator
import types
import typing
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime

# The C encoder `json.dumps` uses (None without the accelerator), not in typeshed.
from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring_ascii
from typing import Any

from redress_events import Envelope, EventData
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect, Engine, make_url

from redress_reporting.projection import (
    ComplaintView,
    GuaranteeView,
    IncidentView,
    RemedyView,
    SlaClock,
    TimelineEntry,
    is_incident_event,
    project_complaint,
    project_incident,
    timeline_fields,
)


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

# Which columns lists filter and sort on.
_INDEXED = {
    "status",
    "priority",
    "queue",
    "customer_id",
    "tier",
    "channel",
    "product",
    "received_at",
    "first_seen_at",
    "escalation_tier",
    "incident_id",
    "breached",
}


def _column_type(hint: Any, name: str) -> Any:
    base = hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        base = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(base) in (tuple, dict) or base in (dict, tuple):
        return JSON
    if base is datetime:
        return UtcDateTime()
    if base is bool:
        return Boolean
    if base is int:
        return BigInteger if name.endswith("_cents") else Integer
    if base is float:
        return Float
    return String


def _columns(cls: type, *, skip: Iterable[str] = (), keys: Sequence[str] = ()) -> list[Column[Any]]:
    hints = typing.get_type_hints(cls)
    columns: list[Column[Any]] = []
    for f in fields(cls):
        if f.name in skip:
            continue
        hint = hints[f.name]
        nullable = type(None) in typing.get_args(hint)
        columns.append(
            Column(
                f.name,
                _column_type(hint, f.name),
                primary_key=f.name in keys,
                nullable=nullable and f.name not in keys,
                index=f.name in _INDEXED and f.name not in keys,
            )
        )
    return columns


_CHILDREN = ("sla", "remedies", "guarantees")

complaints = Table(
    "complaints",
    metadata,
    *_columns(ComplaintView, skip=_CHILDREN, keys=("complaint_id",)),
)
sla_clocks = Table(
    "sla_clocks",
    metadata,
    Column("complaint_id", String, primary_key=True),
    *_columns(SlaClock, keys=("target",)),
    Column("state", String, nullable=False),
)
remedies = Table(
    "remedies",
    metadata,
    Column("complaint_id", String, primary_key=True),
    *_columns(RemedyView, keys=("remedy_id",)),
    Column("status", String, nullable=False),
)
guarantees = Table(
    "guarantees",
    metadata,
    Column("complaint_id", String, primary_key=True),
    *_columns(GuaranteeView, keys=("guarantee_id",)),
)
incidents = Table(
    "incidents",
    metadata,
    *_columns(IncidentView, keys=("incident_id",)),
    Column("status", String, nullable=False, index=True),
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
    Column("actor", String(128), nullable=False),
    Column("rule", String),
    Column("reason", String),
    Column("summary", JSON, nullable=False),
    Column("personal", JSON, nullable=False),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
)
# `ReadModelStore.apply` writes a timeline row as `timeline_fields(...)`'s values (in the
# order of `TimelineEntry`'s fields) followed by the event's position.
assert timeline.columns.keys() == [
    *(f.name for f in fields(TimelineEntry)),
    "topic",
    "partition",
    "offset",
], "the timeline's columns are not TimelineEntry's fields and the position, in that order"

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("group_id", String(255), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

# The read models proper (what `verify` compares), with their primary keys.
READ_MODEL_TABLES: dict[str, Table] = {
    "complaints": complaints,
    "sla_clocks": sla_clocks,
    "remedies": remedies,
    "guarantees": guarantees,
    "incidents": incidents,
    "timeline": timeline,
}

_VIEW_FIELDS = [f.name for f in fields(ComplaintView) if f.name not in _CHILDREN]


def create_store_engine(url: str, *, bulk_load: bool = False) -> Engine:
    """The engine of a store, tables made. SQLite: WAL, `synchronous=NORMAL` (a commit is atomic,
    and rows and offsets share it: a power loss may lose the last commits, both together).
    `bulk_load` (a fresh store that a rebuild fills and nobody reads yet): `synchronous=OFF`,
    no fsync at all while it fills; `ReadModelStore.create_indexes` makes it durable at the end,
    before anything may switch to it. A crash meanwhile leaves an unfinished store that was
    never switched to: the rebuild is run again into a fresh one."""
    options: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "sqlite":
        options["json_serializer"] = _json_dumps
    engine = create_engine(url, future=True, pool_pre_ping=True, **options)
    if engine.dialect.name == "sqlite":
        synchronous = "OFF" if bulk_load else "NORMAL"

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    metadata.create_all(engine)
    check_schema(engine)
    _create_missing_indexes(engine)
    return engine


_JSON_DEFAULT = json.JSONEncoder().default


def _json_dumps(value: Any) -> str:
    """`json.dumps(value)`, SQLAlchemy's JSON serializer on SQLite (PostgreSQL's driver
    serializes for itself): the same text, without `json.dumps` making a `JSONEncoder` and
    its `iterencode` closures anew for each of the two small documents every event writes.
    The encoder takes `json.dumps`' defaults: a new dict of markers (circular references
    refused), ASCII only, no indent, ": " and ", ", keys unsorted, none skipped, NaN allowed."""
    if _c_make_encoder is None:  # an interpreter without the C accelerator
        return json.dumps(value)
    encode = _c_make_encoder(
        {}, _JSON_DEFAULT, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return "".join(encode(value, 0))


def _secondary_indexes() -> list[Index]:
    return [index for table in metadata.sorted_tables for index in table.indexes]


def _create_missing_indexes(engine: Engine) -> None:
    """Indexes a bulk load left out (one interrupted before it made them again)."""
    inspector = inspect(engine)
    present = {
        index["name"]
        for table in metadata.sorted_tables
        for index in inspector.get_indexes(table.name)
    }
    missing = [index for index in _secondary_indexes() if index.name not in present]
    if missing:
        with engine.begin() as conn:
            for index in missing:
                index.create(conn, checkfirst=True)


class OutdatedSchema(RuntimeError):
    """The store was made by an older build; `redress rebuild` makes a current one."""


def check_schema(engine: Engine) -> None:
    """Refuse a store whose tables lack columns this build writes (made by an older build):
    read models are disposable, so the way forward is `redress rebuild`, never a migration."""
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing = sorted(set(table.columns.keys()) - present)
        if missing:
            raise OutdatedSchema(
                f"read-model table {table.name} lacks columns {', '.join(missing)}: it was made "
                "by an older build; run `redress rebuild` to build a current store and switch"
            )


@dataclass(frozen=True)
class ComplaintFilter:
    """Filters of `GET /v1/complaints`; every one optional, all combined with AND."""

    status: str | None = None
    priority: str | None = None
    queue: str | None = None
    tier: str | None = None
    channel: str | None = None
    product: str | None = None
    category: str | None = None
    escalation_tier: str | None = None
    breached: bool | None = None
    incident: str | None = None  # an incident id, or "any" / "none"
    customer_id: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None

    def clauses(self) -> list[Any]:
        c = complaints.c
        where: list[Any] = []
        for name in (
            "status",
            "priority",
            "queue",
            "tier",
            "channel",
            "product",
            "category",
            "escalation_tier",
            "customer_id",
        ):
            value = getattr(self, name)
            if value is not None:
                where.append(c[name] == value)
        if self.breached is not None:
            where.append(c.breached.is_(self.breached))
        if self.incident == "any":
            where.append(c.incident_id.is_not(None))
        elif self.incident == "none":
            where.append(c.incident_id.is_(None))
        elif self.incident is not None:
            where.append(c.incident_id == self.incident)
        if self.received_from is not None:
            where.append(c.received_at >= self.received_from)
        if self.received_to is not None:
            where.append(c.received_at < self.received_to)
        return where


class BadCursor(ValueError):
    pass


def encode_cursor(sort_at: datetime, key: str) -> str:
    raw = json.dumps([sort_at.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, key = json.loads(raw)
        return datetime.fromisoformat(at), str(key)
    except (ValueError, TypeError) as exc:
        raise BadCursor("the cursor is not one this API gave out") from exc


@dataclass(frozen=True)
class Applied:
    """What one batch did: how many events were new, and those events (in batch order) with
    their ids as strings."""

    applied: int
    fresh: list[Envelope[EventData]]
    fresh_ids: list[str]


class _Writer:
    """Multi-row INSERTs sent straight to the driver's `executemany`, each value through its
    column type's own bind processor: the same values SQLAlchemy's `conn.execute(insert, rows)`
    sends, without its per-row bookkeeping (most of the projection's write time)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[str, bool], tuple[str, bool, list[tuple[str, Any, bool]]]] = {}
        self._plans: dict[tuple[str, bool], _InsertPlan] = {}
        self._memo: dict[Any, Any] = {}

    @property
    def can_upsert(self) -> bool:
        return self.dialect.name in _UPSERT_INSERTS

    def _statement(
        self, table: Table, upsert: bool
    ) -> tuple[str, bool, list[tuple[str, Any, bool]]]:
        found = self._compiled.get((table.name, upsert))
        if found is None:
            dialect = self.dialect
            if upsert:
                statement = _UPSERT_INSERTS[dialect.name](table)
                keys = [c.name for c in table.primary_key.columns]
                statement = statement.on_conflict_do_update(
                    index_elements=keys,
                    set_={
                        c.name: statement.excluded[c.name]
                        for c in table.columns
                        if c.name not in keys
                    },
                )
            else:
                statement = table.insert()
            compiled = statement.compile(dialect=dialect)
            order = list(compiled.positiontup or ()) if compiled.positional else []
            columns = {c.key: c for c in table.columns}
            names = order or list(columns)
            processors = [
                (
                    name,
                    columns[name].type.dialect_impl(dialect).bind_processor(dialect),
                    # JSON stores None as JSON null: only other types may skip their processor.
                    not isinstance(columns[name].type, JSON),
                )
                for name in names
            ]
            found = (compiled.string, compiled.positional, processors)
            self._compiled[(table.name, upsert)] = found
        return found

    def _plan(self, table: Table, upsert: bool) -> _InsertPlan:
        """The statement and how to turn a row dict into its parameters, made once per table."""
        found = self._plans.get((table.name, upsert))
        if found is None:
            sql, positional, processors = self._statement(table, upsert)
            names = [name for name, _, _ in processors]
            columns = table.columns
            processed = [
                (
                    index,
                    _memoized(process, self._memo)
                    if isinstance(columns[name].type, UtcDateTime)
                    else process,
                    skip,
                )
                for index, (name, process, skip) in enumerate(processors)
                if process is not None
            ]
            found = _InsertPlan(sql, positional, names, _getter(names), processed)
            self._plans[(table.name, upsert)] = found
        return found

    def insert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[dict[str, Any]],
        *,
        upsert: bool = False,
    ) -> None:
        """Insert the rows; `upsert` (where `can_upsert`): a row whose primary key is stored
        already replaces the stored one (updated in place, not deleted and inserted again).
        Rows may hold more keys than the table's columns: only the columns are read."""
        if not rows:
            return
        plan = self._plan(table, upsert)
        get = plan.get
        self._execute(conn, plan, [get(row) for row in rows])

    def insert_values(self, conn: Connection, table: Table, rows: list[list[Any]]) -> None:
        """`insert`, each row given as a new list of its values in the table's column order
        (no dict to build and read back per row). The lists are processed in place."""
        if not rows:
            return
        plan = self._plan(table, False)
        if plan.names != list(table.columns.keys()):  # a dialect ordering them otherwise
            keys = table.columns.keys()
            self.insert(conn, table, [dict(zip(keys, row, strict=True)) for row in rows])
            return
        self._execute(conn, plan, rows)

    def _execute(self, conn: Connection, plan: _InsertPlan, params: list[Any]) -> None:
        """Run `plan` for these rows (lists in `plan.names` order, processed in place)."""
        processed = plan.processed
        for values in params:
            for index, process, skip in processed:
                value = values[index]
                if value is not None or not skip:
                    values[index] = process(value)
        if not plan.positional:
            names = plan.names
            params = [dict(zip(names, values, strict=True)) for values in params]
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(plan.sql, params)
        finally:
            cursor.close()


_MEMO_LIMIT = 50_000


def _memoized(process: Callable[[Any], Any], cache: dict[Any, Any]) -> Callable[[Any], Any]:
    """`process` (a datetime column's bind or result processor: a pure function of the value)
    remembering its results in `cache`, emptied when it holds `_MEMO_LIMIT`: a complaint's row
    is written and read again with most of its times unchanged. A datetime's key holds its
    `fold` too: two equal datetimes of one zone that differ in `fold` are different instants."""

    def memo(value: Any) -> Any:
        key = (value, value.fold) if isinstance(value, datetime) else value
        found = cache.get(key, cache)
        if found is not cache:
            return found
        result = process(value)
        if len(cache) >= _MEMO_LIMIT:
            cache.clear()
        cache[key] = result
        return result

    return memo


@dataclass(frozen=True)
class _InsertPlan:
    sql: str
    positional: bool
    names: list[str]
    get: Callable[[dict[str, Any]], list[Any]]
    processed: list[tuple[int, Any, bool]]


def _getter(names: Sequence[str]) -> Callable[[dict[str, Any]], list[Any]]:
    """A row dict's values of `names`, in that order, as a new list."""
    if len(names) == 1:
        name = names[0]
        return lambda row: [row[name]]
    pick = operator.itemgetter(*names)
    return lambda row: list(pick(row))


class _ByKey:
    """`SELECT columns FROM table WHERE key IN (...)` (and `DELETE`) sent straight to the
    driver's cursor, each value read through its column type's own result processor: the
    values SQLAlchemy's `conn.execute(select(...))` returns, without building, compiling and
    wrapping a statement per query (most of a small batch's time). Statement texts are made
    once per table and number of keys (PostgreSQL: one text, `key = ANY(array)`)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        style = dialect.paramstyle
        if style == "qmark":
            self._mark: Callable[[int], str] = lambda _: "?"
        elif style in ("format", "pyformat"):
            self._mark = lambda _: "%s"
        elif style == "numeric":
            self._mark = lambda i: f":{i + 1}"
        else:
            raise NotImplementedError(f"paramstyle {style} is not supported")
        self._any = dialect.name == "postgresql"  # key = ANY(array): one statement text
        self._statements: dict[tuple[str, tuple[str, ...], str, str, int], str] = {}
        self._processors: dict[tuple[str, tuple[str, ...]], list[tuple[int, Any]]] = {}
        self._memo: dict[Any, Any] = {}

    def _sql(self, table: Table, columns: tuple[str, ...], key: str, order: str, count: int) -> str:
        cache_key = (table.name, columns, key, order, 1 if self._any else count)
        sql = self._statements.get(cache_key)
        if sql is None:
            quote = self.dialect.identifier_preparer.quote
            if self._any:
                where = f"{quote(key)} = ANY({self._mark(0)})"
            else:
                where = f"{quote(key)} IN ({', '.join(self._mark(i) for i in range(count))})"
            if columns:
                sql = f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table.name)}"
            else:  # no columns: a DELETE
                sql = f"DELETE FROM {quote(table.name)}"
            sql += f" WHERE {where}"
            if order:
                sql += f" ORDER BY {quote(order)}"
            self._statements[cache_key] = sql
        return sql

    def _row_processors(
        self, table: Table, columns: tuple[str, ...], cursor: Any
    ) -> list[tuple[int, Any]]:
        """The result processors of `columns` (made once: a column's driver type code is the
        same in every result; reading the cursor's description costs much on psycopg)."""
        found = self._processors.get((table.name, columns))
        if found is None:
            dialect = self.dialect
            codes = [d[1] for d in cursor.description]
            found = []
            for index, (name, code) in enumerate(zip(columns, codes, strict=True)):
                column_type = table.columns[name].type
                process = column_type.dialect_impl(dialect).result_processor(dialect, code)
                if process is not None:
                    memo = isinstance(column_type, UtcDateTime)
                    found.append((index, _memoized(process, self._memo) if memo else process))
            self._processors[(table.name, columns)] = found
        return found

    def delete_in(self, conn: Connection, table: Table, key: str, values: Sequence[str]) -> None:
        """Delete the rows whose `key` is one of `values`."""
        if not values:
            return
        cursor = conn.connection.cursor()
        try:
            for start in range(0, len(values), 500):
                chunk = values[start : start + 500]
                sql = self._sql(table, (), key, "", len(chunk))
                cursor.execute(sql, (list(chunk),) if self._any else tuple(chunk))
        finally:
            cursor.close()

    def select_in(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        key: str,
        values: Sequence[str],
        *,
        order: str = "",
    ) -> list[list[Any]]:
        """Rows (as lists, in `columns` order) whose `key` is one of `values`; ordered by
        `order` within each chunk of 500 values."""
        found: list[list[Any]] = []
        if not values:
            return found
        cursor = conn.connection.cursor()
        try:
            for start in range(0, len(values), 500):
                chunk = values[start : start + 500]
                sql = self._sql(table, columns, key, order, len(chunk))
                cursor.execute(sql, (list(chunk),) if self._any else tuple(chunk))
                rows = cursor.fetchall()
                if not rows:
                    continue
                processors = self._row_processors(table, columns, cursor)
                for raw in rows:
                    row = list(raw)
                    for index, process in processors:
                        row[index] = process(row[index])
                    found.append(row)
        finally:
            cursor.close()
        return found


# INSERT ... ON CONFLICT DO UPDATE, where the backend has it (SQLite >= 3.24, PostgreSQL).
_UPSERT_INSERTS: dict[str, Callable[[Table], Any]] = {
    "sqlite": sqlite_insert,
    "postgresql": postgresql_insert,
}


class ReadModelStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer_cache: _Writer | None = None
        self._by_key_cache: _ByKey | None = None
        self._recent: OrderedDict[str, ComplaintView] | None = None
        self._recent_limit = 0

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()

    def drop_indexes(self) -> None:
        """For filling a fresh store from offset zero (rebuild, verify): drop its secondary
        indexes (the list filters' and the timeline's) while it fills, then `create_indexes`
        at the end: one sorted build each instead of an update per row. Applying batches
        needs only primary keys. Should the load be killed in between, `create_store_engine`
        makes the missing indexes when the store is next opened."""
        with self.engine.begin() as conn:
            for index in _secondary_indexes():
                index.drop(conn, checkfirst=True)

    def remember_views(self, limit: int = 2_000) -> None:
        """For a store only this object writes (a rebuild's or verify's fresh store): keep the
        views of the last `limit` complaints committed in memory, so a batch loads from the
        database only the complaints it has not met lately (a complaint's events are spread
        over several batches). A view of a whole complaint life holds some 8 KB: at 20,000 the
        rebuild of 1,000,000 events peaked at 332 MiB instead of 164. Never for a live store:
        replicas share it, and a view one replica kept would miss what another wrote since."""
        self._recent = OrderedDict()
        self._recent_limit = limit

    def create_indexes(self) -> None:
        """The indexes `drop_indexes` dropped; then, on SQLite, everything written so far is
        checkpointed into the database file and synced (whatever `synchronous` the engine
        filled it with): what a rebuild made is on disk before reporting may switch to it."""
        with self.engine.begin() as conn:
            for index in _secondary_indexes():
                index.create(conn, checkfirst=True)
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.invalidate()  # not back to the pool with another `synchronous`

    # --- writing -------------------------------------------------------------------------

    def offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(consumer_offsets).where(consumer_offsets.c.group_id == group_id)
            )
            return {(r.topic, r.partition): r.next_offset for r in rows}

    def apply(
        self,
        events: Sequence[Envelope[EventData]],
        *,
        group_id: str,
        next_offsets: dict[tuple[str, int], int],
    ) -> Applied:
        """Apply a batch and store the offsets that follow it, in one transaction.

        The whole batch is applied in memory: the rows it touches are loaded once (a few
        queries, whatever the batch size), the pure projection folds the events into them in
        batch order, and only the rows that changed are written back, each table with one
        multi-row statement. An event whose id is stored already (a redelivery) is skipped,
        so applying a batch twice changes nothing."""
        with self.engine.begin() as conn:
            writer, reader = self._sql(conn)
            ids = [str(e.id) for e in events]
            seen = _already_applied(conn, ids, reader=reader)
            fresh: list[Envelope[EventData]] = []
            fresh_ids: list[str] = []
            for event_id, envelope in zip(ids, events, strict=True):
                if event_id not in seen:
                    seen.add(event_id)
                    fresh.append(envelope)
                    fresh_ids.append(event_id)
            incident_flags = [is_incident_event(e) for e in fresh]
            before = self._load_views(
                conn,
                {
                    e.subject
                    for e, incident in zip(fresh, incident_flags, strict=True)
                    if not incident
                },
                reader,
            )
            views = dict(before)
            incident_views: dict[str, IncidentView | None] = {}
            rows: list[list[Any]] = []
            for event_id, envelope, incident in zip(fresh_ids, fresh, incident_flags, strict=True):
                rows.append(
                    [
                        *timeline_fields(envelope, event_id).values(),
                        *(envelope.position or ("", -1, -1)),
                    ]
                )
                subject = envelope.subject
                if incident:
                    if subject not in incident_views:
                        incident_views[subject] = _load_incident(conn, subject, reader=reader)
                    incident_views[subject] = project_incident(incident_views[subject], envelope)
                else:
                    views[subject] = project_complaint(views[subject], envelope)
            writer.insert_values(conn, timeline, rows)
            _save_views(conn, writer, before, views, by_key=reader)
            for incident_view in incident_views.values():
                if incident_view is not None:
                    _save_incident(conn, incident_view, writer=writer)
            _save_offsets(conn, group_id, next_offsets, writer=writer)
        self._remember(views)  # committed: only now are these the stored views
        return Applied(applied=len(fresh), fresh=fresh, fresh_ids=fresh_ids)

    def _load_views(
        self, conn: Connection, complaint_ids: set[str], reader: _ByKey
    ) -> dict[str, ComplaintView | None]:
        recent = self._recent
        if recent is None:
            return load_views(conn, complaint_ids, reader=reader)
        # In `load_views`' order (sorted), so rows are written in the same order either way.
        ids = sorted(complaint_ids)
        known = {i: recent[i] for i in ids if i in recent}
        loaded = load_views(conn, [i for i in ids if i not in known], reader=reader)
        return {i: known[i] if i in known else loaded[i] for i in ids}

    def _remember(self, views: dict[str, ComplaintView | None]) -> None:
        recent = self._recent
        if recent is None:
            return
        for complaint_id, view in views.items():
            if view is not None:
                recent[complaint_id] = view
                recent.move_to_end(complaint_id)
        while len(recent) > self._recent_limit:
            recent.popitem(last=False)

    def _sql(self, conn: Connection) -> tuple[_Writer, _ByKey]:
        dialect = conn.dialect
        if self._writer_cache is None or self._writer_cache.dialect is not dialect:
            self._writer_cache = _Writer(dialect)
        if self._by_key_cache is None or self._by_key_cache.dialect is not dialect:
            self._by_key_cache = _ByKey(dialect)
        return self._writer_cache, self._by_key_cache

    # --- reading -------------------------------------------------------------------------

    def complaint(self, complaint_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(complaints).where(complaints.c.complaint_id == complaint_id)
            ).first()
            if row is None:
                return None
            children = _children(conn, [complaint_id])
            events = conn.execute(
                select(timeline)
                .where(timeline.c.complaint_id == complaint_id)
                .order_by(timeline.c.time, timeline.c.event_id)
            ).all()
        result = dict(row._mapping)
        result.update(children.get(complaint_id, _empty_children()))
        result["timeline"] = [
            {
                "event_id": e.event_id,
                "type": e.type,
                "time": e.time,
                "source": e.source,
                "caused_by": e.causation_id,
                "actor": e.actor,
                "rule": e.rule,
                "reason": e.reason,
                "data": e.summary,
                "personal": e.personal,
            }
            for e in events
        ]
        return result

    def list_complaints(
        self, filters: ComplaintFilter, *, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page, newest first; the cursor of the next page, or None on the last."""
        c = complaints.c
        query = select(complaints).where(*filters.clauses())
        if cursor:
            at, key = decode_cursor(cursor)
            query = query.where(
                or_(c.first_seen_at < at, and_(c.first_seen_at == at, c.complaint_id < key))
            )
        query = query.order_by(c.first_seen_at.desc(), c.complaint_id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            page = [dict(r._mapping) for r in conn.execute(query)]
        more = len(page) > limit
        page = page[:limit]
        following = (
            encode_cursor(page[-1]["first_seen_at"], page[-1]["complaint_id"])
            if more and page
            else None
        )
        return page, following

    def iter_complaints(
        self, filters: ComplaintFilter, *, chunk: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Every matching row, page by page (memory stays flat however many match)."""
        cursor: str | None = None
        while True:
            page, cursor = self.list_complaints(filters, limit=chunk, cursor=cursor)
            yield from page
            if cursor is None:
                return

    def iter_views(self, filters: ComplaintFilter, *, chunk: int = 500) -> Iterator[ComplaintView]:
        """Matching complaints as projection views with their clocks, remedies, guarantees."""
        cursor: str | None = None
        while True:
            page, cursor = self.list_complaints(filters, limit=chunk, cursor=cursor)
            ids = [row["complaint_id"] for row in page]
            with self.engine.connect() as conn:
                children = _children(conn, ids)
            for row in page:
                yield _view_from(row, children.get(row["complaint_id"], _empty_children()))
            if cursor is None:
                return

    def customer_receipts(
        self, *, received_from: datetime | None, received_to: datetime | None
    ) -> Iterator[tuple[str, datetime, str]]:
        """(customer id, received at, complaint id), ordered by customer then time."""
        c = complaints.c
        query = select(c.customer_id, c.received_at, c.complaint_id).where(
            c.customer_id.is_not(None), c.received_at.is_not(None)
        )
        if received_from is not None:
            query = query.where(c.received_at >= received_from)
        if received_to is not None:
            query = query.where(c.received_at < received_to)
        query = query.order_by(c.customer_id, c.received_at, c.complaint_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(query)
            for row in result:
                yield row.customer_id, row.received_at, row.complaint_id

    def list_incidents(
        self,
        *,
        status: str | None = None,
        product: str | None = None,
        detected_from: datetime | None = None,
        detected_to: datetime | None = None,
    ) -> list[dict[str, Any]]:
        i = incidents.c
        linked = (
            select(func.count())
            .select_from(complaints)
            .where(complaints.c.incident_id == i.incident_id)
            .scalar_subquery()
            .label("complaints_linked_now")
        )
        query = select(incidents, linked)
        if status is not None:
            query = query.where(i.status == status)
        if product is not None:
            query = query.where(i.product == product)
        if detected_from is not None:
            query = query.where(i.detected_at >= detected_from)
        if detected_to is not None:
            query = query.where(i.detected_at < detected_to)
        query = query.order_by(i.detected_at.desc(), i.incident_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in READ_MODEL_TABLES.items()
            }

    def iter_table(self, name: str) -> Iterator[dict[str, Any]]:
        """Every row of a read-model table in primary-key order, streamed."""
        table = READ_MODEL_TABLES[name]
        query = select(table).order_by(*table.primary_key.columns)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=1000).execute(query):
                yield dict(row._mapping)

    def primary_key(self, name: str) -> tuple[str, ...]:
        return tuple(c.name for c in READ_MODEL_TABLES[name].primary_key.columns)


def _already_applied(
    conn: Connection, event_ids: Iterable[str], *, reader: _ByKey | None = None
) -> set[str]:
    reader = reader or _ByKey(conn.dialect)
    ids = list(event_ids)
    return {row[0] for row in reader.select_in(conn, timeline, ("event_id",), "event_id", ids)}


def _empty_children() -> dict[str, list[dict[str, Any]]]:
    return {"sla": [], "remedies": [], "guarantees": []}


def _children(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if not ids:
        return found
    for key, table, order in (
        ("sla", sla_clocks, sla_clocks.c.target),
        ("remedies", remedies, remedies.c.remedy_id),
        ("guarantees", guarantees, guarantees.c.guarantee_id),
    ):
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = conn.execute(
                select(table).where(table.c.complaint_id.in_(chunk)).order_by(order)
            )
            for row in rows:
                values = dict(row._mapping)
                owner = values["complaint_id"]
                found.setdefault(owner, _empty_children())[key].append(values)
    return found


# Each view's field names, in order (`dataclasses.fields` is slow to call per row).
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls))
    for cls in (ComplaintView, SlaClock, RemedyView, GuaranteeView, IncidentView)
}
_COMPLAINT_COLUMNS = tuple(c.name for c in complaints.columns)
# (table, view, key) of a complaint's children, in ComplaintView's order (sla, remedies, ...).
_CHILD_TABLES: tuple[tuple[Table, type, str], ...] = (
    (sla_clocks, SlaClock, "target"),
    (remedies, RemedyView, "remedy_id"),
    (guarantees, GuaranteeView, "guarantee_id"),
)


def _new(cls: type, state: dict[str, Any]) -> Any:
    """`cls(**state)` for the projection's frozen views, `state` holding every field: the same
    object, without `__init__` setting each of up to 60 fields through `object.__setattr__`."""
    obj: Any = object.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _only(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    return {name: values[name] for name in _FIELDS[cls]}


def _view_from(row: dict[str, Any], children: dict[str, list[dict[str, Any]]]) -> ComplaintView:
    values = {k: row[k] for k in _VIEW_FIELDS}
    values["extra"] = values.get("extra") or {}
    values["priority_rules"] = tuple(values.get("priority_rules") or ())
    return ComplaintView(
        **values,
        sla=tuple(SlaClock(**_only(SlaClock, r)) for r in children["sla"]),
        remedies=tuple(RemedyView(**_only(RemedyView, r)) for r in children["remedies"]),
        guarantees=tuple(GuaranteeView(**_only(GuaranteeView, r)) for r in children["guarantees"]),
    )


def load_views(
    conn: Connection, complaint_ids: Iterable[str], *, reader: _ByKey | None = None
) -> dict[str, ComplaintView | None]:
    """The stored views of these complaints (None for those not stored yet): one query for the
    complaints, and, only if some are stored, one per kind of child (clocks, remedies,
    guarantees) for those."""
    reader = reader or _ByKey(conn.dialect)
    ids = sorted(set(complaint_ids))
    found: dict[str, ComplaintView | None] = dict.fromkeys(ids)
    rows = reader.select_in(conn, complaints, _COMPLAINT_COLUMNS, "complaint_id", ids)
    if not rows:
        return found
    states = [dict(zip(_COMPLAINT_COLUMNS, row, strict=True)) for row in rows]
    stored = [state["complaint_id"] for state in states]
    children: dict[str, tuple[list[Any], list[Any], list[Any]]] = {
        owner: ([], [], []) for owner in stored
    }
    for slot, (table, cls, key) in enumerate(_CHILD_TABLES):
        names = _FIELDS[cls]
        for row in reader.select_in(
            conn, table, ("complaint_id", *names), "complaint_id", stored, order=key
        ):
            children[row[0]][slot].append(_new(cls, dict(zip(names, row[1:], strict=True))))
    for state in states:
        owner = state["complaint_id"]
        state["extra"] = state["extra"] or {}
        state["priority_rules"] = tuple(state["priority_rules"] or ())
        sla, remedy_views, guarantee_views = children[owner]
        state["sla"] = tuple(sla)
        state["remedies"] = tuple(remedy_views)
        state["guarantees"] = tuple(guarantee_views)
        found[owner] = _new(ComplaintView, {name: state[name] for name in _FIELDS[ComplaintView]})
    return found


def load_view(conn: Connection, complaint_id: str) -> ComplaintView | None:
    return load_views(conn, [complaint_id])[complaint_id]


def _shallow(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, without `asdict`'s deep copies."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _save_views(
    conn: Connection,
    writer: _Writer,
    before: dict[str, ComplaintView | None],
    after: dict[str, ComplaintView | None],
    *,
    by_key: _ByKey | None = None,
) -> None:
    """Write the complaints whose view changed (and, of those, only the clocks, remedies or
    guarantees that changed): a delete of the old rows and one multi-row insert per table."""
    rows: dict[Table, list[dict[str, Any]]] = {
        complaints: [],
        sla_clocks: [],
        remedies: [],
        guarantees: [],
    }
    stale: dict[Table, list[str]] = {table: [] for table in rows}
    for complaint_id, view in after.items():
        old = before.get(complaint_id)
        if view is None or view == old:
            continue
        if old is not None and not writer.can_upsert:
            stale[complaints].append(complaint_id)
        values = view.__dict__.copy()  # the writer reads the table's columns only
        extra = values["extra"]
        values["extra"] = json.loads(json.dumps(extra, default=str)) if extra else {}
        values["priority_rules"] = list(view.priority_rules)
        rows[complaints].append(values)
        owner = {"complaint_id": complaint_id}
        if old is None or old.sla != view.sla:
            if old is not None and old.sla:
                stale[sla_clocks].append(complaint_id)
            rows[sla_clocks] += [{**owner, **c.__dict__, "state": c.state} for c in view.sla]
        if old is None or old.remedies != view.remedies:
            if old is not None and old.remedies:
                stale[remedies].append(complaint_id)
            rows[remedies] += [{**owner, **r.__dict__, "status": r.status} for r in view.remedies]
        if old is None or old.guarantees != view.guarantees:
            if old is not None and old.guarantees:
                stale[guarantees].append(complaint_id)
            rows[guarantees] += [{**owner, **g.__dict__} for g in view.guarantees]
    by_key = by_key or _ByKey(conn.dialect)
    for table, table_rows in rows.items():
        by_key.delete_in(conn, table, "complaint_id", stale[table])
        writer.insert(conn, table, table_rows, upsert=table is complaints and writer.can_upsert)


def _load_incident(
    conn: Connection, incident_id: str, *, reader: _ByKey | None = None
) -> IncidentView | None:
    reader = reader or _ByKey(conn.dialect)
    names = _FIELDS[IncidentView]
    rows = reader.select_in(conn, incidents, names, "incident_id", [incident_id])
    return _new(IncidentView, dict(zip(names, rows[0], strict=True))) if rows else None


def _save_incident(
    conn: Connection, incident: IncidentView, *, writer: _Writer | None = None
) -> None:
    values = {**_shallow(incident), "status": incident.status}
    if writer is not None and writer.can_upsert:
        writer.insert(conn, incidents, [values], upsert=True)
        return
    _upsert(conn, incidents, incidents.c.incident_id == incident.incident_id, values)


def _upsert(conn: Connection, table: Table, where: Any, values: dict[str, Any]) -> None:
    updated = conn.execute(table.update().where(where).values(**values))
    if updated.rowcount == 0:
        conn.execute(table.insert().values(**values))


def _save_offsets(
    conn: Connection,
    group_id: str,
    offsets: dict[tuple[str, int], int],
    *,
    writer: _Writer | None = None,
) -> None:
    """Store the next offsets of the batch's partitions: one upsert where the backend has it,
    else one statement per kind of change."""
    if not offsets:
        return
    if writer is not None and writer.can_upsert:
        rows = [
            {"group_id": group_id, "topic": topic, "partition": partition, "next_offset": offset}
            for (topic, partition), offset in offsets.items()
        ]
        writer.insert(conn, consumer_offsets, rows, upsert=True)
        return
    c = consumer_offsets.c
    stored = {
        (r.topic, r.partition)
        for r in conn.execute(select(c.topic, c.partition).where(c.group_id == group_id))
    }
    changed = [
        {"g": group_id, "t": topic, "p": partition, "o": offset}
        for (topic, partition), offset in offsets.items()
        if (topic, partition) in stored
    ]
    if changed:
        conn.execute(
            consumer_offsets.update()
            .where(c.group_id == bindparam("g"), c.topic == bindparam("t"))
            .where(c.partition == bindparam("p"))
            .values(next_offset=bindparam("o")),
            changed,
        )
    added = [
        {"group_id": group_id, "topic": topic, "partition": partition, "next_offset": offset}
        for (topic, partition), offset in offsets.items()
        if (topic, partition) not in stored
    ]
    if added:
        conn.execute(consumer_offsets.insert(), added)
