"""HTTP routes of intake. Thin: parse, call `receive_complaint`, map errors to statuses."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import JSONResponse, Response
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


def get_caller(request: Request) -> str:
    """Who is calling; Idempotency-Keys are scoped to it. Set by the auth layer when present."""
    return getattr(request.state, "caller", None) or "anonymous"


# The producer, store and settings are read from `app.state` in the handler rather than through
# `Depends(...)`: FastAPI's dependency solving costs more per request than the rest of the
# handler (and a plain `def` dependency would even hop to the thread pool), for what are
# attribute reads. They add nothing to the OpenAPI document either way.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes the request safe to retry, on any replica and across restarts, "
        "for `REDRESS_INTAKE_IDEMPOTENCY_TTL_S` (a day by default): a repeat returns the same "
        "complaint id with `Idempotent-Replayed: true` and appends nothing; the same key with "
        "another body is 409",
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
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await answer(
        submission,
        state=request.app.state,
        caller=get_caller(request),
        idempotency_key=idempotency_key,
    )


async def answer(
    submission: ComplaintSubmission, *, state: Any, caller: str, idempotency_key: str | None
) -> Response:
    """The answer to a valid submission (the route above and `redress_intake.fastlane`)."""
    settings: IntakeSettings = state.settings
    producer: EventProducer = state.producer
    store: IdempotencyStore = state.idempotency
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
    # The bytes JSONResponse renders for {"complaint_id": ...}, without its json.dumps per request.
    return Response(
        b'{"complaint_id":"' + str(receipt.complaint_id).encode() + b'"}',
        status_code=status.HTTP_202_ACCEPTED,
        headers=headers,
        media_type="application/json",
    )
