"""The shared HTTP middleware as pure ASGI (intake's app in process, no broker): refusals,
413 for oversized bodies with or without Content-Length, the caller handed to the handler, and
RED metrics recorded for each of them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import REGISTRY
from redress_observability.http import MAX_BODY_BYTES, install_common_http

from tests.support.auth import auth_headers


def count(method: str, route: str, status_class: str, service: str = "t-intake") -> float:
    value = REGISTRY.get_sample_value(
        "redress_http_requests_total",
        {"service": service, "method": method, "route": route, "status_class": status_class},
    )
    return value or 0.0


def observed(method: str, route: str, service: str = "t-intake") -> float:
    value = REGISTRY.get_sample_value(
        "redress_http_request_duration_seconds_count",
        {"service": service, "method": method, "route": route},
    )
    return value or 0.0


def denied(status: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "redress_auth_denied_total", {"service": "intake", "status": status, "reason": reason}
    )
    return value or 0.0


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()
    install_common_http(app, service="intake")
    # RED metrics under another service name, so that these counts are this test's alone.
    for middleware in app.user_middleware:
        if "service" in middleware.kwargs and middleware.cls.__name__ == "RedMetrics":
            middleware.kwargs["service"] = "t-intake"

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict[str, object]:
        body = await request.body()
        return {
            "caller": request.state.caller,
            "scopes": sorted(request.state.scopes),
            "length": len(body),
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def call(app: FastAPI, method: str, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


async def chunks(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b"x" * piece
        sent += piece


async def test_an_allowed_request_reaches_the_handler_with_its_caller(app: FastAPI) -> None:
    before = count("POST", "/v1/echo", "2xx")
    response = await call(
        app,
        "POST",
        "/v1/echo",
        content=b"hello",
        headers=auth_headers(("complaints:write",), "crm"),
    )
    assert response.status_code == 200
    assert response.json() == {"caller": "crm", "scopes": ["complaints:write"], "length": 5}
    assert count("POST", "/v1/echo", "2xx") == before + 1


async def test_refusals_are_answered_and_counted(app: FastAPI) -> None:
    before_401, before_denied = count("POST", "/v1/echo", "4xx"), denied("401", "missing_token")
    response = await call(app, "POST", "/v1/echo", content=b"{}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="redress"'
    assert response.json()["error"] == "unauthorized"
    assert denied("401", "missing_token") == before_denied + 1

    response = await call(
        app, "POST", "/v1/echo", content=b"{}", headers=auth_headers(("reports:read",))
    )
    assert response.status_code == 403
    assert response.json()["required_scopes"] == ["complaints:write"]
    assert count("POST", "/v1/echo", "4xx") == before_401 + 2


async def test_open_paths_need_no_token(app: FastAPI) -> None:
    before = observed("GET", "/healthz")
    assert (await call(app, "GET", "/healthz")).status_code == 200
    assert observed("GET", "/healthz") == before + 1


async def test_a_chunked_body_over_the_limit_is_413_and_counted(app: FastAPI) -> None:
    before = count("POST", "/v1/echo", "4xx")
    response = await call(
        app,
        "POST",
        "/v1/echo",
        content=chunks(MAX_BODY_BYTES + 10),
        headers=auth_headers(("complaints:write",)),
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert count("POST", "/v1/echo", "4xx") == before + 1


async def test_a_declared_length_over_the_limit_is_413_and_counted(app: FastAPI) -> None:
    before = count("POST", "/v1/echo", "4xx")
    response = await call(
        app,
        "POST",
        "/v1/echo",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers=auth_headers(("complaints:write",)),
    )
    assert response.status_code == 413
    assert count("POST", "/v1/echo", "4xx") == before + 1


async def test_a_chunked_body_within_the_limit_passes(app: FastAPI) -> None:
    response = await call(
        app,
        "POST",
        "/v1/echo",
        content=chunks(MAX_BODY_BYTES - 10),
        headers=auth_headers(("complaints:write",)),
    )
    assert response.status_code == 200
    assert response.json()["length"] == MAX_BODY_BYTES - 10


async def test_a_failing_handler_is_counted_as_5xx(app: FastAPI) -> None:
    @app.post("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    before = count("POST", "/v1/boom", "5xx")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/v1/boom", headers=auth_headers(("complaints:write",)))
    assert response.status_code == 500
    assert count("POST", "/v1/boom", "5xx") == before + 1


async def test_routes_of_included_routers_are_labelled_by_their_path_template(
    app: FastAPI,
) -> None:
    """Services mount their APIs with include_router (with a prefix); the label is the template
    the request matched, never the concrete path (ids must not become label values)."""
    from fastapi import APIRouter

    router = APIRouter(prefix="/v1/things")

    @router.get("/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.include_router(router)
    before = count("GET", "/v1/things/{thing_id}", "2xx")
    unmatched = count("GET", "unmatched", "4xx")
    assert (await call(app, "GET", "/v1/things/42", headers=auth_headers())).status_code == 200
    assert (await call(app, "GET", "/v1/nothing/here", headers=auth_headers())).status_code == 404
    assert count("GET", "/v1/things/{thing_id}", "2xx") == before + 1
    assert count("GET", "/v1/things/42", "2xx") == 0
    assert count("GET", "unmatched", "4xx") == unmatched + 1
