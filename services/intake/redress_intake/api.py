"""HTTP routes of intake. Thin: parse, call `receive_complaint`, map errors to statuses."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints
from redress_events.catalogue import ComplaintSubmission
from redress_kafka.producer import BrokerUnavailable, EventProducer

from redress_intake.complaints import receive_complaint
from redress_intake.idempotency import IdempotencyConflict, IdempotencyStore
from redress_intake.settings import IntakeSettings


class Accepted(BaseModel):
    complaint_id: uuid.UUID


class Problem(BaseModel):
    error: str
    detail: str


def get_producer(request: Request) -> EventProducer:
    return request.app.state.producer  # type: ignore[no-any-return]


def get_store(request: Request) -> IdempotencyStore:
    return request.app.state.idempotency  # type: ignore[no-any-return]


def get_settings(request: Request) -> IntakeSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_caller(request: Request) -> str:
    """Who is calling; Idempotency-Keys are scoped to it. Set by the auth layer when present."""
    return getattr(request.state, "caller", None) or "anonymous"


ProducerDep = Annotated[EventProducer, Depends(get_producer)]
StoreDep = Annotated[IdempotencyStore, Depends(get_store)]
SettingsDep = Annotated[IntakeSettings, Depends(get_settings)]
CallerDep = Annotated[str, Depends(get_caller)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes the request safe to retry: a repeat returns the same complaint id",
    ),
    StringConstraints(min_length=1, max_length=255),
]

router = APIRouter(prefix="/v1", tags=["complaints"])


@router.post(
    "/complaints",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Submit a complaint",
    description="Answers 202 only after Kafka has the ComplaintReceived event (acks=all).",
    responses={
        409: {"model": Problem, "description": "Idempotency-Key reused with another body"},
        503: {"model": Problem, "description": "Kafka unavailable; retry after Retry-After"},
    },
)
async def submit_complaint(
    submission: ComplaintSubmission,
    producer: ProducerDep,
    store: StoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    try:
        receipt = await receive_complaint(
            submission=submission,
            caller=caller,
            idempotency_key=idempotency_key,
            producer=producer,
            store=store,
            source=settings.source,
        )
    except BrokerUnavailable as exc:
        return JSONResponse(
            {"error": "broker_unavailable", "detail": f"complaint not accepted: {exc}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(settings.retry_after_s)},
        )
    except IdempotencyConflict as exc:
        return JSONResponse(
            {"error": "idempotency_conflict", "detail": str(exc)},
            status_code=status.HTTP_409_CONFLICT,
        )
    headers = {"Idempotent-Replayed": "true"} if receipt.replayed else {}
    return JSONResponse(
        {"complaint_id": str(receipt.complaint_id)},
        status_code=status.HTTP_202_ACCEPTED,
        headers=headers,
    )
