"""Credentials tests use to call the services. Every test calls HTTP through
`ServiceProcess.client()`, which sends these headers, and every service process gets
`auth_env()`, so access control is on for the whole suite, verified with real signatures.

The suite signs with its own EC key pair, made once per test process; services trust only its
public half. Importing this module also points the test process's own environment at that key
(unless already set), so an app built in-process with `create_app()` trusts the same tokens.
"""

from __future__ import annotations

import os

from redress_auth.policy import ALL_SCOPES as _ALL
from redress_auth.tokens import generate_keypair, mint_token

ALL_SCOPES: tuple[str, ...] = _ALL
ISSUER = "redress-test-suite"
AUDIENCE = "redress"
TOKEN_TTL_S = 12 * 3600

PRIVATE_KEY_PEM, PUBLIC_KEY_PEM = generate_keypair()


def suite_token(
    scopes: tuple[str, ...] = ALL_SCOPES,
    subject: str = "test-suite",
    *,
    ttl_s: int = TOKEN_TTL_S,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    private_key_pem: str = PRIVATE_KEY_PEM,
    now: float | None = None,
) -> str:
    """A token signed with the suite key (the keyword arguments make bad ones for tests)."""
    return mint_token(
        private_key_pem=private_key_pem,
        subject=subject,
        scopes=scopes,
        issuer=issuer,
        audience=audience,
        ttl_s=ttl_s,
        now=now,
    )


def auth_headers(
    scopes: tuple[str, ...] = ALL_SCOPES, subject: str = "test-suite"
) -> dict[str, str]:
    """Authorization headers for a caller holding `scopes`."""
    return {"Authorization": f"Bearer {suite_token(scopes, subject)}"}


def auth_env() -> dict[str, str]:
    """Environment a service process needs to verify the suite's tokens. The rate limit is
    high so load-style tests never meet it; tests of the limit set their own."""
    return {
        "REDRESS_AUTH_ENABLED": "true",
        "REDRESS_AUTH_ISSUER": ISSUER,
        "REDRESS_AUTH_AUDIENCE": AUDIENCE,
        "REDRESS_AUTH_PUBLIC_KEY": PUBLIC_KEY_PEM,
        "REDRESS_AUTH_RATE_LIMIT_PER_S": "10000",
        "REDRESS_AUTH_RATE_LIMIT_BURST": "100000",
    }


for _name, _value in auth_env().items():
    os.environ.setdefault(_name, _value)
