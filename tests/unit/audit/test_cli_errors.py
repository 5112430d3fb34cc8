"""`redress audit` refuses clearly: one line on stderr, exit code 2, no Kafka needed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from redress_cli.main import app
from typer.testing import CliRunner

COMPLAINT = "0c0ffee0-0000-4000-8000-000000000001"


def run(args: list[str], **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", *args], env=env)
    return result.exit_code, result.stderr


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (a hung broker)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"127.0.0.1:{server.getsockname()[1]}"


def refused_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # closed again: connections are refused


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "not-a-uuid"], "'not-a-uuid' is not a complaint id"),
        (["as-of", COMPLAINT, "last tuesday"], "'last tuesday' is not an ISO 8601 timestamp"),
        (["as-of", COMPLAINT, "2026-13-01T00:00:00Z"], "is not an ISO 8601 timestamp"),
        (["integrity", "--complaint", "42"], "'42' is not a complaint id"),
    ],
)
def test_bad_input_is_refused_before_any_connection(args: list[str], message: str) -> None:
    code, err = run(args, REDRESS_KAFKA_BOOTSTRAP_SERVERS=refused_address())
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["history", COMPLAINT], ["integrity"]])
def test_a_refusing_broker_is_named(command: list[str]) -> None:
    address = refused_address()
    code, err = run([*command, "--timeout", "5"], REDRESS_KAFKA_BOOTSTRAP_SERVERS=address)
    assert code == 2
    assert err.strip().splitlines() == [
        f"redress audit: cannot reach Kafka at {address} within 5s (KafkaConnectionError)"
    ]


def test_a_hung_broker_times_out_with_the_timeout_in_the_message(silent_broker: str) -> None:
    code, err = run(
        ["as-of", COMPLAINT, "2026-03-02T10:00:00Z", "--timeout", "1"],
        REDRESS_KAFKA_BOOTSTRAP_SERVERS=silent_broker,
    )
    assert code == 2
    assert err.strip().splitlines() == [
        f"redress audit: cannot reach Kafka at {silent_broker} within 1s (TimeoutError)"
    ]
