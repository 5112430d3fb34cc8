"""The timer's clock: system time shifted by a number of seconds read from a file."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redress_routing.clock import OffsetFileClock, SystemClock, clock_from

BASE = datetime(2026, 11, 23, 10, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return BASE


def test_no_file_means_no_offset(tmp_path: Path) -> None:
    assert OffsetFileClock(tmp_path / "absent", FixedClock()).now() == BASE
    assert isinstance(clock_from(None), SystemClock)


def test_the_offset_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    clock = OffsetFileClock(path, FixedClock())
    path.write_text("3600")
    assert clock.now() == BASE + timedelta(hours=1)
    path.write_text("86400.5\n")
    os.utime(path, ns=(1, 2))  # a different mtime even on coarse file systems
    assert clock.now() == BASE + timedelta(days=1, seconds=0.5)


def test_an_unreadable_offset_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    clock = OffsetFileClock(path, FixedClock())
    path.write_text("60")
    assert clock.now() == BASE + timedelta(minutes=1)
    path.write_text("soon")
    os.utime(path, ns=(3, 4))
    assert clock.now() == BASE + timedelta(minutes=1)
