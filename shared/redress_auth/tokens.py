"""Signed JWT bearer tokens: verification (the services) and minting (dev tools, tests).

Only asymmetric algorithms are accepted, each key only with the algorithms of its own type, so
a token cannot pick `none` or an HMAC keyed with a public key. Errors never echo the token.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"secp256r1": ("ES256",), "secp384r1": ("ES384",), "secp521r1": ("ES512",)}
OKP_ALGORITHMS = ("EdDSA",)


class AuthError(Exception):
    """A token that does not grant access. `reason` is a short code for metrics; `detail` is
    safe to show the caller."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    """The verified caller of a request."""

    subject: str
    scopes: frozenset[str]
    token_key: str  # identifies the token itself (rate limiting); not the raw token
    expires_at: int


def _algorithms_for(key: Any) -> tuple[str, ...]:
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return EC_ALGORITHMS.get(key.curve.name, ())
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return OKP_ALGORITHMS
    return ()


@dataclass
class _Key:
    key: Any
    key_id: str | None
    algorithms: tuple[str, ...]


@dataclass
class KeyRing:
    """Public keys tokens may be signed with: PEM keys and JWKS entries."""

    keys: list[_Key] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def add_pem(self, pem: bytes, *, source: str = "key", key_id: str | None = None) -> None:
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise ValueError(f"{source}: not a PEM public key") from exc
        algorithms = _algorithms_for(key)
        if not algorithms:
            raise ValueError(f"{source}: unsupported key type {type(key).__name__}")
        self.keys.append(_Key(key, key_id, algorithms))

    def add_jwks(self, raw: bytes | str | dict[str, Any], *, source: str = "jwks") -> None:
        try:
            document = json.loads(raw) if isinstance(raw, bytes | str) else raw
            entries = document["keys"]
            if not isinstance(entries, list) or not entries:
                raise ValueError("no keys")
            jwks = [(entry, jwt.PyJWK(entry)) for entry in entries]
        except (ValueError, KeyError, TypeError, jwt.PyJWKError) as exc:
            raise ValueError(f"{source}: not a usable JWKS document ({exc})") from exc
        for entry, jwk in jwks:
            if entry.get("use") not in (None, "sig"):
                continue
            key = jwk.key
            if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                key = key.public_key()  # a private JWK: keep only its public half
            algorithms = _algorithms_for(key)
            if "alg" in entry:
                algorithms = tuple(a for a in algorithms if a == entry["alg"])
            if not algorithms:
                raise ValueError(f"{source}: key {jwk.key_id!r} has no supported algorithm")
            self.keys.append(_Key(key, jwk.key_id, algorithms))

    def candidates(self, key_id: str | None) -> list[_Key]:
        if key_id is not None:
            named = [k for k in self.keys if k.key_id == key_id]
            if named:
                return named
            return [k for k in self.keys if k.key_id is None]
        return list(self.keys)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return frozenset(raw)
    raise AuthError("bad_claims", "the scope claim must be a space-separated string")


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    key: _Key  # the key whose signature verified: the entry dies with the key
    valid_until: float  # epoch seconds: exp + leeway, when a fresh check would say "expired"


class TokenVerifier:
    """Checks signature, issuer, audience, expiry (and nbf) of a bearer token.

    With `cache_size` > 0, tokens that verified are remembered (a bounded LRU keyed by the exact
    token string) so that a client sending the same token on every request pays for one
    signature check, not one per request. A remembered token is still refused once it expires
    (exp + leeway, the moment a fresh check would refuse it) and once the key that signed it
    leaves the key ring; any other token string, however similar, is verified in full. Refused
    tokens are never remembered."""

    def __init__(
        self,
        *,
        keys: KeyRing,
        issuer: str,
        audience: str,
        leeway_s: float = 30.0,
        cache_size: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._cache_size = max(0, cache_size)
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        self._clock = clock

    @property
    def has_keys(self) -> bool:
        return len(self._keys) > 0

    @property
    def cached_tokens(self) -> int:
        return len(self._cache)

    def forget_tokens(self) -> None:
        """Drop every remembered token (e.g. after the key ring changed)."""
        self._cache.clear()

    def verify(self, token: str) -> Principal:
        if self._cache_size:
            hit = self._cache.get(token)
            if hit is not None:
                if self._clock() < hit.valid_until and any(k is hit.key for k in self._keys.keys):
                    self._cache.move_to_end(token)
                    return hit.principal
                del self._cache[token]  # expired or its key is gone: check it afresh
        principal, key = self._verify(token)
        if self._cache_size:
            self._cache[token] = _Verified(principal, key, principal.expires_at + self._leeway_s)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, _Key]:
        if not self.has_keys:
            raise AuthError(
                "no_keys",
                "this service has no token verification key configured "
                "(REDRESS_AUTH_PUBLIC_KEY, REDRESS_AUTH_PUBLIC_KEY_FILE or REDRESS_AUTH_JWKS_FILE)",
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed", "the bearer token is not a well-formed JWT") from exc
        algorithm = header.get("alg")
        candidates = [
            k for k in self._keys.candidates(header.get("kid")) if algorithm in k.algorithms
        ]
        if not candidates:
            raise AuthError(
                "unknown_key",
                "the token is not signed with a key and algorithm this service trusts",
            )
        last: AuthError | None = None
        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=list(candidate.algorithms),
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway_s,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
            except jwt.InvalidSignatureError:
                last = AuthError("bad_signature", "the token signature does not verify")
                continue
            except jwt.ExpiredSignatureError as exc:
                raise AuthError("expired", "the token has expired") from exc
            except jwt.ImmatureSignatureError as exc:
                raise AuthError("not_yet_valid", "the token is not valid yet (nbf)") from exc
            except jwt.InvalidAudienceError as exc:
                raise AuthError(
                    "bad_audience", f"the token's audience is not {self._audience!r}"
                ) from exc
            except jwt.InvalidIssuerError as exc:
                raise AuthError(
                    "bad_issuer", f"the token's issuer is not {self._issuer!r}"
                ) from exc
            except jwt.MissingRequiredClaimError as exc:
                raise AuthError("missing_claim", f"the token has no {exc.claim!r} claim") from exc
            except jwt.PyJWTError as exc:
                raise AuthError("invalid", "the bearer token is invalid") from exc
            subject = claims["sub"]
            if not isinstance(subject, str) or not subject:
                raise AuthError("bad_claims", "the sub claim must be a non-empty string")
            token_key = str(claims.get("jti") or hashlib.sha256(token.encode()).hexdigest())
            principal = Principal(
                subject=subject,
                scopes=_scopes(claims),
                token_key=f"{subject}:{token_key}",
                expires_at=int(claims["exp"]),
            )
            return principal, candidate
        assert last is not None
        raise last


def generate_keypair() -> tuple[str, str]:
    """A new EC P-256 (ES256) key pair as (private PEM, public PEM)."""
    private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def public_jwks(public_pem: str, *, key_id: str) -> dict[str, Any]:
    """A JWKS document holding one EC public key."""
    key = serialization.load_pem_public_key(public_pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("public_jwks supports EC keys")
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True)
    assert isinstance(jwk, dict)
    return {"keys": [{**jwk, "kid": key_id, "use": "sig", "alg": "ES256"}]}


def mint_token(
    *,
    private_key_pem: str,
    subject: str,
    scopes: Iterable[str],
    issuer: str,
    audience: str,
    ttl_s: int = 3600,
    key_id: str | None = None,
    algorithm: str = "ES256",
    now: float | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """A signed token (for local development and tests; production tokens come from the
    organisation's identity provider)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": str(uuid.uuid4()),
        "scope": " ".join(sorted(set(scopes))),
        **(extra_claims or {}),
    }
    headers = {"kid": key_id} if key_id else None
    return jwt.encode(claims, private_key_pem, algorithm=algorithm, headers=headers)
