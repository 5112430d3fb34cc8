"""Baseline for intake: a bare FastAPI + aiokafka endpoint that only produces.

Same server stack as intake (uvicorn, one process, uvloop/httptools when installed), same
durability (acks=all, idempotent producer, linger 1 ms), no validation, no event envelope, no
auth, no metrics: the floor any Python HTTP-to-Kafka service stands on.

    python -m benchmarks.baseline_app --port 8101 --bootstrap 127.0.0.1:9092 --topic bench.raw
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_app(bootstrap: str, topic: str) -> FastAPI:
    holder: dict[str, AIOKafkaProducer] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=1
        )
        await producer.start()
        holder["producer"] = producer
        try:
            yield
        finally:
            await producer.stop()

    # Telemetry off as in intake: the comparison is of what each endpoint does per request.
    app = FastAPI(lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.post("/v1/complaints", status_code=202)
    async def submit(request: Request) -> JSONResponse:
        body = await request.body()
        complaint_id = str(uuid.uuid4())
        await holder["producer"].send_and_wait(topic, value=body, key=complaint_id.encode())
        return JSONResponse({"complaint_id": complaint_id}, status_code=202)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.bootstrap, args.topic),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
