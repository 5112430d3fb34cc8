"""`python -m redress_recovery`: one uvicorn process per container (scale with replicas)."""

from __future__ import annotations

import sys

import uvicorn
from redress_config import EXIT_CONFIG_ERROR, load_settings
from redress_config.allocator import keep_large_buffers_off_the_heap
from redress_config.lifecycle import exit_zero_after_sigterm
from redress_observability.logs import configure_logging

from redress_recovery.app import create_app
from redress_recovery.policy import PolicyError
from redress_recovery.settings import RecoverySettings


def main() -> None:
    keep_large_buffers_off_the_heap()  # first, before any Kafka buffer: see its module
    settings = load_settings(RecoverySettings, service="recovery")
    configure_logging("recovery", settings.log_level)
    try:
        app = create_app(settings)
    except PolicyError as exc:
        # Same contract as a bad environment variable: one line saying what, exit status 2.
        print(f"recovery: refusing to start: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    exit_zero_after_sigterm()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
