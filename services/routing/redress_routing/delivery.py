"""How an agent gets its outputs acknowledged, and what happens to a record it cannot process.

The contract every agent keeps: the input's offset is committed (faust acks the event when the
agent asks for the next one) only after every output of that input is acknowledged by the
broker. So publishing never gives up on a broker that is away — it retries, and the stream waits
— and only a record that can never be processed (undecodable, or a processing bug) goes to the
dead-letter topic, itself retried until acknowledged, with a log line carrying the stack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError
from redress_events import InvalidEvent
from redress_kafka.producer import BrokerUnavailable, producer_is_wedged

from redress_routing.diagnostics import log_exception

log = logging.getLogger(__name__)

# What a broker that is away (or restarting, or electing leaders) looks like to a publisher.
RETRYABLE: tuple[type[BaseException], ...] = (BrokerUnavailable, KafkaError, OSError)

Sleep = Callable[[float], Awaitable[Any]]


async def until_acknowledged(
    what: str,
    send: Callable[[], Awaitable[Any]],
    *,
    connect: Callable[[], Awaitable[Any]],
    renew: Callable[[], Awaitable[Any]] | None = None,
    renew_after: int = 4,
    sleep: Sleep = asyncio.sleep,
    first_delay_s: float = 0.5,
    max_delay_s: float = 10.0,
) -> int:
    """Call `send` until the broker acknowledges it; returns the number of attempts.

    Retries (with backoff) while the error is one of RETRYABLE; anything else is not a broker
    problem and is raised to the caller. The producer is renewed (`renew`) at once when it is
    wedged (see WEDGED), and after `renew_after` failures in a row in case it is stuck some
    other way. Outputs carry deterministic ids, so a send repeated after a lost acknowledgement
    (or by a renewed producer) is recognised downstream.
    """
    delay = first_delay_s
    attempt = 0
    failures_since_renewal = 0
    while True:
        attempt += 1
        try:
            await connect()
            await send()
        except RETRYABLE as exc:
            failures_since_renewal += 1
            wedged = producer_is_wedged(exc)
            log.warning(
                f"routing {what} waiting for kafka",
                extra={
                    "error": str(exc),
                    "error_type": type(exc).__name__,
                    "attempt": attempt,
                    **({"wedged": True} if wedged else {}),
                },
            )
            if renew is not None and (wedged or failures_since_renewal >= renew_after):
                log.warning(
                    "routing renewing its kafka producer",
                    extra={"reason": "wedged" if wedged else "failing", "attempt": attempt},
                )
                failures_since_renewal = 0
                await renew()
            await sleep(delay)
            delay = min(delay * 2, max_delay_s)
        else:
            if attempt > 1:
                log.info(f"routing {what} acknowledged after retrying", extra={"attempts": attempt})
            return attempt


def failure_of(exc: Exception, *, where: dict[str, Any]) -> tuple[str, str, Any]:
    """Log why a record cannot be processed; the (reason, detail, errors) to dead-letter it with.

    An undecodable record (InvalidEvent) keeps the reason decoding gave; anything else is a
    processing error (`processing_failed`), logged with its stack.
    """
    if isinstance(exc, InvalidEvent):
        log.warning(
            "routing dead-lettered an invalid record",
            extra={"reason": exc.reason, **where},
        )
        return exc.reason, exc.detail, exc.errors
    # The stack and the type only: an exception's text may quote the complaint (personal
    # data); the full detail travels with the record to the dead-letter topic.
    log_exception(log, "routing could not process a record; dead-lettered", exc, **where)
    return "processing_failed", f"{type(exc).__name__}: {exc}", None
