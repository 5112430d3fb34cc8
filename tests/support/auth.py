"""Credentials tests use to call the services. Every test calls HTTP through
`ServiceProcess.client()`, which sends these headers, so access control can be switched on
for the whole suite in one place."""

from __future__ import annotations

ALL_SCOPES = ("complaints:write", "cases:write", "reports:read", "pii:read", "audit:read")


def auth_headers(
    scopes: tuple[str, ...] = ALL_SCOPES, subject: str = "test-suite"
) -> dict[str, str]:
    """Authorization headers for a caller holding `scopes` (none needed while auth is off)."""
    return {}


def auth_env() -> dict[str, str]:
    """Environment a service process needs to verify the suite's tokens."""
    return {}
