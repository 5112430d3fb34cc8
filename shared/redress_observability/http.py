"""FastAPI plumbing every HTTP service shares: RED metrics, /healthz, /readyz, /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import compile_path

from redress_observability.metrics import HTTP_DURATION, HTTP_REQUESTS

ReadinessCheck = Callable[[], Awaitable[dict[str, object]]]


# Route labels are remembered per (method, path), up to this many, then the memory starts over.
_TEMPLATE_CACHE_SIZE = 4096


def _route_template(app: Any, scope: Any) -> str:
    """The route label of a request: the path template of the first route of `app` (routers
    included with a prefix too) that matches its method and path, else "unmatched"."""
    method, path = scope["method"], scope["path"]
    # FastAPI >= 0.160 keeps included routers as one lazy node each in `app.router.routes`;
    # iter_route_contexts walks the routes as they are served, prefixes applied.
    for context in iter_route_contexts(app.router.routes):
        template = context.path
        if not template:
            continue
        regex, _, _ = compile_path(template)
        if regex.match(path) and (context.methods is None or method in context.methods):
            return str(template)
    return "unmatched"


class RedMetrics:
    """RED metrics (rate, errors, duration) by route label, as pure ASGI middleware: no task, no
    stream, no Request object per request. A label depends only on the method and path, so it
    is worked out once per (method, path) and remembered (bounded), and the metric children are
    looked up once per label."""

    def __init__(self, app: Any, *, service: str) -> None:
        self.app = app
        self.service = service
        self._durations: dict[tuple[str, str], Any] = {}
        self._counts: dict[tuple[str, str, str], Any] = {}
        self._templates: dict[tuple[str, str], str] = {}

    def _template(self, scope: Any) -> str:
        key = (scope["method"], scope["path"])
        template = self._templates.get(key)
        if template is None:
            # Matched on a copy: routes must not leave their marks on the real request.
            template = _route_template(scope["app"], {**scope, "fastapi": {}})
            if len(self._templates) >= _TEMPLATE_CACHE_SIZE:
                self._templates.clear()
            self._templates[key] = template
        return template

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        route = self._template(scope)  # before the router has touched the scope
        status = 500

        async def send_with_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            duration = self._durations.get((method, route))
            if duration is None:
                duration = HTTP_DURATION.labels(self.service, method, route)
                self._durations[(method, route)] = duration
            duration.observe(elapsed)
            status_class = f"{status // 100}xx"
            count = self._counts.get((method, route, status_class))
            if count is None:
                count = HTTP_REQUESTS.labels(self.service, method, route, status_class)
                self._counts[(method, route, status_class)] = count
            count.inc()


def install_red_metrics(app: FastAPI, service: str) -> None:
    app.add_middleware(RedMetrics, service=service)


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


# Redress exports its own Prometheus metrics (RED above) and no OpenTelemetry. FastAPI's native
# telemetry, on by default, asks OpenTelemetry's global providers (environment lookups) on every
# request to learn that nobody listens: 2-3% of intake's CPU per complaint, for nothing.
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

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
        length = None
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                length = value
        if length is not None and length.isdigit():
            if int(length) > self.max_bytes:
                await self._too_large(send)
                return
            if scope.get("http_version") in ("1.0", "1.1"):
                # The server reads exactly Content-Length bytes of an HTTP/1 body (the framing
                # of the connection), so a body within the declared size needs no counting.
                await self.app(scope, receive, send)
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
