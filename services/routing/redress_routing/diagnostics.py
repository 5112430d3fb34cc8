"""What the routing worker says about itself: rebalances, agents, Kafka connectivity, progress.

faust, mode and aiokafka stay at WARNING (they are loud at INFO); the events an operator needs to
explain a stuck or slow worker are logged here, at INFO, on routing's own logger:

- partitions assigned / revoked (per topic, without the environment prefix);
- table recovery completed (after which the worker is ready);
- agent started / stopped / crashed (with the stack), and restarted by faust's supervisor;
- the publishing producer losing and regaining Kafka, and a publish that needed retries;
- a partition with records waiting that the worker has not moved on for a while (a stall).

Exception *messages* may quote a complaint (personal data), so tracebacks logged here carry the
stack and the exception types only (`stack_of`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("redress_routing.diagnostics")


def stack_of(exc: BaseException) -> str:
    """The traceback of `exc` (and its causes) with the frames and exception types but without
    the exception messages, which may quote personal data."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        te = traceback.TracebackException.from_exception(current, lookup_lines=True)
        frames = "".join(te.stack.format())
        name = f"{type(current).__module__}.{type(current).__qualname__}"
        parts.append(f"Traceback (most recent call last):\n{frames}{name}\n")
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return "\nThe above was caused by or raised while handling:\n\n".join(reversed(parts))


def log_exception(
    logger: logging.Logger,
    msg: str,
    exc: BaseException,
    *,
    level: int = logging.ERROR,
    **extra: Any,
) -> None:
    logger.log(
        level, msg, extra={"error_type": type(exc).__name__, "stack": stack_of(exc), **extra}
    )


def by_topic(tps: Iterable[Any], prefix: str = "") -> dict[str, list[int]]:
    """{topic without the environment prefix: sorted partitions} for a log line."""
    grouped: dict[str, list[int]] = {}
    for tp in tps:
        grouped.setdefault(str(tp.topic).removeprefix(prefix), []).append(int(tp.partition))
    return {topic: sorted(parts) for topic, parts in sorted(grouped.items())}


# ---------------------------------------------------------------------- agents


@dataclass
class AgentRuns:
    """How often each agent's body has been (re)started by faust's supervisor."""

    runs: dict[str, int] = field(default_factory=dict)

    def started(self, name: str) -> int:
        self.runs[name] = self.runs.get(name, 0) + 1
        return self.runs[name]


AgentBody = Callable[[Any], Coroutine[Any, Any, None]]


def logged_agent(runs: AgentRuns) -> Callable[[AgentBody], AgentBody]:
    """Decorate an agent body so that every start, restart, stop and crash is logged.

    A crash is re-raised: faust's supervisor restarts the agent (logged as a restart when the
    new body starts). Routing's agents do not let a processing error escape (they retry or
    dead-letter), so a crash here is a bug or a cancellation and is always worth a line. The
    wrapper keeps the body's name, so faust names the agent as before.
    """

    def decorate(body: AgentBody) -> AgentBody:
        name = body.__name__

        @functools.wraps(body)
        async def agent(stream: Any) -> None:
            run = runs.started(name)
            if run == 1:
                log.info("routing agent started", extra={"agent": name})
            else:
                log.warning("routing agent restarted", extra={"agent": name, "run": run})
            try:
                await body(stream)
            except asyncio.CancelledError:
                log.info("routing agent cancelled", extra={"agent": name, "run": run})
                raise
            except BaseException as exc:
                log_exception(log, "routing agent crashed", exc, agent=name, run=run)
                raise
            else:
                log.info("routing agent stopped", extra={"agent": name, "run": run})

        return agent

    return decorate


# ---------------------------------------------------------------------- kafka connectivity


class ConnectionWatch:
    """Logs when the publishing producer loses Kafka and when it has it again."""

    def __init__(self, probe: Callable[[], Awaitable[bool]]) -> None:
        self._probe = probe
        self.connected: bool | None = None
        self.lost_at: float | None = None

    async def check(self) -> bool:
        ok = await self._probe()
        if ok and self.connected is not True:
            if self.connected is None:
                log.info("routing producer connected to kafka")
            else:
                away = time.monotonic() - (self.lost_at or time.monotonic())
                log.info(
                    "routing producer reconnected to kafka",
                    extra={"disconnected_s": round(away, 1)},
                )
            self.lost_at = None
        elif not ok and self.connected is not False:
            self.lost_at = time.monotonic()
            log.warning("routing producer lost kafka")
        self.connected = ok
        return ok


# ---------------------------------------------------------------------- consumer progress


@dataclass
class PartitionProgress:
    read: int | None
    highwater: int
    since: float
    reported: bool = False


class StallWatch:
    """Notices a partition with records waiting on which the worker has not moved for a while.

    `positions()` gives {tp: (next offset to process or None, highwater)}. A partition is
    stalled when it has a backlog and its position has not changed for `after_s` seconds
    (logged once per stall; recovery is logged too). `stalled()` returns the stalled ones.
    """

    def __init__(self, after_s: float, prefix: str = "") -> None:
        self.after_s = after_s
        self.prefix = prefix
        self._progress: dict[Any, PartitionProgress] = {}

    def observe(self, positions: dict[Any, tuple[int | None, int]], now: float) -> list[Any]:
        stalled: list[Any] = []
        for tp in list(self._progress):
            if tp not in positions:
                del self._progress[tp]
        for tp, (read, highwater) in positions.items():
            seen = self._progress.get(tp)
            backlog = highwater > (read or 0)
            if seen is None or seen.read != read or not backlog:
                if seen is not None and seen.reported:
                    log.info(
                        "routing partition moving again",
                        extra={"partition": self._name(tp), "offset": read},
                    )
                self._progress[tp] = PartitionProgress(read, highwater, now)
                continue
            seen.highwater = highwater
            if now - seen.since >= self.after_s:
                stalled.append(tp)
                if not seen.reported:
                    seen.reported = True
                    log.warning(
                        "routing partition stalled: records waiting, no progress",
                        extra={
                            "partition": self._name(tp),
                            "offset": read,
                            "highwater": highwater,
                            "stalled_s": round(now - seen.since, 1),
                        },
                    )
        return stalled

    def _name(self, tp: Any) -> str:
        return f"{str(tp.topic).removeprefix(self.prefix)}[{tp.partition}]"


# ---------------------------------------------------------------------- library log volume


class RepeatFilter(logging.Filter):
    """Lets one of a run of identical library log lines through per `window_s`.

    aiokafka logs every failed connection attempt (hundreds a second while the broker is
    away). The first line of a run is kept; the next one after the window carries how many were
    suppressed (`repeated`). Only loggers under `prefixes` are thinned; routing's own are not.
    """

    def __init__(self, prefixes: Iterable[str], window_s: float = 10.0) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.window_s = window_s
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not any(name == p or name.startswith(p + ".") for p in self.prefixes):
            return True
        key = (name, record.levelno, str(record.msg))
        now = time.monotonic()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.repeated = seen[1]
        self._last[key] = (now, 0)
        if len(self._last) > 1000:
            self._last.clear()
        return True


# ---------------------------------------------------------------------- assignment


class AssignmentWatch:
    """Notices an assignment that lacks a consumed topic, and says when to rejoin the group.

    faust's assignor skips a topic missing from the metadata it has at a rebalance ("Ignoring
    missing topic"), e.g. while a just-restarted broker is still loading; the agent on that
    topic then receives nothing until the next rebalance. All of routing's topics have the same
    partition count, so they are co-partitioned: a worker given any partition is given that
    partition of every consumed topic, and a non-empty assignment lacking one is incomplete.
    """

    def __init__(
        self, expected: Iterable[str], *, prefix: str = "", grace_s: float, every_s: float
    ) -> None:
        self.expected = frozenset(expected)
        self.prefix = prefix
        self.grace_s = grace_s
        self.every_s = every_s
        self.since: float | None = None
        self.last_rejoin: float | None = None

    def gaps(self, assigned_topics: Iterable[str]) -> list[str]:
        assigned = set(assigned_topics)
        if not assigned:
            return []  # an idle worker (more workers than partitions) lacks nothing
        return sorted(t.removeprefix(self.prefix) for t in self.expected - assigned)

    def rejoin_due(self, assigned_topics: Iterable[str], now: float) -> list[str]:
        """The missing topics when a rejoin should be asked for now, else []."""
        gaps = self.gaps(assigned_topics)
        if not gaps:
            if self.since is not None:
                log.info("routing assignment complete again")
            self.since = None
            return []
        if self.since is None:
            self.since = now
        if now - self.since < self.grace_s:
            return []
        if self.last_rejoin is not None and now - self.last_rejoin < self.every_s:
            return []
        self.last_rejoin = now
        log.warning(
            "routing assignment lacks topics; rejoining the group",
            extra={"missing_topics": gaps, "since_s": round(now - self.since, 1)},
        )
        return gaps
