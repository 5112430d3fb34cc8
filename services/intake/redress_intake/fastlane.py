"""The fast lane of `POST /v1/complaints`: a well-formed submission is answered here, without
FastAPI's routing and parameter machinery (which costs several times what the rest of the
request does); everything else goes on to the FastAPI route, unchanged.

It sits inside the shared middleware (RED metrics, access control, body limit), so every request
is counted, authenticated and size-limited as before. It takes a request only when it would give
the very answer the route gives: same method and path, a JSON content type, at most one
`Idempotency-Key` of an accepted length, and a body that `json.loads` reads and
`ComplaintSubmission` validates, exactly the steps FastAPI takes. The answer itself comes from
the route's own function (`api.answer`). Any other request, an invalid one included, is passed
on with its body replayed, so 400/405/422 answers and the OpenAPI document are FastAPI's, as ever.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from redress_events.catalogue import ComplaintSubmission

from redress_intake.api import answer

PATH = "/v1/complaints"
IDEMPOTENCY_HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255  # as the route's Idempotency-Key parameter (longer: FastAPI's 422)


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json"


class SubmitFastLane:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        content_type: bytes | None = None
        keys: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == IDEMPOTENCY_HEADER:
                keys.append(value)
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: the route decides
                await self.app(scope, _replay(body, message, receive), send)
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        submission = None
        if (
            content_type is not None
            and _is_json(content_type)
            and len(keys) <= 1
            and (not keys or 0 < len(keys[0].decode("latin-1")) <= MAX_KEY_LENGTH)
        ):
            try:
                submission = ComplaintSubmission.model_validate(
                    json.loads(body), from_attributes=True
                )
            except (ValueError, ValidationError, RecursionError):
                submission = None  # FastAPI gives its own answer (400 or 422) below
        if submission is None:
            await self.app(scope, _replay(body, None, receive), send)
            return
        state = scope.get("state") or {}
        response = await answer(
            submission,
            state=scope["app"].state,
            caller=state.get("caller") or "anonymous",
            idempotency_key=keys[0].decode("latin-1") if keys else None,
        )
        await response(scope, receive, send)


def _replay(body: bytes, pending: Any, receive: Any) -> Any:
    """`receive` for the route: the body read so far as one message, then what came next."""
    sent = False

    async def replay() -> Any:
        nonlocal sent, pending
        if not sent:
            sent = True
            if pending is None:
                return {"type": "http.request", "body": body, "more_body": False}
            if body:
                return {"type": "http.request", "body": body, "more_body": True}
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return replay
