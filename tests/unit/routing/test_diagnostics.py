"""What the routing worker logs about itself, and how it judges its assignment and progress."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

import pytest
from redress_routing.app import unready_topics
from redress_routing.diagnostics import (
    AgentRuns,
    AssignmentWatch,
    ConnectionWatch,
    RepeatFilter,
    StallWatch,
    by_topic,
    logged_agent,
    stack_of,
)


class TP(NamedTuple):
    topic: str
    partition: int


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_partitions_are_summarised_per_topic_without_the_prefix() -> None:
    tps = [TP("t1.redress.routing.decisions", 3), TP("t1.redress.routing.decisions", 1)]
    assert by_topic(tps, "t1.") == {"redress.routing.decisions": [1, 3]}


def test_a_stack_names_frames_and_types_but_not_messages() -> None:
    secret = "jane" + "@example.com"
    try:
        try:
            raise KeyError(secret)
        except KeyError as inner:
            raise RuntimeError(secret) from inner
    except RuntimeError as exc:
        stack = stack_of(exc)
    assert "builtins.KeyError" in stack and "builtins.RuntimeError" in stack
    assert "test_a_stack_names_frames_and_types_but_not_messages" in stack
    assert secret not in stack


async def test_agent_start_crash_and_restart_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    runs = AgentRuns()
    crash = [True]

    @logged_agent(runs)
    async def track_clocks(stream: Any) -> None:
        if crash[0]:
            raise ValueError("boom")

    assert track_clocks.__name__ == "track_clocks"  # faust names the agent after it
    with caplog.at_level(logging.INFO, logger="redress_routing"):
        with pytest.raises(ValueError):
            await track_clocks(None)
        crash[0] = False
        await track_clocks(None)
    assert messages(caplog) == [
        "routing agent started",
        "routing agent crashed",
        "routing agent restarted",
        "routing agent stopped",
    ]
    crashed = caplog.records[1]
    assert crashed.levelno == logging.ERROR and "builtins.ValueError" in crashed.__dict__["stack"]


async def test_a_cancelled_agent_is_logged_and_still_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @logged_agent(AgentRuns())
    async def prioritize(stream: Any) -> None:
        await asyncio.Event().wait()

    with caplog.at_level(logging.INFO, logger="redress_routing"):
        task = asyncio.create_task(prioritize(None))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert messages(caplog) == ["routing agent started", "routing agent cancelled"]


async def test_losing_and_regaining_kafka_is_logged_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = [True, True, False, False, True]

    async def probe() -> bool:
        return answers.pop(0)

    watch = ConnectionWatch(probe)
    with caplog.at_level(logging.INFO, logger="redress_routing"):
        for _ in range(5):
            await watch.check()
    assert messages(caplog) == [
        "routing producer connected to kafka",
        "routing producer lost kafka",
        "routing producer reconnected to kafka",
    ]


def test_a_partition_with_a_backlog_and_no_progress_is_a_stall(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tp = TP("t1.redress.routing.decisions", 1)
    watch = StallWatch(after_s=10, prefix="t1.")
    with caplog.at_level(logging.INFO, logger="redress_routing"):
        assert watch.observe({tp: (4, 6)}, now=0) == []
        assert watch.observe({tp: (4, 7)}, now=9) == []
        assert watch.observe({tp: (4, 7)}, now=10) == [tp]
        assert watch.observe({tp: (4, 7)}, now=20) == [tp]  # still stalled, logged once
        assert watch.observe({tp: (7, 7)}, now=21) == []
    assert messages(caplog) == [
        "routing partition stalled: records waiting, no progress",
        "routing partition moving again",
    ]
    assert caplog.records[0].__dict__["partition"] == "redress.routing.decisions[1]"


def test_an_idle_partition_is_not_a_stall() -> None:
    tp = TP("decisions", 0)
    watch = StallWatch(after_s=1)
    assert watch.observe({tp: (5, 5)}, now=0) == []
    assert watch.observe({tp: (5, 5)}, now=100) == []
    assert watch.observe({tp: (None, 0)}, now=200) == []


def test_a_topic_is_ready_only_when_metadata_shows_it_whole() -> None:
    whole = [{"partition": p, "leader": 1, "error_code": 0} for p in range(6)]
    described = [
        {"topic": "ok", "error_code": 0, "partitions": whole},
        {"topic": "unknown", "error_code": 3, "partitions": []},
        {"topic": "short", "error_code": 0, "partitions": whole[:2]},
        {
            "topic": "leaderless",
            "error_code": 0,
            "partitions": [*whole[:5], {"partition": 5, "leader": -1, "error_code": 5}],
        },
    ]
    names = ["ok", "unknown", "short", "leaderless", "absent"]
    assert unready_topics(described, names) == ["absent", "leaderless", "short", "unknown"]


def test_repeated_library_lines_are_thinned_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr("redress_routing.diagnostics.time.monotonic", lambda: now[0])
    thin = RepeatFilter(["aiokafka"], window_s=10)

    def record(name: str, msg: str = "Unable connect to node with id %s") -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (1,), None)

    assert thin.filter(record("aiokafka"))
    assert not thin.filter(record("aiokafka"))
    assert not thin.filter(record("aiokafka"))
    assert thin.filter(record("aiokafka", "another line"))
    assert thin.filter(record("redress_routing.app"))  # our own lines are never thinned
    assert thin.filter(record("redress_routing.app"))
    now[0] = 11.0
    later = record("aiokafka")
    assert thin.filter(later)
    assert later.__dict__["repeated"] == 2


def test_an_assignment_lacking_a_topic_asks_for_a_rejoin_after_a_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The failure mode of a rebalance that met a just-restarted broker: the assignor skipped
    a topic it did not see, and the agent on it stays idle until the group rejoins."""
    watch = AssignmentWatch(
        ["t1.complaints", "t1.decisions", "t1.by-customer"], prefix="t1.", grace_s=2, every_s=15
    )
    partial = {"t1.complaints", "t1.by-customer"}
    whole = partial | {"t1.decisions"}
    assert watch.gaps(set()) == []  # an idle worker lacks nothing
    assert watch.gaps(whole) == []
    assert watch.gaps(partial) == ["decisions"]
    with caplog.at_level(logging.INFO, logger="redress_routing"):
        assert watch.rejoin_due(partial, now=0) == []  # maybe mid-rebalance: wait a little
        assert watch.rejoin_due(partial, now=2) == ["decisions"]
        assert watch.rejoin_due(partial, now=5) == []  # asked already: give it time
        assert watch.rejoin_due(partial, now=17) == ["decisions"]
        assert watch.rejoin_due(whole, now=18) == []
    assert messages(caplog) == [
        "routing assignment lacks topics; rejoining the group",
        "routing assignment lacks topics; rejoining the group",
        "routing assignment complete again",
    ]
