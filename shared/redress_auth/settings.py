"""Auth configuration, from `REDRESS_AUTH_*` environment variables. On by default."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from redress_auth.tokens import KeyRing


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REDRESS_AUTH_", extra="ignore")

    enabled: bool = Field(default=True, description="false turns access control off (dev only)")
    issuer: str = Field(default="redress", min_length=1, description="required `iss` claim")
    audience: str = Field(default="redress", min_length=1, description="required `aud` claim")
    public_key: str | None = Field(default=None, description="PEM public key (text)")
    public_key_file: Path | None = Field(default=None, description="path to a PEM public key")
    jwks_file: Path | None = Field(default=None, description="path to a JWKS (JSON) file")
    leeway_s: int = Field(default=30, ge=0, le=300, description="clock skew allowed on exp/nbf")
    rate_limit_per_s: float = Field(default=50.0, gt=0, description="requests per second per token")
    rate_limit_burst: int = Field(default=200, ge=1, description="requests a token may burst")
    rate_limit_max_tracked: int = Field(default=100_000, ge=100, description="tokens remembered")
    token_cache_size: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="verified tokens remembered (LRU, until they expire); 0 verifies every time",
    )

    @model_validator(mode="after")
    def _keys_load(self) -> AuthSettings:
        # A key source that is set but unreadable stops the service at start, naming the variable.
        self.key_ring()
        return self

    def key_ring(self) -> KeyRing:
        ring = KeyRing()
        if self.public_key:
            ring.add_pem(self.public_key.encode(), source="REDRESS_AUTH_PUBLIC_KEY")
        if self.public_key_file is not None:
            ring.add_pem(
                _read(self.public_key_file, "REDRESS_AUTH_PUBLIC_KEY_FILE"),
                source="REDRESS_AUTH_PUBLIC_KEY_FILE",
            )
        if self.jwks_file is not None:
            ring.add_jwks(
                _read(self.jwks_file, "REDRESS_AUTH_JWKS_FILE"), source="REDRESS_AUTH_JWKS_FILE"
            )
        return ring


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{variable}: cannot read {path}: {exc.strerror}") from exc
