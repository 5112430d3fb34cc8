"""Which scope each endpoint needs. Pure: a table and a lookup, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass

COMPLAINTS_WRITE = "complaints:write"
CASES_WRITE = "cases:write"
REPORTS_READ = "reports:read"
PII_READ = "pii:read"
AUDIT_READ = "audit:read"
ALL_SCOPES: tuple[str, ...] = (COMPLAINTS_WRITE, CASES_WRITE, REPORTS_READ, PII_READ, AUDIT_READ)

# Reachable without a token: probes, metrics scrapes and the API documentation.
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
)


@dataclass(frozen=True)
class ScopeRule:
    """Requests whose path is `prefix` or below it need every scope in `scopes`."""

    prefix: str
    scopes: frozenset[str]

    def matches(self, path: str) -> bool:
        if self.prefix == "/":
            return True
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")


# First matching rule wins. Every path not open needs a valid token, even one that does not
# exist (a 404 is only answered to callers who may know).
SERVICE_RULES: dict[str, tuple[ScopeRule, ...]] = {
    "intake": (ScopeRule("/", frozenset({COMPLAINTS_WRITE})),),
    "recovery": (ScopeRule("/", frozenset({CASES_WRITE})),),
    "reporting": (
        ScopeRule("/v1/audit", frozenset({AUDIT_READ})),
        ScopeRule("/", frozenset({REPORTS_READ})),
    ),
}


class UnknownService(ValueError):
    """A service installed auth without rules in SERVICE_RULES (fail closed: refuse to start)."""


def check_service(service: str) -> None:
    if service not in SERVICE_RULES:
        raise UnknownService(
            f"no access rules for service {service!r}: add them to redress_auth.policy"
        )


def required_scopes(service: str, path: str) -> frozenset[str] | None:
    """Scopes needed for `path` of `service`; None when the path is open to anyone."""
    if path in OPEN_PATHS:
        return None
    check_service(service)
    for rule in SERVICE_RULES[service]:
        if rule.matches(path):
            return rule.scopes
    return frozenset()
