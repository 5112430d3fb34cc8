"""Composition root of intake: settings, producer, routes, lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from redress_kafka.producer import EventProducer
from redress_observability.http import NO_OPENTELEMETRY, health_router, install_common_http

from redress_intake.accepted import AcceptedKeysFollower
from redress_intake.api import router
from redress_intake.fastlane import SubmitFastLane
from redress_intake.idempotency import IdempotencyStore
from redress_intake.inbound import InboundConsumer
from redress_intake.settings import IntakeSettings


def create_app(settings: IntakeSettings | None = None, *, fast_lane: bool = True) -> FastAPI:
    """The intake app. `fast_lane=False` leaves every request to the FastAPI routes (tests
    compare the two)."""
    settings = settings or IntakeSettings()
    producer = EventProducer(settings.kafka, client_id="intake")
    inbound = InboundConsumer(
        settings=settings.inbound, kafka=settings.kafka, producer=producer, source=settings.source
    )
    idempotency = IdempotencyStore(
        ttl_s=settings.idempotency_ttl_s,
        max_keys=settings.idempotency_max_keys,
        complete=False,
        wait_s=settings.kafka.produce_timeout_s,
    )
    accepted = AcceptedKeysFollower(
        store=idempotency,
        kafka=settings.kafka,
        ttl_s=settings.idempotency_ttl_s,
        max_keys=settings.idempotency_max_keys,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connecting = asyncio.create_task(producer.start_in_background())
        consuming = asyncio.create_task(inbound.run()) if settings.inbound.enabled else None
        following = asyncio.create_task(accepted.run())
        try:
            yield
        finally:
            accepted.stop()
            following.cancel()
            with suppress(asyncio.CancelledError):
                await following
            inbound.stop()  # finishes the record in hand, then leaves the group
            if consuming is not None:
                with suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(consuming, timeout=10)
            connecting.cancel()
            with suppress(asyncio.CancelledError):
                await connecting
            await producer.stop()

    app = FastAPI(
        title="Redress intake",
        version="1",
        description="Takes complaints and appends them to the event log.",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    app.state.producer = producer
    app.state.idempotency = idempotency

    async def readiness() -> dict[str, object]:
        return {
            "ok_kafka": await producer.is_connected(),
            # Not ready until it knows every key accepted within the TTL, by any replica.
            "ok_accepted_keys": idempotency.complete,
            "inbound_consuming": inbound.running,
        }

    if fast_lane:  # added first: innermost, inside metrics, access control and the body limit
        app.add_middleware(SubmitFastLane)
    install_common_http(app, service="intake")
    app.include_router(health_router(readiness))
    app.include_router(router)
    return app
