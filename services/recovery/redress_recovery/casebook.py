"""Every complaint's case, folded from the log (no private database to disagree with it).
Applying an event twice is a no-op: event ids already applied are dropped.

The cases and the applied event ids live in a SQLite scratch file (one per process, emptied at
start: the log is the truth and each replica folds it again), with the most recently used cases
also held in memory. Held wholly in memory they grew the service by about 2 kB per complaint
ever received, so a replica's memory grew with the company's history.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from redress_events import Envelope, EventData
from redress_observability.metrics import DUPLICATES_DROPPED

from redress_recovery.domain import Case, evolve

CACHED_CASES = 10_000
# Writes per transaction: each is a few microseconds inside one, about 20 alone.
WRITES_PER_COMMIT = 1_000


class Casebook:
    def __init__(self, path: Path | None = None, *, cached_cases: int = CACHED_CASES) -> None:
        """`path`: the scratch file (None: an in-memory database, for tests)."""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
        self._db = sqlite3.connect(
            ":memory:" if path is None else path, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE cases (id BLOB PRIMARY KEY, state BLOB) WITHOUT ROWID")
        self._db.execute("CREATE TABLE applied (id BLOB PRIMARY KEY) WITHOUT ROWID")
        self._lock = threading.Lock()
        self._cached: OrderedDict[uuid.UUID, Case] = OrderedDict()
        self._cached_max = cached_cases
        self._writes = 0
        self._count = 0
        self._path = path

    def get(self, complaint_id: uuid.UUID) -> Case:
        with self._lock:
            return self._get(complaint_id) or Case(complaint_id=complaint_id)

    def has_applied(self, event_id: uuid.UUID) -> bool:
        with self._lock:
            return self._has_applied(event_id)

    def apply(self, envelope: Envelope[Any]) -> bool:
        """Fold one event in; False when it was already applied (or concerns no complaint)."""
        with self._lock:
            if self._has_applied(envelope.id):
                DUPLICATES_DROPPED.labels("recovery", envelope.data.topic.value).inc()
                return False
            complaint_id = complaint_id_of(envelope.data)
            if complaint_id is None:
                return False
            before = self._get(complaint_id)
            case = evolve(before or Case(complaint_id=complaint_id), envelope.data)
            self._write("INSERT INTO applied (id) VALUES (?)", (envelope.id.bytes,))
            self._write(
                "INSERT OR REPLACE INTO cases (id, state) VALUES (?, ?)",
                (complaint_id.bytes, pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL)),
            )
            if before is None:
                self._count += 1
            self._remember(complaint_id, case)
            return True

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Close and remove the scratch file."""
        with self._lock:
            self._db.close()
            if self._path is not None:
                self._path.unlink(missing_ok=True)

    # One connection, one thread at a time: reads see this connection's uncommitted writes, so
    # a transaction can stay open across many applies.

    def _get(self, complaint_id: uuid.UUID) -> Case | None:
        case = self._cached.get(complaint_id)
        if case is not None:
            self._cached.move_to_end(complaint_id)
            return case
        row = self._db.execute(
            "SELECT state FROM cases WHERE id = ?", (complaint_id.bytes,)
        ).fetchone()
        if row is None:
            return None
        # Pickle of our own objects, from a file this process created and alone writes.
        case = pickle.loads(row[0])
        self._remember(complaint_id, case)
        return case  # type: ignore[no-any-return]

    def _has_applied(self, event_id: uuid.UUID) -> bool:
        row = self._db.execute("SELECT 1 FROM applied WHERE id = ?", (event_id.bytes,))
        return row.fetchone() is not None

    def _remember(self, complaint_id: uuid.UUID, case: Case) -> None:
        self._cached[complaint_id] = case
        self._cached.move_to_end(complaint_id)
        while len(self._cached) > self._cached_max:
            self._cached.popitem(last=False)

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        self._db.execute(sql, params)
        self._writes += 1
        if self._writes >= WRITES_PER_COMMIT:
            self._commit()

    def _commit(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._writes = 0


def scratch_path(data_dir: Path) -> Path:
    """This process's casebook file; files left by processes no longer running are removed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob("casebook-*.sqlite"):
        try:
            pid = int(old.stem.removeprefix("casebook-"))
        except ValueError:
            continue
        if pid != os.getpid() and not _running(pid):
            old.unlink(missing_ok=True)
    return data_dir / f"casebook-{os.getpid()}.sqlite"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def complaint_id_of(data: EventData) -> uuid.UUID | None:
    value = getattr(data, "complaint_id", None)
    return value if isinstance(value, uuid.UUID) else None
