"""Access control for Redress's HTTP services: signed JWT bearer tokens (issuer, audience and
expiry checked, keys from configuration or a JWKS file), scopes per service, a per-token rate
limit. `install_auth` is called by `redress_observability.http.install_common_http`, so every
HTTP service gets it; handlers read `request.state.caller` and `request.state.scopes`."""

from redress_auth.policy import (
    ALL_SCOPES,
    AUDIT_READ,
    CASES_WRITE,
    COMPLAINTS_WRITE,
    OPEN_PATHS,
    PII_READ,
    REPORTS_READ,
    required_scopes,
)
from redress_auth.settings import AuthSettings
from redress_auth.tokens import AuthError, KeyRing, Principal, TokenVerifier, mint_token

__all__ = [
    "ALL_SCOPES",
    "AUDIT_READ",
    "CASES_WRITE",
    "COMPLAINTS_WRITE",
    "OPEN_PATHS",
    "PII_READ",
    "REPORTS_READ",
    "AuthError",
    "AuthSettings",
    "KeyRing",
    "Principal",
    "TokenVerifier",
    "has_scope",
    "mint_token",
    "required_scopes",
]


def has_scope(request: object, scope: str) -> bool:
    """True when the authenticated caller of `request` (a Starlette Request) holds `scope`,
    e.g. `has_scope(request, PII_READ)` before returning personal data."""
    state = getattr(request, "state", None)
    scopes = getattr(state, "scopes", None) or set()
    return scope in scopes
