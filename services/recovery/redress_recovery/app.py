"""Composition root of recovery: policy, casebook, follower, guarantee processor, routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime

from fastapi import FastAPI
from redress_kafka.producer import EventProducer
from redress_observability.http import NO_OPENTELEMETRY, health_router, install_common_http

from redress_recovery.api import router
from redress_recovery.casebook import Casebook, scratch_path
from redress_recovery.cases import CaseWork, ComplaintLocks, RequestFingerprints
from redress_recovery.follower import CaseFollower
from redress_recovery.policy import load_policy
from redress_recovery.processor import GuaranteeProcessor
from redress_recovery.settings import RecoverySettings


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: RecoverySettings | None = None, *, clock: Callable[[], datetime] = utc_now
) -> FastAPI:
    settings = settings or RecoverySettings()
    policy = load_policy(settings.policy_file)  # a bad file stops the service here, with a message
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    casebook = Casebook(scratch_path(settings.data_dir))
    producer = EventProducer(settings.kafka, client_id="recovery")
    follower = CaseFollower(casebook=casebook, kafka=settings.kafka)
    processor = GuaranteeProcessor(
        casebook=casebook,
        follower=follower,
        producer=producer,
        kafka=settings.kafka,
        policy=policy,
        group_id=settings.resolved_group_id(),
        source=settings.source,
        batch_size=settings.batch_size,
        clock=clock,
        kill_after_compensation=settings.fault_kill_after_compensation,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(producer.start_in_background()),
            asyncio.create_task(follower.run()),
            asyncio.create_task(processor.run()),
        ]
        try:
            yield
        finally:
            follower.stop()
            processor.stop()
            for task in reversed(tasks):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await producer.stop()
            casebook.close()

    app = FastAPI(
        title="Redress recovery",
        version="1",
        description="Case work on complaints: acknowledgement, responses, remedies, resolution, "
        "reopening, satisfaction, and service guarantees paid exactly once.",
        lifespan=lifespan,
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    app.state.work = CaseWork(
        casebook=casebook,
        producer=producer,
        policy=policy,
        fingerprints=RequestFingerprints(
            ttl_s=settings.idempotency_ttl_s, max_keys=settings.idempotency_max_keys
        ),
        locks=ComplaintLocks(),
        source=settings.source,
        clock=clock,
        is_caught_up=lambda: follower.caught_up,
    )

    async def readiness() -> dict[str, object]:
        return {
            "ok_kafka": await producer.is_connected(),
            "ok_caught_up": follower.caught_up,
            "guarantees_running": processor.running,
            "lag": follower.lag,
            "policy_version": policy.version,
        }

    install_common_http(app, service="recovery")
    app.include_router(health_router(readiness))
    app.include_router(router)
    return app
