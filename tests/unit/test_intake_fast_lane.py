"""The fast lane of POST /v1/complaints gives, for every request, the answer the FastAPI route
gives: the same status, body and headers, the same event appended; invalid requests are left to
the route (its 400/422 answers); metrics, access control and the body limit still apply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY
from redress_intake.app import create_app
from redress_kafka.producer import EventProducer

from tests.support.auth import auth_headers
from tests.support.complaints import complaint_body


class FakeKafka:
    """Acknowledges every record at once and keeps it."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> Any:
        self.records.append((key, value, headers))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def make_app(fast_lane: bool) -> tuple[FastAPI, FakeKafka]:
    app = create_app(fast_lane=fast_lane)
    kafka = FakeKafka()
    producer: EventProducer = app.state.producer

    async def connected() -> FakeKafka:
        return kafka

    producer._connected = connected  # type: ignore[method-assign,assignment]
    # No broker, so no log to read accepted keys from: the store knows all there is.
    app.state.idempotency.mark_complete()
    return app, kafka


async def post(app: FastAPI, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/v1/complaints", **kwargs)


def answer(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body, headers


AUTH = auth_headers(("complaints:write",), "crm")
VALID = json.dumps(complaint_body()).encode()


def other_requests() -> list[tuple[str, dict[str, Any]]]:
    missing = complaint_body()
    del missing["channel"]
    extra = {**complaint_body(), "unexpected": 1}
    wrong = {**complaint_body(), "jurisdiction": "not a country"}
    json_type = {**AUTH, "content-type": "application/json"}
    return [
        ("missing field", {"json": missing, "headers": AUTH}),
        ("extra field", {"json": extra, "headers": AUTH}),
        ("wrong value", {"json": wrong, "headers": AUTH}),
        ("not JSON", {"content": b"{not json", "headers": json_type}),
        ("JSON list", {"content": b"[]", "headers": json_type}),
        ("empty body", {"content": b"", "headers": json_type}),
        ("bad UTF-8", {"content": b'{"a": "\xff"}', "headers": json_type}),
        ("no content type", {"content": VALID, "headers": AUTH}),
        (
            "text content type",
            {"content": VALID, "headers": {**AUTH, "content-type": "text/plain"}},
        ),
        (
            "+json content type",
            {
                "content": VALID,
                "headers": {
                    **AUTH,
                    "content-type": "application/merge+json",
                    "Idempotency-Key": "plus-json",
                },
            },
        ),
        (
            "empty key",
            {"content": VALID, "headers": {**json_type, "Idempotency-Key": ""}},
        ),
        (
            "key too long",
            {"content": VALID, "headers": {**json_type, "Idempotency-Key": "k" * 256}},
        ),
        ("no token", {"content": VALID, "headers": {"content-type": "application/json"}}),
    ]


@pytest.mark.parametrize(("case", "request_kwargs"), other_requests())
async def test_other_requests_get_the_routes_answer(
    case: str, request_kwargs: dict[str, Any]
) -> None:
    fast, fast_kafka = make_app(True)
    plain, plain_kafka = make_app(False)
    got = answer(await post(fast, **request_kwargs))
    assert got == answer(await post(plain, **request_kwargs)), case
    assert len(fast_kafka.records) == len(plain_kafka.records)
    if case != "+json content type":  # the route accepts it (left to the route all the same)
        assert got[0] >= 400
        assert fast_kafka.records == []


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_a_valid_submission_gets_the_same_answer_and_event(content_type: str) -> None:
    results = []
    for fast_lane in (True, False):
        app, kafka = make_app(fast_lane)
        headers = {**AUTH, "content-type": content_type, "Idempotency-Key": "same-key"}
        first = await post(app, content=VALID, headers=headers)
        again = await post(app, content=VALID, headers=headers)
        conflict = await post(
            app, json={**complaint_body(), "description": "other"}, headers=headers
        )
        assert first.status_code == 202 and again.status_code == 202
        assert again.headers["idempotent-replayed"] == "true"
        # The 202 body is written by hand: byte for byte what JSONResponse would render.
        assert first.content == JSONResponse(first.json()).body
        assert first.headers["content-type"] == "application/json"
        assert first.headers["content-length"] == str(len(first.content))
        assert conflict.status_code == 409
        assert len(kafka.records) == 1
        key, value, record_headers = kafka.records[0]
        stable = [(k, v) for k, v in record_headers if k not in ("ce_time", "ce_chainhash")]
        data = json.loads(value)
        del data["received_at"]
        results.append((answer(first), answer(again), answer(conflict), key, stable, data))
    assert results[0] == results[1]


async def test_the_caller_scopes_the_idempotency_key() -> None:
    app, kafka = make_app(True)
    json_type = {"content-type": "application/json", "Idempotency-Key": "k1"}
    one = await post(
        app, content=VALID, headers={**auth_headers(("complaints:write",), "a"), **json_type}
    )
    two = await post(
        app, content=VALID, headers={**auth_headers(("complaints:write",), "b"), **json_type}
    )
    assert one.status_code == two.status_code == 202
    assert one.json() != two.json()
    assert len(kafka.records) == 2


def accepted_posts() -> float:
    """intake's POSTs answered 2xx, whatever their route label."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "redress_http_requests"
        for sample in metric.samples
        if sample.name == "redress_http_requests_total"
        and sample.labels["service"] == "intake"
        and sample.labels["method"] == "POST"
        and sample.labels["status_class"] == "2xx"
    )


async def test_the_fast_lane_is_counted_and_size_limited() -> None:
    app, kafka = make_app(True)
    before = accepted_posts()
    response = await post(app, content=VALID, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 202
    assert accepted_posts() == before + 1

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    response = await post(
        app, content=chunks(), headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert kafka.records[1:] == []
