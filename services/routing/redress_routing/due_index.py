"""The SLA timer's index: when each open clock next needs the timer, ordered by that time.

It lives in a local SQLite file, not in memory: a worker may own a million open complaints, and
an in-memory entry per clock (about 170 bytes) grew the worker with the backlog. It is derived
state: the clocks table (with its changelog) is the truth, and the index is rebuilt from it
whenever partitions are recovered; so the file is scratch, emptied when the worker starts, with
no journal and no fsync.

Writes are buffered (last write per key wins) and land in one transaction when the timer asks
what is due, or when the buffer is full: one transaction per hundreds of clock changes instead
of one each. Everything runs on the worker's event loop thread, so there is no locking.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

PENDING_MAX = 1000


class DueIndex:
    def __init__(self, path: Path, *, pending_max: int = PENDING_MAX) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE due (clock TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID"
        )
        self._db.execute("CREATE INDEX due_by_time ON due (at)")
        self._pending: dict[str, float | None] = {}
        self._pending_max = pending_max

    def set(self, clock: str, due: datetime | None) -> None:
        """`clock` next needs the timer at `due` (None: never, it is closed or has nothing
        left to warn or breach)."""
        self._pending[clock] = None if due is None else due.timestamp()
        if len(self._pending) >= self._pending_max:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            with self._transaction():
                self._db.executemany(
                    "DELETE FROM due WHERE clock = ?",
                    [(k,) for k, at in pending.items() if at is None],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO due (clock, at) VALUES (?, ?)",
                    [(k, at) for k, at in pending.items() if at is not None],
                )
        except BaseException:
            # Kept for the next flush (writes made since then win): an index that silently
            # lost a clock would miss its breach.
            self._pending = {**pending, **self._pending}
            raise

    def due(self, now: datetime, *, limit: int) -> list[str]:
        """The clocks due at or before `now`, earliest first, at most `limit` of them."""
        self.flush()
        rows = self._db.execute(
            "SELECT clock FROM due WHERE at <= ? ORDER BY at LIMIT ?", (now.timestamp(), limit)
        )
        return [clock for (clock,) in rows]

    def next_at(self) -> datetime | None:
        """The earliest time any clock is due (for diagnostics and tests)."""
        self.flush()
        (at,) = self._db.execute("SELECT min(at) FROM due").fetchone()
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def clear(self) -> None:
        self._pending.clear()
        self._db.execute("DELETE FROM due")

    def __len__(self) -> int:
        self.flush()
        (count,) = self._db.execute("SELECT count(*) FROM due").fetchone()
        return int(count)

    def close(self) -> None:
        self._pending.clear()
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
