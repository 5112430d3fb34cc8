"""HTTP routes of recovery's case-work API. Thin: parse, build a command, `carry_out`, map
the outcome to a status (404 unknown, 409 illegal transition, 422 field, 503 broker)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from redress_events.catalogue.recovery import FulfilmentStep, Outcome
from redress_events.values import Money, RemedyType, Slug
from redress_kafka.producer import BrokerUnavailable

from redress_recovery.cases import (
    CaseWork,
    IdempotencyConflict,
    NotCaughtUp,
    carry_out,
    fingerprint,
    keyed_id,
)
from redress_recovery.domain import (
    AcceptRemedy,
    Acknowledge,
    AnyCommand,
    Case,
    CaseStatus,
    CommandRejected,
    DeclineRemedy,
    ProposeRemedy,
    RecordCustomerReply,
    RecordFulfilment,
    RecordSatisfaction,
    Rejection,
    Reopen,
    RequestInformation,
    Resolve,
    Respond,
)
from redress_recovery.policy import Severity
from redress_recovery.settings import RecoverySettings

Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=2_000)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcknowledgeBody(_Body):
    pass


class RespondBody(_Body):
    message: Text
    holding_reply: bool = Field(default=False, description="a holding reply (e.g. DISP 35 days)")


class InformationRequestBody(_Body):
    question: Text


class CustomerReplyBody(_Body):
    message: Text


class RemedyBody(_Body):
    type: RemedyType
    failure_type: Slug = Field(description="the failure it answers, e.g. product_defect")
    amount: Money | None = Field(default=None, description="for money remedies (ISO currency)")
    severity: Severity | None = Field(
        default=None, description="defaults to the severity of routing's priority"
    )
    reason: ShortText | None = Field(
        default=None, description="required when the remedy is outside its band"
    )


class AcceptBody(_Body):
    pass


class DeclineBody(_Body):
    reason: ShortText | None = None


class FulfilmentBody(_Body):
    step: FulfilmentStep
    reference: Reference | None = Field(default=None, description="e.g. a tracking number")


class ResolutionBody(_Body):
    outcome: Outcome
    reason: Text


class ReopenBody(_Body):
    reason: Text


class SatisfactionBody(_Body):
    score: int = Field(ge=1, le=10)
    comment: Annotated[str, StringConstraints(max_length=5000)] | None = None


class Recorded(BaseModel):
    complaint_id: uuid.UUID
    event_id: uuid.UUID
    status: CaseStatus


class RemedyCreated(Recorded):
    remedy_id: uuid.UUID


class Problem(BaseModel):
    error: str
    detail: str


class RemedyView(BaseModel):
    remedy_id: uuid.UUID
    type: RemedyType
    failure_type: str
    amount: Money | None
    severity: str | None
    outside_band: bool
    status: str
    steps: list[str]


class CaseView(BaseModel):
    complaint_id: uuid.UUID
    status: CaseStatus
    jurisdiction: str | None
    acknowledged: bool
    remedy_sought: RemedyType | None
    remedies: list[RemedyView]
    outcome: Outcome | None
    times_reopened: int
    satisfaction_score: int | None
    sla_breaches: list[str]
    guarantees_triggered: list[str]


def get_work(request: Request) -> CaseWork:
    return request.app.state.work  # type: ignore[no-any-return]


def get_settings(request: Request) -> RecoverySettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_caller(request: Request) -> str:
    """Who is calling: the actor on the events, and the scope of Idempotency-Keys. Set by the
    auth layer when present."""
    return getattr(request.state, "caller", None) or "anonymous"


WorkDep = Annotated[CaseWork, Depends(get_work)]
SettingsDep = Annotated[RecoverySettings, Depends(get_settings)]
CallerDep = Annotated[str, Depends(get_caller)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes the action safe to retry: a repeat answers the same, appends nothing",
    ),
    StringConstraints(min_length=1, max_length=255),
]

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown complaint or remedy; nothing appended"},
    409: {"model": Problem, "description": "Illegal in the case's state (reason given)"},
    422: {"description": "Invalid body, field by field; nothing appended"},
    503: {"model": Problem, "description": "Kafka unavailable or still catching up; retry"},
}

router = APIRouter(prefix="/v1/complaints/{complaint_id}", tags=["case work"])


def _problem(code: int, error: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=code, headers=headers)


async def _act(
    *,
    command: AnyCommand,
    action: str,
    body: BaseModel | None,
    caller: str,
    idempotency_key: str | None,
    work: CaseWork,
    settings: RecoverySettings,
    created: bool = False,
    extra: dict[str, str] | None = None,
) -> JSONResponse:
    canonical = f"{action}:{body.model_dump_json() if body else '{}'}".encode()
    try:
        done = await carry_out(
            command=command,
            action=action,
            caller=caller,
            idempotency_key=idempotency_key,
            body_fingerprint=fingerprint(canonical),
            work=work,
        )
    except CommandRejected as exc:
        if exc.kind is Rejection.NOT_FOUND:
            return _problem(404, "not_found", exc.reason)
        if exc.kind is Rejection.INVALID:
            field = exc.field or "body"
            error = {"field": field, "loc": ["body", field], "msg": exc.reason, "type": "invalid"}
            return JSONResponse(
                {"error": "validation_failed", "detail": exc.reason, "errors": [error]},
                status_code=422,
            )
        return _problem(409, "illegal_transition", exc.reason)
    except IdempotencyConflict as exc:
        return _problem(409, "idempotency_conflict", str(exc))
    except (BrokerUnavailable, NotCaughtUp) as exc:
        return _problem(
            503,
            "unavailable",
            f"not recorded: {exc}",
            **{"Retry-After": str(settings.retry_after_s)},
        )
    case = work.casebook.get(command.complaint_id)
    headers = {"Idempotent-Replayed": "true"} if done.replayed else {}
    return JSONResponse(
        {
            "complaint_id": str(command.complaint_id),
            "event_id": str(done.event_ids[0]),
            "status": case.status.value,
            **(extra or {}),
        },
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        headers=headers,
    )


@router.post(
    "/acknowledge",
    response_model=Recorded,
    summary="Acknowledge the complaint",
    responses=ERRORS,
)
async def acknowledge(
    complaint_id: uuid.UUID,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    body: AcknowledgeBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=Acknowledge(complaint_id=complaint_id, actor=caller),
        action="acknowledge",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
    )


@router.post(
    "/responses",
    status_code=201,
    response_model=Recorded,
    summary="Respond to the customer (a first response or an update for the SLA clocks)",
    responses=ERRORS,
)
async def respond(
    complaint_id: uuid.UUID,
    body: RespondBody,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=Respond(
            complaint_id=complaint_id,
            actor=caller,
            message=body.message,
            holding_reply=body.holding_reply,
        ),
        action="responses",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
        created=True,
    )


@router.post(
    "/information-requests",
    status_code=201,
    response_model=Recorded,
    summary="Ask the customer for information (the SLA clock pauses until they reply)",
    responses=ERRORS,
)
async def request_information(
    complaint_id: uuid.UUID,
    body: InformationRequestBody,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=RequestInformation(complaint_id=complaint_id, actor=caller, question=body.question),
        action="information-requests",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
        created=True,
    )


@router.post(
    "/customer-replies",
    status_code=201,
    response_model=Recorded,
    summary="Record the customer's reply to an information request",
    responses=ERRORS,
)
async def customer_reply(
    complaint_id: uuid.UUID,
    body: CustomerReplyBody,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=RecordCustomerReply(complaint_id=complaint_id, actor=caller, message=body.message),
        action="customer-replies",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
        created=True,
    )


@router.post(
    "/remedies",
    status_code=201,
    response_model=RemedyCreated,
    summary="Propose a remedy",
    description="A remedy outside its (failure type, severity) band needs a `reason` and is "
    "flagged `outside_band` in the event; the remedy the customer sought is recorded beside it.",
    responses=ERRORS,
)
async def propose_remedy(
    complaint_id: uuid.UUID,
    body: RemedyBody,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    remedy_id = (
        keyed_id(caller, idempotency_key, complaint_id, "remedies", "remedy")
        if idempotency_key is not None
        else uuid.uuid4()
    )
    return await _act(
        command=ProposeRemedy(
            complaint_id=complaint_id,
            actor=caller,
            remedy_id=remedy_id,
            remedy_type=body.type,
            failure_type=body.failure_type,
            amount=body.amount,
            severity=body.severity,
            reason=body.reason,
        ),
        action="remedies",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
        created=True,
        extra={"remedy_id": str(remedy_id)},
    )


@router.post(
    "/remedies/{remedy_id}/accept",
    response_model=Recorded,
    summary="The customer accepts a proposed remedy",
    responses=ERRORS,
)
async def accept_remedy(
    complaint_id: uuid.UUID,
    remedy_id: uuid.UUID,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    body: AcceptBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=AcceptRemedy(complaint_id=complaint_id, actor=caller, remedy_id=remedy_id),
        action=f"remedies/{remedy_id}/accept",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
    )


@router.post(
    "/remedies/{remedy_id}/decline",
    response_model=Recorded,
    summary="The customer declines a proposed remedy",
    responses=ERRORS,
)
async def decline_remedy(
    complaint_id: uuid.UUID,
    remedy_id: uuid.UUID,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    body: DeclineBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=DeclineRemedy(
            complaint_id=complaint_id,
            actor=caller,
            remedy_id=remedy_id,
            reason=body.reason if body else None,
        ),
        action=f"remedies/{remedy_id}/decline",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
    )


@router.post(
    "/remedies/{remedy_id}/fulfilment",
    status_code=201,
    response_model=Recorded,
    summary="Record a fulfilment step of an accepted remedy",
    description="Steps in order: replacement/repair: label_issued, item_received, "
    "replacement_shipped; refund: label_issued, item_received, refund_paid; partial_refund: "
    "refund_paid; account_credit: credit_applied; every remedy ends with completed.",
    responses=ERRORS,
)
async def record_fulfilment(
    complaint_id: uuid.UUID,
    remedy_id: uuid.UUID,
    body: FulfilmentBody,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=RecordFulfilment(
            complaint_id=complaint_id,
            actor=caller,
            remedy_id=remedy_id,
            step=body.step,
            reference=body.reference,
        ),
        action=f"remedies/{remedy_id}/fulfilment",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
        created=True,
    )


@router.post(
    "/resolution",
    response_model=Recorded,
    summary="Resolve with an outcome and reasons (the final response)",
    description="Where the jurisdiction requires it (GB: Financial Ombudsman Service, 6 "
    "months) the event records the ombudsman and the referral deadline.",
    responses=ERRORS,
)
async def resolve(
    complaint_id: uuid.UUID,
    body: ResolutionBody,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=Resolve(
            complaint_id=complaint_id, actor=caller, outcome=body.outcome, reason=body.reason
        ),
        action="resolution",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
    )


@router.post(
    "/reopen",
    response_model=Recorded,
    summary="Reopen a resolved complaint (the customer disputes the outcome)",
    responses=ERRORS,
)
async def reopen(
    complaint_id: uuid.UUID,
    body: ReopenBody,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=Reopen(complaint_id=complaint_id, actor=caller, reason=body.reason),
        action="reopen",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
    )


@router.post(
    "/satisfaction",
    status_code=201,
    response_model=Recorded,
    summary="Record the customer's satisfaction (1-10) after resolution",
    description="A low score can trigger a satisfaction guarantee (see the policy file).",
    responses=ERRORS,
)
async def record_satisfaction(
    complaint_id: uuid.UUID,
    body: SatisfactionBody,
    work: WorkDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _act(
        command=RecordSatisfaction(
            complaint_id=complaint_id, actor=caller, score=body.score, comment=body.comment
        ),
        action="satisfaction",
        body=body,
        caller=caller,
        idempotency_key=idempotency_key,
        work=work,
        settings=settings,
        created=True,
    )


@router.get(
    "/case",
    response_model=CaseView,
    summary="The case as recovery sees it (no personal data)",
    responses={404: {"model": Problem, "description": "Unknown complaint"}},
)
async def case_view(complaint_id: uuid.UUID, work: WorkDep) -> Any:
    case = work.casebook.get(complaint_id)
    if case.status is CaseStatus.UNKNOWN:
        return _problem(404, "not_found", "unknown complaint")
    return _view(case)


def _view(case: Case) -> CaseView:
    return CaseView(
        complaint_id=case.complaint_id,
        status=case.status,
        jurisdiction=case.jurisdiction,
        acknowledged=case.acknowledged,
        remedy_sought=case.remedy_sought,
        remedies=[
            RemedyView(
                remedy_id=r.remedy_id,
                type=r.remedy_type,
                failure_type=r.failure_type,
                amount=r.amount,
                severity=r.severity,
                outside_band=r.outside_band,
                status=r.status.value,
                steps=[s.value for s in r.steps],
            )
            for r in case.remedies
        ],
        outcome=case.outcome,
        times_reopened=case.times_reopened,
        satisfaction_score=case.satisfaction_score,
        sla_breaches=sorted(case.sla_breaches),
        guarantees_triggered=sorted(case.guarantees_triggered),
    )
