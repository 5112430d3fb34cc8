"""`redress rebuild` and `redress verify`: read models rebuilt from offset zero (issue 6).

Both read the event topics only; neither writes to any topic. They take the reporting
service's settings (`REDRESS_REPORTING_*`, `REDRESS_KAFKA_*`) so they find the same data
directory, store and consumer group as the service they serve.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from redress_reporting.settings import ReportingSettings

app = typer.Typer(help="Rebuild and verify reporting's read models from the event log.")

EXIT_DIFFERENT = 1
EXIT_ERROR = 2


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def _settings() -> ReportingSettings:
    from redress_reporting.settings import ReportingSettings

    settings = ReportingSettings()
    settings.data_dir = settings.data_dir.resolve()
    return settings


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class _Progress:
    """Events, events/s and ETA: a live bar on a terminal, a line every few seconds elsewhere."""

    def __init__(self, label: str, *, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.quiet = quiet
        self.console = Console(stderr=True)
        self.started = time.monotonic()
        self.printed = 0.0
        self.progress = Progress(
            TextColumn(f"{label} [progress.description]{{task.description}}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            TextColumn("{task.fields[rate]:>10.0f} events/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=quiet or not self.console.is_terminal,
        )
        self.task = self.progress.add_task("", total=None, rate=0.0)

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, done: int, total: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = done / elapsed
        self.progress.update(self.task, completed=done, total=total, rate=rate)
        now = time.monotonic()
        if self.quiet or self.console.is_terminal:
            return
        if now - self.printed >= 2.0 or done >= total:
            self.printed = now
            eta = (total - done) / rate if rate > 0 else float("nan")
            self.console.print(
                f"{done}/{total} events, {rate:.0f} events/s, ETA {eta:.0f}s", highlight=False
            )


@app.command()
def rebuild(
    into: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the fresh store (default: a new SQLite file)"),
    ] = None,
    switch: Annotated[
        bool, typer.Option(help="point reporting at the rebuilt store when done")
    ] = True,
    batch_size: Annotated[int, typer.Option(min=1, max=20_000)] = 2000,
    quiet: Annotated[bool, typer.Option(help="no progress display")] = False,
) -> None:
    """Rebuild every read model from offset zero into a fresh store, then switch reporting to
    it atomically; the live read model keeps serving meanwhile."""
    from redress_reporting.active import active_url, write_pointer
    from redress_reporting.projector import tune_gc_for_batches
    from redress_reporting.rebuild import BrokerUnreachable, replay
    from redress_reporting.store import ReadModelStore, create_store_engine

    tune_gc_for_batches()
    settings = _settings()
    live_url = active_url(settings.data_dir, settings.resolved_database_url())
    if into is None and not live_url.startswith("sqlite"):
        raise _fail(
            "the live store is not SQLite: name the fresh store with --into "
            "(e.g. an empty PostgreSQL database)"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target_url = into or f"sqlite:///{settings.data_dir / f'reporting-{stamp}.db'}"
    if target_url == live_url:
        raise _fail("the target store is the live one; name a fresh store with --into")
    target = ReadModelStore(create_store_engine(target_url, bulk_load=True))
    try:
        if any(target.counts().values()) or target.offsets(settings.group_id):
            raise _fail(f"{_safe(target_url)} is not empty; rebuild needs a fresh store")
        typer.echo(f"rebuilding read models into {_safe(target_url)}", err=True)
        with _Progress("rebuild", quiet=quiet) as progress:
            try:
                result = asyncio.run(
                    replay(
                        kafka=settings.kafka,
                        store=target,
                        group_id=settings.group_id,
                        batch_size=batch_size,
                        on_progress=progress.update,
                        fresh_store=True,
                    )
                )
            except BrokerUnreachable as exc:
                raise _fail(str(exc)) from exc
    finally:
        target.dispose()
    typer.echo(
        f"rebuilt {result.events} events ({result.applied} applied, "
        f"{result.skipped_invalid} undecodable skipped) in {result.seconds:.1f}s "
        f"({result.rate:.0f} events/s)"
    )
    if switch:
        write_pointer(settings.data_dir, target_url)
        typer.echo(f"reporting switched to {_safe(target_url)} (was {_safe(live_url)})")
    else:
        typer.echo(f"not switched; the rebuilt store is {_safe(target_url)}")


@app.command()
def verify(
    scratch: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of an empty scratch store (default: temporary SQLite)"),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=20_000)] = 2000,
    max_shown: Annotated[int, typer.Option(help="stop printing after this many (0: all)")] = 0,
    quiet: Annotated[bool, typer.Option(help="no progress display")] = False,
) -> None:
    """Rebuild into a scratch store up to the live store's offsets, compare it with the live
    read model, print every difference; exit 1 on any."""
    from redress_reporting.active import active_url
    from redress_reporting.projector import tune_gc_for_batches
    from redress_reporting.rebuild import BrokerUnreachable, differences, replay
    from redress_reporting.store import ReadModelStore, create_store_engine

    tune_gc_for_batches()
    settings = _settings()
    live_url = active_url(settings.data_dir, settings.resolved_database_url())
    with tempfile.TemporaryDirectory(prefix="redress-verify-") as tmp:
        scratch_url = scratch or f"sqlite:///{Path(tmp) / 'scratch.db'}"
        if scratch_url == live_url:
            raise _fail("the scratch store is the live one")
        live = ReadModelStore(create_store_engine(live_url))
        rebuilt = ReadModelStore(create_store_engine(scratch_url, bulk_load=True))
        try:
            if any(rebuilt.counts().values()):
                raise _fail(f"scratch store {_safe(scratch_url)} is not empty")
            stop_at = live.offsets(settings.group_id)
            typer.echo(f"verifying {_safe(live_url)} against a rebuild up to its offsets", err=True)
            with _Progress("verify", quiet=quiet) as progress:
                try:
                    result = asyncio.run(
                        replay(
                            kafka=settings.kafka,
                            store=rebuilt,
                            group_id=settings.group_id,
                            stop_at=stop_at,
                            batch_size=batch_size,
                            on_progress=progress.update,
                            fresh_store=True,
                        )
                    )
                except BrokerUnreachable as exc:
                    raise _fail(str(exc)) from exc
            found = 0
            for difference in differences(live, rebuilt):
                found += 1
                if not max_shown or found <= max_shown:
                    typer.echo(difference.describe())
            counts = live.counts()
        finally:
            live.dispose()
            rebuilt.dispose()
    if found:
        typer.echo(f"{found} difference(s) between the live read model and the rebuild")
        sys.stdout.flush()
        raise typer.Exit(EXIT_DIFFERENT)
    typer.echo(
        f"read models match: {sum(counts.values())} rows in {len(counts)} tables, "
        f"{result.events} events replayed"
    )
