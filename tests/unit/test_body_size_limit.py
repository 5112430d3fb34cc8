"""The 1 MiB body limit holds whether or not the caller sends Content-Length."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from redress_observability.http import BodySizeLimit


class Body(BaseModel):
    text: str


def make_app(max_bytes: int) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)

    @app.post("/echo")
    async def echo(body: Body) -> dict[str, int]:
        return {"length": len(body.text)}

    return app


async def chunks(total: int, size: int = 4096) -> AsyncIterator[bytes]:
    yield b'{"text": "'
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b"x" * piece
        sent += piece
    yield b'"}'


async def post(app: FastAPI, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/echo", **kwargs)  # type: ignore[arg-type]


async def test_declared_length_over_the_limit_is_413() -> None:
    response = await post(make_app(1000), json={"text": "x" * 2000})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_chunked_body_over_the_limit_is_413() -> None:
    response = await post(
        make_app(1000), content=chunks(5000), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


async def test_bodies_within_the_limit_pass() -> None:
    assert (
        await post(
            make_app(10_000), content=chunks(5000), headers={"content-type": "application/json"}
        )
    ).json() == {"length": 5000}
    assert (await post(make_app(10_000), json={"text": "abc"})).json() == {"length": 3}
