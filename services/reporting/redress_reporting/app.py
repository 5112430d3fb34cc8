"""Composition root of reporting: the active store, projector, routes, lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from redress_kafka.producer import EventProducer
from redress_observability.http import NO_OPENTELEMETRY, health_router, install_common_http

from redress_reporting import metrics as business_metrics
from redress_reporting.active import ActiveStore
from redress_reporting.api import router
from redress_reporting.projector import Projector
from redress_reporting.settings import ReportingSettings


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    stores = ActiveStore(
        data_dir=settings.data_dir, configured_url=settings.resolved_database_url()
    )
    producer = EventProducer(settings.kafka, client_id="reporting")
    projector = Projector(
        stores=stores,
        kafka=settings.kafka,
        group_id=settings.group_id,
        batch_size=settings.batch_size,
        producer=producer,
        batch_linger_s=settings.batch_linger_s,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connecting = asyncio.create_task(producer.start_in_background())
        running = asyncio.create_task(projector.run())
        refreshing = asyncio.create_task(
            business_metrics.refresh_periodically(lambda: stores.current().engine)
        )
        try:
            yield
        finally:
            projector.stop()
            for task in (running, connecting, refreshing):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await producer.stop()
            stores.dispose()

    app = FastAPI(
        title="Redress reporting",
        version="1",
        description="Read models projected from the event log.",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    app.state.stores = stores
    app.state.projector = projector

    async def readiness() -> dict[str, object]:
        lag = projector.lag
        return {
            "ok_kafka": await producer.is_connected(),
            "ok_caught_up": lag is not None and lag <= settings.max_ready_lag,
            "lag": lag,
        }

    install_common_http(app, service="reporting")
    app.include_router(health_router(readiness))
    app.include_router(router)
    return app
