"""Carrying out a case-work command: the one service function every HTTP action goes through.

decide on the casebook's state → append (acks=all) → fold the appended events into the
casebook, under a per-complaint lock so two requests for one complaint cannot both pass a
check the first one's event would have failed.

Idempotency-Key: the event id is derived from (caller, key, complaint, action), so a retry is
recognised from the log itself (the casebook has applied that id), also after a restart or on
another replica, and answers what the first request answered without appending anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redress_events import Envelope, EventData
from redress_events.envelope import REDRESS_NAMESPACE
from redress_kafka.producer import EventProducer
from redress_observability.metrics import EVENTS_PUBLISHED

from redress_recovery.casebook import Casebook
from redress_recovery.domain import AnyCommand, decide
from redress_recovery.policy import RecoveryPolicy


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


class NotCaughtUp(Exception):
    """The casebook has not read the log to its end yet; answering now could be wrong."""


def keyed_id(caller: str, key: str, complaint_id: uuid.UUID, action: str, what: str) -> uuid.UUID:
    return uuid.uuid5(REDRESS_NAMESPACE, f"recovery:{what}:{caller}:{key}:{complaint_id}:{action}")


def fingerprint(canonical_body: bytes) -> str:
    return hashlib.sha256(canonical_body).hexdigest()


class RequestFingerprints:
    """Remembers which body each Idempotency-Key came with, to refuse a key reused for another
    request. In memory (bounded, expiring): replay detection itself comes from the log."""

    def __init__(self, *, ttl_s: float, max_keys: int) -> None:
        self._ttl_s = ttl_s
        self._max_keys = max_keys
        self._seen: OrderedDict[uuid.UUID, tuple[str, float]] = OrderedDict()
        # Events of attempts not known to be written (no ack in time, or the client went away).
        self._unconfirmed: OrderedDict[uuid.UUID, tuple[list[Any], float]] = OrderedDict()

    def check(self, request_id: uuid.UUID, body: str) -> None:
        stored = self._seen.get(request_id)
        if stored is None or time.monotonic() - stored[1] > self._ttl_s:
            return
        if stored[0] != body:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request body"
            )

    def remember(self, request_id: uuid.UUID, body: str) -> None:
        self._unconfirmed.pop(request_id, None)
        self._remember(request_id, body)

    def _remember(self, request_id: uuid.UUID, body: str) -> None:
        self._seen[request_id] = (body, time.monotonic())
        self._seen.move_to_end(request_id)
        while len(self._seen) > self._max_keys:
            self._seen.popitem(last=False)

    def unconfirmed(self, request_id: uuid.UUID) -> list[Any] | None:
        """The events an earlier attempt of this request sent without learning whether they
        were written: a retry sends them again as they are (None: no such attempt)."""
        held = self._unconfirmed.get(request_id)
        if held is None or time.monotonic() - held[1] > self._ttl_s:
            return None
        return held[0]

    def remember_unconfirmed(self, request_id: uuid.UUID, body: str, events: list[Any]) -> None:
        self._remember(request_id, body)  # another body under this key is refused from now on
        self._unconfirmed[request_id] = (events, time.monotonic())
        self._unconfirmed.move_to_end(request_id)
        while len(self._unconfirmed) > self._max_keys:
            self._unconfirmed.popitem(last=False)


class ComplaintLocks:
    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}

    def lock(self, complaint_id: uuid.UUID) -> asyncio.Lock:
        return self._locks.setdefault(complaint_id, asyncio.Lock())

    def release(self, complaint_id: uuid.UUID) -> None:
        lock = self._locks.get(complaint_id)
        if lock is not None and not lock.locked():
            self._locks.pop(complaint_id, None)


@dataclass(frozen=True)
class CaseWork:
    """Everything a command needs besides the command: built once in the composition root."""

    casebook: Casebook
    producer: EventProducer
    policy: RecoveryPolicy
    fingerprints: RequestFingerprints
    locks: ComplaintLocks
    source: str
    clock: Callable[[], datetime]
    is_caught_up: Callable[[], bool]


@dataclass(frozen=True)
class Done:
    event_ids: tuple[uuid.UUID, ...]
    replayed: bool


async def carry_out(
    *,
    command: AnyCommand,
    action: str,
    caller: str,
    idempotency_key: str | None,
    body_fingerprint: str,
    work: CaseWork,
) -> Done:
    """Append the events `command` causes and return once the broker acknowledged them.

    Raises CommandRejected (nothing appended), IdempotencyConflict, NotCaughtUp or
    BrokerUnavailable (nothing reported as done)."""
    if not work.is_caught_up():
        raise NotCaughtUp("recovery is still reading the log")
    complaint_id = command.complaint_id
    first_id = (
        keyed_id(caller, idempotency_key, complaint_id, action, "event")
        if idempotency_key is not None
        else uuid.uuid4()
    )
    async with work.locks.lock(complaint_id):
        if idempotency_key is not None:
            work.fingerprints.check(first_id, body_fingerprint)
            if work.casebook.has_applied(first_id):
                return Done((first_id,), replayed=True)
        # A retry of an attempt whose outcome is unknown sends that attempt's very events
        # again (decided then, stamped then): should both land, each event is written twice
        # byte for byte, never in two versions.
        envelopes = work.fingerprints.unconfirmed(first_id) if idempotency_key is not None else None
        if envelopes is None:
            events = decide(
                work.casebook.get(complaint_id), command, policy=work.policy, now=work.clock()
            )
            envelopes = [
                _envelope(data, complaint_id, first_id, index, work.source)
                for index, data in enumerate(events)
            ]
        try:
            await work.producer.publish_many(envelopes)
        except BaseException:
            if idempotency_key is not None:
                work.fingerprints.remember_unconfirmed(first_id, body_fingerprint, envelopes)
            raise
        for envelope in envelopes:
            work.casebook.apply(envelope)
            EVENTS_PUBLISHED.labels("recovery", envelope.topic.value, envelope.type).inc()
        if idempotency_key is not None:
            work.fingerprints.remember(first_id, body_fingerprint)
    work.locks.release(complaint_id)
    return Done(tuple(e.id for e in envelopes), replayed=False)


def _envelope(
    data: EventData, complaint_id: uuid.UUID, first_id: uuid.UUID, index: int, source: str
) -> Envelope[EventData]:
    event_id = first_id if index == 0 else uuid.uuid5(first_id, str(index))
    return Envelope[EventData].new(
        data, subject=str(complaint_id), source=source, event_id=event_id
    )
