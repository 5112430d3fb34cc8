"""Local development credentials for `make up`: a signing key kept in `.run/auth/`, the JWKS
the services verify with, and a token with every scope."""

from __future__ import annotations

import json
import os
from pathlib import Path

from redress_auth.policy import ALL_SCOPES
from redress_auth.tokens import generate_keypair, mint_token, public_jwks

DEV_ISSUER = "redress-dev"
DEV_AUDIENCE = "redress"
DEV_KEY_ID = "redress-dev-1"
DEV_TOKEN_TTL_S = 7 * 24 * 3600


def ensure_dev_keys_and_token(run_dir: Path, env: dict[str, str]) -> str:
    """Create (once) a dev key pair under `run_dir/auth`, point `env` (the services'
    environment) at its JWKS, and return a fresh token holding every scope."""
    auth_dir = Path(run_dir) / "auth"
    auth_dir.mkdir(parents=True, exist_ok=True)
    private_path = auth_dir / "dev-signing-key.pem"
    jwks_path = auth_dir / "jwks.json"
    if not private_path.exists() or not jwks_path.exists():
        private_pem, public_pem = generate_keypair()
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(private_pem)
        (auth_dir / "dev-public-key.pem").write_text(public_pem)
        jwks_path.write_text(json.dumps(public_jwks(public_pem, key_id=DEV_KEY_ID), indent=2))
    env["REDRESS_AUTH_ISSUER"] = DEV_ISSUER
    env["REDRESS_AUTH_AUDIENCE"] = DEV_AUDIENCE
    env["REDRESS_AUTH_JWKS_FILE"] = str(jwks_path.resolve())
    return mint_token(
        private_key_pem=private_path.read_text(),
        subject="dev",
        scopes=ALL_SCOPES,
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        ttl_s=DEV_TOKEN_TTL_S,
        key_id=DEV_KEY_ID,
    )
