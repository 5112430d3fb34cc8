"""FastAPI plumbing every HTTP service shares: RED metrics, /healthz, /readyz, /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Match

from redress_observability.metrics import HTTP_DURATION, HTTP_REQUESTS

ReadinessCheck = Callable[[], Awaitable[dict[str, object]]]


def _route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return getattr(route, "path", "unmatched")
    return "unmatched"


def install_red_metrics(app: FastAPI, service: str) -> None:
    @app.middleware("http")
    async def red_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        route = _route_template(request)
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            HTTP_DURATION.labels(service, request.method, route).observe(
                time.perf_counter() - started
            )
            HTTP_REQUESTS.labels(service, request.method, route, f"{status // 100}xx").inc()


def health_router(readiness: ReadinessCheck) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Kafka is reachable and the service can serve")
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(bool(v) for k, v in checks.items() if k.startswith("ok_"))
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", **checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


MAX_BODY_BYTES = 1_048_576


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """413 for bodies over `max_bytes`: by Content-Length up front, and by counting the bytes
    of chunked bodies as they arrive (a missing Content-Length must not be a way around it)."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(send)
            return
        received = 0
        too_large = False
        replaced = False

        async def counting_receive() -> Any:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def replacing_send(message: Any) -> None:
            # The framework turns the aborted read into its own error answer; answer 413 instead.
            nonlocal replaced
            if too_large:
                if not replaced:
                    replaced = True
                    await self._too_large(send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, replacing_send)
        except _BodyTooLarge:
            if not replaced:
                await self._too_large(send)

    async def _too_large(self, send: Any) -> None:
        response = JSONResponse(
            {"error": "payload_too_large", "detail": f"body exceeds {self.max_bytes} bytes"},
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Any:
    return {"type": "http.disconnect"}


def install_common_http(app: FastAPI, service: str) -> None:
    """RED metrics, access control (bearer JWT, scopes, per-token rate limit: see
    `redress_auth`), a 1 MiB body limit (413), and 422s that list each field's problem
    without echoing the submitted (possibly personal) values back."""
    from fastapi.exceptions import RequestValidationError

    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)

    # Added after the body limit so it runs before it (a stranger learns nothing about sizes),
    # and before RED metrics so that refusals are counted too.
    from redress_auth.middleware import install_auth

    install_auth(app, service=service)
    install_red_metrics(app, service)

    @app.exception_handler(RequestValidationError)
    async def validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
                "loc": list(err["loc"]),
                "msg": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors()
        ]
        return JSONResponse(
            {"error": "validation_failed", "detail": "the request is invalid", "errors": errors},
            status_code=422,
        )
