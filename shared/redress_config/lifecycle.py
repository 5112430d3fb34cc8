"""Process life under an orchestrator: SIGTERM ends a service with exit status 0.

uvicorn handles SIGTERM gracefully (stops accepting, finishes in-flight requests, runs the
lifespan shutdown that flushes producers and leaves consumer groups) and then re-raises the
signal it caught, so that the process dies of it: exit status 143, which Kubernetes and
docker compose report as an error. Installed before `uvicorn.run`, this handler turns that
re-raised SIGTERM into a clean exit 0. A SIGTERM before uvicorn takes over (while the app is
being built) exits 0 at once: nothing has been accepted yet.
"""

from __future__ import annotations

import signal
from types import FrameType


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_zero_after_sigterm() -> None:
    """Call in the main thread right before `uvicorn.run(...)`."""
    signal.signal(signal.SIGTERM, _exit_zero)
