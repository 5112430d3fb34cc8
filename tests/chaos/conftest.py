"""Fault-injection suite: `--run-slow` runs the slow scenarios (`make chaos`); without it they
are skipped and only the reduced case (part of `make test`) runs. With `--run-slow`, the rows
every scenario measured are written to docs/RELIABILITY.md at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.chaos.harness import write_reliability_doc

RESULTS: list[dict[str, Any]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="run tests marked slow (the full fault-injection suite) and write RELIABILITY.md",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow", default=False):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make chaos)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chaos_results() -> Iterator[list[dict[str, Any]]]:
    yield RESULTS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if RESULTS and session.config.getoption("--run-slow", default=False):
        write_reliability_doc(RESULTS)
