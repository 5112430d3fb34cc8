"""`redress audit`: a complaint's history, its state as of a moment, and tamper evidence.

Read-only: these commands consume the event topics without a consumer group and never write.
Settings come from `REDRESS_KAFKA_*` (bootstrap servers, topic prefix). Exit codes: 0 fine,
1 integrity failures found, 2 the command could not answer (unknown complaint, bad timestamp,
unreachable broker...), with a one-line message on stderr.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from redress_audit.asof import ComplaintState, state_as_of
from redress_audit.history import HistoryRow, history_rows
from redress_audit.integrity import IntegrityReport
from redress_audit.loading import (
    UnknownComplaint,
    check_complaint,
    check_everything,
    complaint_key,
    load_complaint,
)
from redress_audit.reader import AuditReadError, LogReader
from redress_kafka.settings import KafkaSettings

audit_app = typer.Typer(
    help="Audit the event log: history, state as of a moment, tamper evidence (read-only).",
    no_args_is_help=True,
)

T = TypeVar("T")


class HistoryFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class StateFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


TimeoutOption = typer.Option(10.0, "--timeout", help="seconds to wait for the broker", min=0.1)
ScanOption = typer.Option(
    False, "--scan", help="read every partition, not only the key's (after a partition change)"
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"redress audit: {message}", err=True)
    raise typer.Exit(2)


def _settings() -> KafkaSettings:
    try:
        return KafkaSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail(f"bad REDRESS_KAFKA_{str(first['loc'][0]).upper()}: {first['msg']}")


def _complaint(complaint_id: str) -> str:
    try:
        return complaint_key(complaint_id)
    except ValueError:
        _fail(f"{complaint_id!r} is not a complaint id (a UUID)")


def parse_timestamp(text: str) -> datetime:
    """ISO 8601; without an offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        _fail(f"{text!r} is not an ISO 8601 timestamp (e.g. 2026-03-02T09:00:00Z)")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(timeout_s: float, work: Callable[[LogReader], Awaitable[T]]) -> T:
    async def main() -> T:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # errors become one line
        async with LogReader(_settings(), connect_timeout_s=timeout_s) as reader:
            return await work(reader)

    try:
        return asyncio.run(main())
    except UnknownComplaint as exc:
        _fail(f"unknown complaint: {exc}")
    except AuditReadError as exc:
        _fail(str(exc))
    except Exception as exc:
        if type(exc).__module__.startswith("aiokafka"):  # e.g. the broker went away mid-read
            _fail(f"Kafka error while reading: {type(exc).__name__}")
        raise


# ------------------------------------------------------------------------------------- history


@audit_app.command("history")
def history(
    complaint_id: str = typer.Argument(..., help="the complaint's id"),
    output: HistoryFormat = typer.Option(HistoryFormat.TABLE, "--format", "-f"),
    scan: bool = ScanOption,
    timeout: float = TimeoutOption,
) -> None:
    """Every event of a complaint across topics (and its incidents), in order, with time, type,
    source, cause and the rule or policy behind it."""
    key = _complaint(complaint_id)
    log = _run(timeout, lambda reader: load_complaint(reader, key, scan=scan))
    rows = history_rows(log.events)
    if output is HistoryFormat.JSON:
        typer.echo(
            json.dumps(
                {
                    "complaint_id": key,
                    "incidents": log.incidents,
                    "events": [row.as_dict() for row in rows],
                    "invalid_records": [
                        {"position": record.position, "reason": exc.reason}
                        for record, exc in log.invalid
                    ],
                },
                indent=2,
            )
        )
    elif output is HistoryFormat.CSV:
        typer.echo(_csv(rows), nl=False)
    else:
        typer.echo(_table(rows))
        for record, exc in log.invalid:
            typer.echo(f"! {record.position}: not a valid event ({exc.reason})")


def _csv(rows: list[HistoryRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "seq",
            "time",
            "type",
            "source",
            "subject",
            "event_id",
            "cause_type",
            "cause_id",
            "rule",
            "position",
        ]
    )
    for row in rows:
        writer.writerow(
            [
                row.seq,
                row.time.isoformat(),
                row.type,
                row.source,
                row.subject,
                row.event_id,
                row.cause_type or ("(not found)" if row.cause_id else ""),
                row.cause_id or "",
                row.rule_text,
                row.position or "",
            ]
        )
    return buffer.getvalue()


def _table(rows: list[HistoryRow]) -> str:
    header = ("#", "time", "type", "source", "cause", "rule / policy")
    body = [
        (
            str(row.seq),
            row.time.astimezone(UTC).isoformat(timespec="seconds"),
            row.type,
            row.source,
            row.cause_type or ("(not found)" if row.cause_id else "-"),
            row.rule_text or "-",
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header) - 1)]

    def line(cells: tuple[str, ...]) -> str:
        fixed = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False))
        return f"{fixed}  {cells[-1]}".rstrip()

    return "\n".join([line(header), *(line(cells) for cells in body)])


# -------------------------------------------------------------------------------------- as-of


@audit_app.command("as-of")
def as_of(
    complaint_id: str = typer.Argument(..., help="the complaint's id"),
    timestamp: str = typer.Argument(..., help="ISO 8601 moment; UTC when it has no offset"),
    output: StateFormat = typer.Option(StateFormat.TEXT, "--format", "-f"),
    scan: bool = ScanOption,
    timeout: float = TimeoutOption,
) -> None:
    """The complaint's state (status, priority, clocks, remedies, guarantees, resolution) as it
    stood at TIMESTAMP, computed from its events alone."""
    key = _complaint(complaint_id)
    moment = parse_timestamp(timestamp)
    log = _run(timeout, lambda reader: load_complaint(reader, key, scan=scan))
    state = state_as_of(complaint_id=key, events=log.events, at=moment)
    if not log.events:
        _fail(f"complaint {key} has records, but none is a readable event (see `history`)")
    if state.events_applied == 0:
        first = min(e.time for e in log.events)
        _fail(
            f"complaint {key} did not exist yet at {moment.isoformat()} "
            f"(its first event is at {first.isoformat()})"
        )
    if output is StateFormat.JSON:
        typer.echo(json.dumps(state.as_dict(), indent=2))
    else:
        typer.echo(render_state(state))


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else "-"


def render_state(state: ComplaintState) -> str:
    lines = [
        f"complaint {state.complaint_id} as of {_when(state.as_of)}",
        f"  events applied     {state.events_applied} (last at {_when(state.last_event_at)})",
        f"  status             {state.status}",
        f"  received           {_when(state.received_at)} via {state.channel or '-'}"
        f" ({state.category or '-'}, {state.product or '-'}, {state.jurisdiction or '-'})",
        f"  priority           {state.priority or '-'}"
        + (
            f" (rules {', '.join(state.priority_rules)}; rules version {state.rules_version})"
            if state.priority
            else ""
        ),
        f"  queue              {state.queue or '-'}",
        f"  escalation tier    {state.escalation_tier}",
        f"  acknowledged       {_when(state.acknowledged_at)}",
        f"  first response     {_when(state.first_response_at)}",
    ]
    paused = f", paused since {_when(state.clocks_paused_at)}" if state.clocks_paused_at else ""
    lines.append(f"  SLA clocks         policy {state.sla_policy or '-'}{paused}")
    for clock in state.clocks:
        extra = ""
        if clock.met_at:
            extra = f", met {_when(clock.met_at)}"
        elif clock.breached_at:
            extra = f", breached {_when(clock.breached_at)}"
        warned = ", warned" if clock.warned else ""
        lines.append(
            f"    {clock.target:<16} {clock.state:<9} due {_when(clock.due_at)}"
            f" ({clock.calendar}){warned}{extra}"
        )
    lines.append(f"  remedies           {'' if state.remedies else '-'}".rstrip())
    for remedy in state.remedies:
        amount = f" {remedy.amount}" if remedy.amount else ""
        steps = f" [{', '.join(remedy.steps)}]" if remedy.steps else ""
        lines.append(f"    {remedy.remedy_type}{amount}: {remedy.state}{steps}")
    lines.append(f"  guarantees         {'' if state.guarantees else '-'}".rstrip())
    for guarantee in state.guarantees:
        paid = ", ".join(guarantee.compensation) or "not yet compensated"
        lines.append(
            f"    {guarantee.guarantee_id} (v{guarantee.guarantee_version}) triggered "
            f"{_when(guarantee.triggered_at)} by {guarantee.trigger}: {paid}"
        )
    if state.resolution:
        r = state.resolution
        referral = f"; may refer to {r.ombudsman} until {_when(r.referral_deadline)}"
        lines.append(
            f"  resolution         {r.outcome} at {_when(r.resolved_at)}"
            + (referral if r.ombudsman else "")
        )
    else:
        lines.append("  resolution         -")
    if state.reopened:
        lines.append(f"  reopened           {state.reopened} time(s)")
    if state.withdrawn_at:
        lines.append(f"  withdrawn          {_when(state.withdrawn_at)}")
    if state.satisfaction is not None:
        lines.append(f"  satisfaction       {state.satisfaction}/10")
    for incident in state.incidents:
        lines.append(
            f"  incident           {incident.incident_id} ({incident.priority or '-'}, "
            f"{incident.state})"
        )
    if state.unhandled_types:
        lines.append(f"  not understood     {', '.join(state.unhandled_types)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- integrity


@audit_app.command("integrity")
def integrity(
    complaint: str | None = typer.Option(
        None, "--complaint", help="check one complaint (and its incidents) instead of the log"
    ),
    output: StateFormat = typer.Option(StateFormat.TEXT, "--format", "-f"),
    scan: bool = ScanOption,
    timeout: float = TimeoutOption,
) -> None:
    """Verify every writer's hash chain: names each deleted, altered or reordered event.
    Exits 1 when it finds any."""
    if complaint is not None:
        key = _complaint(complaint)

        async def one(reader: LogReader) -> IntegrityReport:
            return (await check_complaint(reader, key, scan=scan))[1]

        report = _run(timeout, one)
        scope = f"complaint {key}"
    else:
        report = _run(timeout, check_everything)
        scope = "the event log"
    if output is StateFormat.JSON:
        typer.echo(json.dumps(_report_dict(report, scope), indent=2))
    else:
        typer.echo(
            f"checked {report.records} records of {scope} in {report.chains} chains: "
            + ("no failures" if report.ok else f"{len(report.failures)} failure(s)")
        )
        for finding in report.findings:
            where = f" at {finding.position}" if finding.position else ""
            what = f" {finding.event_type}" if finding.event_type else ""
            typer.echo(
                f"{finding.severity.upper()} {finding.kind}{what} {finding.event_id or ''}"
                f"{where}: {finding.message}"
            )
    if not report.ok:
        raise typer.Exit(1)


def _report_dict(report: IntegrityReport, scope: str) -> dict[str, Any]:
    return {
        "scope": scope,
        "records": report.records,
        "chains": report.chains,
        "ok": report.ok,
        "findings": [f.as_dict() for f in report.findings],
    }
