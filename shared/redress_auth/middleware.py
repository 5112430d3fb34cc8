"""The HTTP adapter of access control: a middleware that answers 401/403/429 or lets the
request through with `request.state.caller` and `request.state.scopes` set, and the matching
security declarations in the service's OpenAPI document."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from redress_auth.policy import check_service, required_scopes
from redress_auth.ratelimit import RateLimiter
from redress_auth.settings import AuthSettings
from redress_auth.tokens import AuthError, TokenVerifier

log = logging.getLogger(__name__)

AUTH_DENIED = Counter(
    "redress_auth_denied_total",
    "Requests refused by access control, by status and reason (never by caller)",
    ["service", "status", "reason"],
)

SECURITY_SCHEME = "bearerAuth"


@dataclass(frozen=True)
class Allowed:
    caller: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class Denied:
    status: int
    error: str
    reason: str
    detail: str
    headers: dict[str, str]
    required_scopes: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.required_scopes:
            body["required_scopes"] = list(self.required_scopes)
        return body


class AccessGate:
    """Decides one request from its path and Authorization header. No I/O."""

    def __init__(
        self,
        *,
        service: str,
        verifier: TokenVerifier,
        limiter: RateLimiter,
        enabled: bool = True,
    ) -> None:
        check_service(service)
        self.service = service
        self._verifier = verifier
        self._limiter = limiter
        self._enabled = enabled

    def check(self, path: str, authorization: str | None) -> Allowed | Denied | None:
        """None: an open path, no caller. Allowed: a verified caller with the right scope."""
        needed = required_scopes(self.service, path)
        if needed is None:
            return None
        if not self._enabled:
            return Allowed("anonymous", frozenset())
        scheme, _, token = (authorization or "").strip().partition(" ")
        if not authorization:
            return _unauthorized("missing_token", "this endpoint needs a bearer token")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("bad_scheme", "the Authorization header must be 'Bearer <token>'")
        try:
            principal = self._verifier.verify(token.strip())
        except AuthError as exc:
            return _unauthorized(exc.reason, exc.detail)
        missing = needed - principal.scopes
        if missing:
            names = " ".join(sorted(needed))
            return Denied(
                status=403,
                error="forbidden",
                reason="insufficient_scope",
                detail=f"this endpoint needs scope {names}; the token has "
                f"{' '.join(sorted(principal.scopes)) or 'no scopes'}",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{names}"'},
                required_scopes=tuple(sorted(needed)),
            )
        wait = self._limiter.acquire(principal.token_key)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            return Denied(
                status=429,
                error="rate_limited",
                reason="rate_limited",
                detail=f"too many requests with this token; retry after {retry_after}s",
                headers={"Retry-After": str(retry_after)},
            )
        return Allowed(principal.subject, principal.scopes)


def _unauthorized(reason: str, detail: str) -> Denied:
    challenge = 'Bearer realm="redress"'
    if reason != "missing_token":
        challenge += ', error="invalid_token"'
    return Denied(
        status=401,
        error="unauthorized",
        reason=reason,
        detail=detail,
        headers={"WWW-Authenticate": challenge},
    )


def gate_from_settings(service: str, settings: AuthSettings) -> AccessGate:
    verifier = TokenVerifier(
        keys=settings.key_ring(),
        issuer=settings.issuer,
        audience=settings.audience,
        leeway_s=settings.leeway_s,
        cache_size=settings.token_cache_size,
    )
    if not settings.enabled:
        log.warning("access control is OFF (REDRESS_AUTH_ENABLED=false)", extra={"svc": service})
    elif not verifier.has_keys:
        log.error(
            "no token verification key configured: every protected request is refused",
            extra={"svc": service},
        )
    limiter = RateLimiter(
        rate_per_s=settings.rate_limit_per_s,
        burst=settings.rate_limit_burst,
        max_keys=settings.rate_limit_max_tracked,
    )
    return AccessGate(service=service, verifier=verifier, limiter=limiter, enabled=settings.enabled)


def install_auth(app: FastAPI, *, service: str, settings: AuthSettings | None = None) -> None:
    """Require a token with the service's scope on every path but the open ones."""
    from redress_config import load_settings

    gate = gate_from_settings(service, settings or load_settings(AuthSettings, service=service))
    app.state.access_gate = gate
    app.add_middleware(AccessControl, gate=gate)

    _declare_security(app, service)


def _authorization(scope: Any) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


def _request_path(scope: Any) -> str:
    """The path as `Request.url.path` gives it (the characters a URL cannot hold escaped)."""
    path: str = scope["path"]
    if "?" in path or "#" in path or "\\" in path:
        path = path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    return path


class AccessControl:
    """The gate as pure ASGI middleware (no task or stream per request): answers 401/403/429
    itself, or sets `request.state.caller` and `request.state.scopes` and passes the request on."""

    def __init__(self, app: Any, *, gate: AccessGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decision = self.gate.check(_request_path(scope), _authorization(scope))
        if isinstance(decision, Denied):
            AUTH_DENIED.labels(self.gate.service, str(decision.status), decision.reason).inc()
            response = JSONResponse(
                decision.body(), status_code=decision.status, headers=decision.headers
            )
            await response(scope, receive, send)
            return
        if isinstance(decision, Allowed):
            state = scope.setdefault("state", {})
            state["caller"] = decision.caller
            state["scopes"] = set(decision.scopes)
        await self.app(scope, receive, send)


_PROBLEM = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "string"},
        "required_scopes": {"type": "array", "items": {"type": "string"}},
    },
}
_VALIDATION_PROBLEM = {
    "type": "object",
    "required": ["error", "detail", "errors"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "loc", "msg", "type"],
                "properties": {
                    "field": {"type": "string"},
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _document_probe(path: str, responses: dict[str, Any]) -> None:
    """The probes' real answers: /metrics is Prometheus text, /readyz may say 503."""
    if path == "/metrics" and "200" in responses:
        responses["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    if path == "/readyz":
        responses.setdefault(
            "503",
            {
                "description": "Not ready (Kafka unreachable or the service is catching up)",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
        )


def _declare_security(app: FastAPI, service: str) -> None:
    """Make the OpenAPI document tell the truth: bearer security, the scope each operation
    needs, and the 401/403/413/422/429 answers the shared middleware gives."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Signed JWT; issuer, audience and expiry are checked. "
            "Scopes are in the space-separated `scope` claim.",
        }
        schemas = components.setdefault("schemas", {})
        schemas.setdefault("Problem", _PROBLEM)
        schemas["ValidationProblem"] = _VALIDATION_PROBLEM
        for path, operations in schema.get("paths", {}).items():
            needed = required_scopes(service, path)
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "Validation error, one entry per field",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ValidationProblem"}
                            }
                        },
                    }
                _document_probe(path, responses)
                if "requestBody" in operation:
                    responses.setdefault(
                        "400",
                        {
                            "description": "The body is not valid JSON",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["detail"],
                                        "properties": {"detail": {"type": "string"}},
                                    }
                                }
                            },
                        },
                    )
                if needed is None:
                    operation["security"] = []
                    continue
                operation["security"] = [{SECURITY_SCHEME: []}]
                operation["x-required-scopes"] = sorted(needed)
                responses.setdefault("401", _problem("Missing or invalid bearer token"))
                responses.setdefault(
                    "403", _problem(f"The token lacks scope {' '.join(sorted(needed))}")
                )
                responses.setdefault(
                    "429",
                    _problem(
                        "Rate limit of this token exceeded",
                        {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
                    ),
                )
                if method in ("post", "put", "patch"):
                    responses.setdefault("413", _problem("Request body over 1 MiB"))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
