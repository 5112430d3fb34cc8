"""The casebook on disk: the same cases as folding in memory, whatever it keeps cached."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from redress_events import Envelope, EventData
from redress_events.catalogue import ComplaintAcknowledged, SlaBreached
from redress_events.catalogue.routing import SlaTarget
from redress_recovery.casebook import Casebook, scratch_path
from redress_recovery.domain import Case

from tests.unit.recovery.cases import NOW, fold, received


def lives(count: int) -> list[tuple[uuid.UUID, list[EventData]]]:
    out = []
    for n in range(count):
        cid = uuid.UUID(int=n + 1)
        out.append(
            (
                cid,
                [
                    received().model_copy(update={"complaint_id": cid}),
                    ComplaintAcknowledged(complaint_id=cid, actor="agent", acknowledged_at=NOW),
                    SlaBreached(
                        complaint_id=cid,
                        target=SlaTarget.FIRST_RESPONSE,
                        policy_id="standard",
                        due_at=NOW,
                        breached_at=NOW,
                    ),
                ],
            )
        )
    return out


def envelope(data: EventData, n: int) -> Envelope[EventData]:
    return Envelope[EventData].new(
        data,
        subject=str(data.complaint_id),
        source="/t",
        event_id=uuid.UUID(int=10**6 + n),  # type: ignore[attr-defined]
    )


def test_cases_evicted_from_the_cache_come_back_from_disk_unchanged(tmp_path: Path) -> None:
    casebook = Casebook(tmp_path / "casebook.sqlite", cached_cases=3)
    complaints = lives(20)
    n = 0
    # Interleaved, as partitions deliver them: every case leaves the cache between its events.
    for step in range(3):
        for _, events in complaints:
            n += 1
            assert casebook.apply(envelope(events[step], n))
    assert len(casebook) == 20
    for cid, events in complaints:
        assert casebook.get(cid) == fold(*events, case=Case(complaint_id=cid))
    casebook.close()
    assert not (tmp_path / "casebook.sqlite").exists()


def test_an_event_applied_before_is_dropped_even_after_eviction(tmp_path: Path) -> None:
    casebook = Casebook(tmp_path / "casebook.sqlite", cached_cases=1)
    (cid, events), (_, other_events) = lives(2)
    first = envelope(events[0], 1)
    assert casebook.apply(first)
    assert casebook.apply(envelope(other_events[0], 2))  # evicts cid's case
    assert casebook.has_applied(first.id)
    assert not casebook.apply(first)
    assert casebook.get(cid) == casebook.get(cid)
    assert len(casebook) == 2


def test_an_unknown_complaint_is_an_empty_case() -> None:
    casebook = Casebook()
    cid = uuid.uuid4()
    case = casebook.get(cid)
    assert case.complaint_id == cid
    assert not case.received


def test_a_new_casebook_starts_empty_over_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "casebook.sqlite"
    first = Casebook(path)
    ((cid, events),) = lives(1)
    first.apply(envelope(events[0], 1))
    first._commit()  # as a killed process would leave it
    # The log is the truth: a restarted replica folds it again, never trusting the file.
    again = Casebook(path)
    assert len(again) == 0
    assert not again.get(cid).received


def test_scratch_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = tmp_path / f"casebook-{int(done.stdout)}.sqlite"
    dead.write_bytes(b"old")
    alive = tmp_path / f"casebook-{os.getppid()}.sqlite"  # our parent is running
    alive.write_bytes(b"theirs")
    mine = scratch_path(tmp_path)
    assert mine == tmp_path / f"casebook-{os.getpid()}.sqlite"
    assert not dead.exists()
    assert alive.exists()
