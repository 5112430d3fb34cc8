"""Query routes of reporting. Thin: read the store, shape the answer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from redress_reporting.store import ReadModelStore


class TimelineItem(BaseModel):
    event_id: str
    type: str
    time: datetime
    source: str
    caused_by: str | None
    data: dict[str, Any]


class ComplaintDetail(BaseModel):
    complaint_id: str
    status: str
    priority: str | None
    queue: str | None
    channel: str | None
    category: str | None
    product: str | None
    jurisdiction: str | None
    tier: str | None
    received_at: datetime | None
    updated_at: datetime | None
    timeline: list[TimelineItem]


def get_store(request: Request) -> ReadModelStore:
    return request.app.state.store  # type: ignore[no-any-return]


StoreDep = Annotated[ReadModelStore, Depends(get_store)]

router = APIRouter(prefix="/v1", tags=["complaints"])


@router.get(
    "/complaints/{complaint_id}",
    response_model=ComplaintDetail,
    summary="One complaint with its full timeline",
    responses={404: {"description": "not (yet) projected"}},
)
async def complaint_detail(complaint_id: uuid.UUID, store: StoreDep) -> dict[str, Any]:
    found = await asyncio.to_thread(store.complaint, str(complaint_id))
    if found is None:
        raise HTTPException(404, detail=f"complaint {complaint_id} is not known (yet)")
    return found
