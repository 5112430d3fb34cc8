"""Fixed-rate complaint load: POST /v1/complaints to intake, then (optionally) drive each
accepted complaint through recovery (acknowledge, propose a remedy, resolve).

Bounded in count and time, loopback only. Every complaint carries its own Idempotency-Key, so a
request that failed in flight (intake killed, broker down) is retried with the same key and can
never create a second complaint: intake derives the complaint id and event id from the key.
The result records, per complaint, what the client was told, which is what the no-loss checker
(`tests/support/checker.py`) holds the system to.

    python -m benchmarks.loadgen --intake http://127.0.0.1:8001 --count 200 --rate 20 \
        [--recovery http://127.0.0.1:8003] [--recovery-share 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tests.support.complaints import random_complaint

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
RETRYABLE_STATUSES = {404, 408, 425, 429, 500, 502, 503, 504}


def require_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise ValueError(f"load is sent to loopback only, not to {url!r}")
    return url.rstrip("/")


@dataclass
class Submission:
    index: int
    idempotency_key: str
    complaint_id: str | None = None
    status: int | None = None
    attempts: int = 0
    first_sent: float | None = None  # time.monotonic() of the first attempt
    accepted_at: float | None = None  # time.monotonic() of the 202
    error: str | None = None
    drive_recovery: bool = False
    acknowledged: bool = False
    remedy_ids: list[str] = field(default_factory=list)
    resolved: bool = False
    recovery_errors: list[str] = field(default_factory=list)

    @property
    def latency_s(self) -> float | None:
        """First attempt to 202, retries included."""
        if self.first_sent is None or self.accepted_at is None:
            return None
        return self.accepted_at - self.first_sent


@dataclass
class LoadResult:
    submissions: list[Submission]
    started: float
    finished: float
    rate: float
    recovery: str  # "driven", or why not

    @property
    def sent(self) -> int:
        return sum(1 for s in self.submissions if s.attempts > 0)

    @property
    def accepted(self) -> dict[str, Submission]:
        """complaint id → submission, for every complaint answered 202."""
        return {s.complaint_id: s for s in self.submissions if s.complaint_id and s.status == 202}

    @property
    def not_accepted(self) -> list[Submission]:
        return [s for s in self.submissions if s.status != 202]

    @property
    def retried(self) -> int:
        return sum(1 for s in self.submissions if s.attempts > 1)

    def summary(self) -> dict[str, Any]:
        latencies = sorted(s.latency_s for s in self.submissions if s.latency_s is not None)
        return {
            "sent": self.sent,
            "accepted": len(self.accepted),
            "not_accepted": len(self.not_accepted),
            "retried": self.retried,
            "duration_s": round(self.finished - self.started, 3),
            "target_rate": self.rate,
            "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
            "recovery": self.recovery,
            "acknowledged": sum(s.acknowledged for s in self.submissions),
            "remedies": sum(len(s.remedy_ids) for s in self.submissions),
            "resolved": sum(s.resolved for s in self.submissions),
            "errors": sorted({s.error for s in self.submissions if s.error})[:10],
        }


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


class LoadGenerator:
    """Sends `count` complaints at `rate` per second (open loop, at most `max_in_flight`
    outstanding), retrying each with its Idempotency-Key for up to `retry_for_s` seconds."""

    def __init__(
        self,
        intake_url: str,
        *,
        count: int,
        rate: float,
        headers: Mapping[str, str] | None = None,
        recovery_url: str | None = None,
        recovery_share: float = 0.5,
        seed: int = 7,
        retry_for_s: float = 90.0,
        max_in_flight: int = 256,
        request_timeout_s: float = 10.0,
        run_id: str | None = None,
    ) -> None:
        if count <= 0 or rate <= 0:
            raise ValueError("count and rate must be positive")
        self.intake_url = require_loopback(intake_url)
        self.recovery_url = require_loopback(recovery_url) if recovery_url else None
        self.count = count
        self.rate = rate
        self.headers = dict(headers or {})
        self.recovery_share = recovery_share
        self.rng = random.Random(seed)
        self.retry_for_s = retry_for_s
        self.max_in_flight = max_in_flight
        self.timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.submissions = [
            Submission(
                index=i,
                idempotency_key=f"load-{self.run_id}-{i}",
                drive_recovery=self.recovery_url is not None and self.rng.random() < recovery_share,
            )
            for i in range(count)
        ]
        self.bodies = [random_complaint(self.rng) for _ in range(count)]
        self.progress = 0  # submissions whose first attempt has been made
        self._milestones: dict[int, asyncio.Event] = {}

    def milestone(self, sent: int) -> asyncio.Event:
        """An event set once `sent` submissions have been made (faults are timed by it)."""
        event = self._milestones.setdefault(sent, asyncio.Event())
        if self.progress >= sent:
            event.set()
        return event

    async def run(self) -> LoadResult:
        connector = aiohttp.TCPConnector(limit=self.max_in_flight, force_close=False)
        async with aiohttp.ClientSession(
            connector=connector, headers=self.headers, timeout=self.timeout
        ) as session:
            started = time.monotonic()
            in_flight = asyncio.Semaphore(self.max_in_flight)
            tasks: list[asyncio.Task[None]] = []
            for index, submission in enumerate(self.submissions):
                due = started + index / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await in_flight.acquire()
                self.progress = index + 1
                for threshold, event in self._milestones.items():
                    if threshold <= self.progress:
                        event.set()
                tasks.append(asyncio.create_task(self._one(session, submission, in_flight)))
            await asyncio.gather(*tasks)
            finished = time.monotonic()
        recovery = "driven" if self.recovery_url else "not driven (no recovery URL given)"
        return LoadResult(self.submissions, started, finished, self.rate, recovery)

    async def _one(
        self, session: aiohttp.ClientSession, submission: Submission, in_flight: asyncio.Semaphore
    ) -> None:
        try:
            await self._submit(session, submission)
        finally:
            in_flight.release()
        if submission.status == 202 and submission.drive_recovery:
            await self._drive_recovery(session, submission)

    async def _submit(self, session: aiohttp.ClientSession, submission: Submission) -> None:
        body = self.bodies[submission.index]
        headers = {"Idempotency-Key": submission.idempotency_key}
        submission.first_sent = time.monotonic()
        deadline = submission.first_sent + self.retry_for_s
        backoff = 0.1
        while True:
            submission.attempts += 1
            try:
                async with session.post(
                    f"{self.intake_url}/v1/complaints", json=body, headers=headers
                ) as response:
                    submission.status = response.status
                    payload = await response.read()
                    if response.status == 202:
                        submission.accepted_at = time.monotonic()
                        submission.complaint_id = json.loads(payload)["complaint_id"]
                        submission.error = None
                        return
                    submission.error = f"HTTP {response.status}: {payload[:200]!r}"
                    if response.status not in RETRYABLE_STATUSES:
                        return  # 4xx: the load itself is wrong; the checker reports it
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                submission.status = None
                submission.error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + backoff > deadline:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _drive_recovery(self, session: aiohttp.ClientSession, submission: Submission) -> None:
        base = f"{self.recovery_url}/v1/complaints/{submission.complaint_id}"
        key = submission.idempotency_key
        ok, _ = await self._action(session, submission, f"{base}/acknowledge", {}, f"{key}-ack")
        submission.acknowledged = ok
        if not ok:
            return
        ok, payload = await self._action(
            session,
            submission,
            f"{base}/remedies",
            {"type": "replacement", "failure_type": "product_defect"},
            f"{key}-remedy",
        )
        if ok and payload and "remedy_id" in payload:
            submission.remedy_ids.append(str(payload["remedy_id"]))
        if not ok:
            return
        ok, _ = await self._action(
            session,
            submission,
            f"{base}/resolution",
            {"outcome": "upheld", "reason": "Replacement sent under load test."},
            f"{key}-resolve",
        )
        submission.resolved = ok

    async def _action(
        self,
        session: aiohttp.ClientSession,
        submission: Submission,
        url: str,
        body: dict[str, Any],
        idempotency_key: str,
    ) -> tuple[bool, dict[str, Any] | None]:
        """POST until 2xx; a 409 after an attempt whose answer was lost counts as done (the
        checker then proves the event is there exactly once)."""
        deadline = time.monotonic() + self.retry_for_s
        backoff = 0.2
        lost_answer = False
        while True:
            try:
                async with session.post(
                    url, json=body, headers={"Idempotency-Key": idempotency_key}
                ) as response:
                    payload = await response.read()
                    if 200 <= response.status < 300:
                        return True, json.loads(payload) if payload else None
                    if response.status == 409 and lost_answer:
                        return True, None
                    error = f"{url.rsplit('/', 1)[-1]}: HTTP {response.status} {payload[:200]!r}"
                    if response.status not in RETRYABLE_STATUSES:
                        submission.recovery_errors.append(error)
                        return False, None
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                lost_answer = True
                error = f"{url.rsplit('/', 1)[-1]}: {type(exc).__name__}: {exc}"
            if time.monotonic() + backoff > deadline:
                submission.recovery_errors.append(error)
                return False, None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


async def run_load(intake_url: str, **kwargs: Any) -> LoadResult:
    return await LoadGenerator(intake_url, **kwargs).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("--intake", required=True, help="intake base URL (loopback)")
    parser.add_argument("--recovery", help="recovery base URL (loopback); omit to skip")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="complaints per second")
    parser.add_argument("--recovery-share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from tests.support.auth import auth_headers

    result = asyncio.run(
        run_load(
            args.intake,
            count=args.count,
            rate=args.rate,
            headers=auth_headers(),
            recovery_url=args.recovery,
            recovery_share=args.recovery_share,
            seed=args.seed,
        )
    )
    print(json.dumps(result.summary(), indent=2))
    return 0 if not result.not_accepted else 1


if __name__ == "__main__":
    sys.exit(main())
