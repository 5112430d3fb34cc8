"""Where routing's timer gets "now" from: the system clock, optionally shifted.

`REDRESS_ROUTING_CLOCK_OFFSET_FILE` names a file holding a number of seconds to add to the
system time (re-read whenever the file changes). Tests and drills move a running worker into
the future — past a deadline — without waiting days, and without touching the worker's code
path: the same timer, tables and events run as in production. Absent or empty file: offset 0.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class OffsetFileClock:
    def __init__(self, path: Path, base: Clock | None = None) -> None:
        self._path = path
        self._base = base or SystemClock()
        self._seen_mtime: float | None = None
        self._offset = timedelta(0)

    def _refresh(self) -> None:
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            self._offset, self._seen_mtime = timedelta(0), None
            return
        if mtime == self._seen_mtime:
            return
        text = self._path.read_text().strip()
        try:
            self._offset = timedelta(seconds=float(text or 0))
        except ValueError:
            log.warning("ignoring unreadable clock offset file", extra={"path": str(self._path)})
            return
        self._seen_mtime = mtime

    def now(self) -> datetime:
        self._refresh()
        return self._base.now() + self._offset


def clock_from(offset_file: Path | None) -> Clock:
    return OffsetFileClock(offset_file) if offset_file else SystemClock()
