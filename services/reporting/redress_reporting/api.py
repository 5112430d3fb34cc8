"""Query routes of reporting. Thin: read the store, shape the answer, hide personal data from
callers without the `pii:read` scope."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict

from redress_reporting.projection import from_cents
from redress_reporting.reports import RECONTACT_WINDOW, REPORTS, ReportInput
from redress_reporting.store import BadCursor, ComplaintFilter, ReadModelStore

PII_SCOPE = "pii:read"
# Columns of the complaint row that are personal data.
PII_COLUMNS = (
    "customer_name",
    "customer_email",
    "customer_phone",
    "customer_vulnerable",
    "description",
)
# Bookkeeping columns of the projection that callers do not need.
INTERNAL_COLUMNS = ("extra", "priority_set_at", "queue_set_at", "escalation_set_at")
MAX_PAGE = 500


class OutputFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


class TimelineItem(BaseModel):
    event_id: str
    type: str
    time: datetime
    source: str
    caused_by: str | None
    actor: str
    rule: str | None
    reason: str | None
    data: dict[str, Any]
    personal: dict[str, Any] | None = None


class ComplaintRow(BaseModel):
    """A complaint as lists show it; more fields follow the read model (see docs/reporting.md)."""

    model_config = ConfigDict(extra="allow")

    complaint_id: str
    status: str
    priority: str | None
    queue: str | None
    channel: str | None
    category: str | None
    product: str | None
    jurisdiction: str | None
    tier: str | None
    escalation_tier: str | None
    breached: bool
    incident_id: str | None
    received_at: datetime | None
    updated_at: datetime | None
    pii_redacted: bool


class ComplaintDetail(ComplaintRow):
    sla: list[dict[str, Any]]
    remedies: list[dict[str, Any]]
    guarantees: list[dict[str, Any]]
    timeline: list[TimelineItem]


class ComplaintPage(BaseModel):
    items: list[ComplaintRow]
    next_cursor: str | None
    limit: int


class ReportBody(BaseModel):
    report: str
    date_from: datetime | None
    date_to: datetime | None
    as_of: datetime
    summary: dict[str, Any]
    rows: list[dict[str, Any]]


def get_store(request: Request) -> ReadModelStore:
    return request.app.state.stores.current()  # type: ignore[no-any-return]


def may_read_pii(request: Request) -> bool:
    return PII_SCOPE in (getattr(request.state, "scopes", None) or set())


StoreDep = Annotated[ReadModelStore, Depends(get_store)]
PiiDep = Annotated[bool, Depends(may_read_pii)]
FromQ = Annotated[datetime | None, Query(alias="from", description="inclusive, ISO 8601")]
ToQ = Annotated[datetime | None, Query(alias="to", description="exclusive, ISO 8601")]
FormatQ = Annotated[OutputFormat | None, Query(description="json (default) or csv")]

router = APIRouter(prefix="/v1", tags=["complaints"])


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _after(moment: datetime | None, delta: timedelta) -> datetime | None:
    """`moment + delta`, or None (no bound) past the end of the calendar."""
    try:
        return None if moment is None else moment + delta
    except OverflowError:
        return None


def _wants_csv(request: Request, format: OutputFormat | None) -> bool:
    if format is not None:
        return format == OutputFormat.CSV
    return "text/csv" in request.headers.get("accept", "")


def shape_row(row: dict[str, Any], *, pii: bool) -> dict[str, Any]:
    """A stored row as the API shows it: money as decimal strings, personal data only with
    `pii:read`."""
    shaped: dict[str, Any] = {}
    for key, value in row.items():
        if key in INTERNAL_COLUMNS:
            continue
        if key.endswith("_cents"):
            amount = from_cents(value)
            shaped[key.removesuffix("_cents")] = None if amount is None else str(amount)
        elif key in PII_COLUMNS and not pii:
            shaped[key] = None
        else:
            shaped[key] = value
    shaped["pii_redacted"] = not pii
    return shaped


def _children(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [shape_row({k: v for k, v in r.items() if k != "complaint_id"}, pii=True) for r in rows]


def csv_stream(rows: Iterable[dict[str, Any]], *, drop: Iterable[str] = ()) -> Iterator[str]:
    """Rows as CSV text, header from the first row; lists joined with ';'."""
    dropped = set(drop) | {"pii_redacted"}
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for row in rows:
        flat = {
            k: ";".join(map(str, v)) if isinstance(v, list | tuple) else _csv_value(v)
            for k, v in row.items()
            if k not in dropped
        }
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(flat), extrasaction="ignore")
            writer.writeheader()
        writer.writerow(flat)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in value.items())
    return value


def _csv_response(rows: Iterable[dict[str, Any]], name: str, **kwargs: Any) -> StreamingResponse:
    return StreamingResponse(
        csv_stream(rows, **kwargs),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get(
    "/complaints",
    response_model=ComplaintPage,
    summary="Complaints, newest first, filtered, with cursor pagination (or all as CSV)",
    responses={200: {"content": {"text/csv": {}}}, 400: {"description": "bad cursor"}},
)
async def list_complaints(
    request: Request,
    store: StoreDep,
    pii: PiiDep,
    status: str | None = None,
    priority: str | None = None,
    queue: str | None = None,
    tier: Annotated[str | None, Query(description="customer tier")] = None,
    channel: str | None = None,
    product: str | None = None,
    category: str | None = None,
    escalation_tier: str | None = None,
    breached: bool | None = None,
    incident: Annotated[str | None, Query(description="an incident id, or 'any' / 'none'")] = None,
    date_from: FromQ = None,
    date_to: ToQ = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
    format: FormatQ = None,
) -> Any:
    filters = ComplaintFilter(
        status=status,
        priority=priority,
        queue=queue,
        tier=tier,
        channel=channel,
        product=product,
        category=category,
        escalation_tier=escalation_tier,
        breached=breached,
        incident=incident,
        received_from=_utc(date_from),
        received_to=_utc(date_to),
    )
    if _wants_csv(request, format):
        rows = (shape_row(r, pii=pii) for r in store.iter_complaints(filters))
        return _csv_response(rows, "complaints", drop=() if pii else PII_COLUMNS)
    try:
        page, following = await asyncio.to_thread(
            store.list_complaints, filters, limit=limit, cursor=cursor
        )
    except BadCursor as exc:
        raise HTTPException(400, detail=str(exc)) from exc
    return {
        "items": [shape_row(r, pii=pii) for r in page],
        "next_cursor": following,
        "limit": limit,
    }


@router.get(
    "/complaints/{complaint_id}",
    response_model=ComplaintDetail,
    summary="One complaint with its clocks, remedies, guarantees and full timeline",
    responses={404: {"description": "not (yet) projected"}},
)
async def complaint_detail(complaint_id: uuid.UUID, store: StoreDep, pii: PiiDep) -> Any:
    found = await asyncio.to_thread(store.complaint, str(complaint_id))
    if found is None:
        raise HTTPException(404, detail=f"complaint {complaint_id} is not known (yet)")
    events = found.pop("timeline")
    children = {key: _children(found.pop(key)) for key in ("sla", "remedies", "guarantees")}
    shaped = shape_row(found, pii=pii)
    shaped.update(children)
    shaped["timeline"] = [{**e, "personal": e["personal"] if pii else None} for e in events]
    return shaped


@router.get(
    "/incidents",
    summary="Incidents (surges of similar complaints), newest first",
    responses={200: {"content": {"text/csv": {}}}},
    tags=["incidents"],
)
async def list_incidents(
    request: Request,
    store: StoreDep,
    status: Annotated[str | None, Query(description="open or resolved")] = None,
    product: str | None = None,
    date_from: FromQ = None,
    date_to: ToQ = None,
    format: FormatQ = None,
) -> Any:
    rows = await asyncio.to_thread(
        store.list_incidents,
        status=status,
        product=product,
        detected_from=_utc(date_from),
        detected_to=_utc(date_to),
    )
    if _wants_csv(request, format):
        return _csv_response(rows, "incidents")
    return {"items": rows}


@router.get("/reports", summary="The reports there are", tags=["reports"])
async def list_reports() -> dict[str, list[str]]:
    return {"reports": sorted(REPORTS)}


@router.get(
    "/reports/{name}",
    response_model=ReportBody,
    summary="A management report over complaints received in [from, to)",
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": "no such report"}},
    tags=["reports"],
)
async def report(
    request: Request,
    name: str,
    store: StoreDep,
    date_from: FromQ = None,
    date_to: ToQ = None,
    as_of: Annotated[datetime | None, Query(description="backlog ages as of (default now)")] = None,
    format: FormatQ = None,
) -> Any:
    build = REPORTS.get(name)
    if build is None:
        return JSONResponse(
            {
                "error": "unknown_report",
                "detail": f"there is no report {name!r}",
                "reports": sorted(REPORTS),
            },
            status_code=404,
        )
    start, end = _utc(date_from), _utc(date_to)
    source = ReportInput(
        complaints=lambda: store.iter_views(ComplaintFilter(received_from=start, received_to=end)),
        incidents=lambda: store.list_incidents(detected_from=start, detected_to=end),
        receipts=lambda: store.customer_receipts(
            received_from=start,
            received_to=_after(end, RECONTACT_WINDOW + timedelta(seconds=1)),
        ),
        received_from=start,
        received_to=end,
        as_of=_utc(as_of) or datetime.now(UTC),
    )
    built = await asyncio.to_thread(build, source)
    if _wants_csv(request, format):
        return _csv_response(built.rows, f"report-{name}")
    return {
        "report": built.name,
        "date_from": start,
        "date_to": end,
        "as_of": source.as_of,
        "summary": built.summary,
        "rows": built.rows,
    }
