"""Access control without HTTP or Kafka: token verification, scope policy, rate limit, settings,
dev credentials. (Kept beside the HTTP security tests; needs no broker.)"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from redress_auth import AuthError, AuthSettings, KeyRing, TokenVerifier, required_scopes
from redress_auth.dev import ensure_dev_keys_and_token
from redress_auth.middleware import AccessGate, Allowed, Denied
from redress_auth.ratelimit import RateLimiter
from redress_auth.tokens import generate_keypair, public_jwks

from tests.support.auth import AUDIENCE, ISSUER, PUBLIC_KEY_PEM, suite_token


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def verifier(public_pem: str = PUBLIC_KEY_PEM) -> TokenVerifier:
    ring = KeyRing()
    ring.add_pem(public_pem.encode())
    return TokenVerifier(keys=ring, issuer=ISSUER, audience=AUDIENCE, leeway_s=0)


def test_valid_token_gives_subject_and_scopes() -> None:
    principal = verifier().verify(suite_token(("reports:read", "pii:read"), "crm-bot"))
    assert principal.subject == "crm-bot"
    assert principal.scopes == {"reports:read", "pii:read"}


@pytest.mark.parametrize(
    ("token_kwargs", "reason"),
    [
        ({"ttl_s": 60, "now": time.time() - 3600}, "expired"),
        ({"issuer": "someone-else"}, "bad_issuer"),
        ({"audience": "another-system"}, "bad_audience"),
        ({"private_key_pem": generate_keypair()[0]}, "bad_signature"),
        ({"now": time.time() + 3600}, "not_yet_valid"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token_kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(AuthError) as caught:
        verifier().verify(suite_token(("reports:read",), **token_kwargs))  # type: ignore[arg-type]
    assert caught.value.reason == reason
    assert "ey" not in caught.value.detail  # never echoes the token


def test_unsigned_and_hmac_tokens_are_refused() -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    # The classic confusion attack: HMAC "signed" with the public key as the secret.
    # (PyJWT refuses to make one, so it is made by hand.)
    signing_input = b".".join(
        _b64(json.dumps(part).encode()) for part in ({"alg": "HS256", "typ": "JWT"}, claims)
    )
    mac = hmac.new(PUBLIC_KEY_PEM.encode(), signing_input, hashlib.sha256).digest()
    confused = (signing_input + b"." + _b64(mac)).decode()
    for token in (unsigned, confused, "not-a-jwt", ""):
        with pytest.raises(AuthError):
            verifier().verify(token)


def test_token_without_expiry_or_subject_is_refused() -> None:
    from tests.support.auth import PRIVATE_KEY_PEM

    for missing in ("exp", "sub"):
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}
        del claims[missing]
        token = jwt.encode(claims, PRIVATE_KEY_PEM, algorithm="ES256")
        with pytest.raises(AuthError) as caught:
            verifier().verify(token)
        assert caught.value.reason == "missing_claim"


def test_no_configured_key_refuses_everything() -> None:
    empty = TokenVerifier(keys=KeyRing(), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(AuthError) as caught:
        empty.verify(suite_token())
    assert caught.value.reason == "no_keys"


def test_jwks_file_with_key_ids_and_rsa(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_private = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    ec_private, ec_public = generate_keypair()
    document = public_jwks(ec_public, key_id="ec-1")
    document["keys"].append({**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    settings = AuthSettings(jwks_file=path, issuer=ISSUER, audience=AUDIENCE)
    ring = settings.key_ring()
    check = TokenVerifier(keys=ring, issuer=ISSUER, audience=AUDIENCE)

    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "exp": int(time.time()) + 60}
    rs = jwt.encode(claims, rsa_private, algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(claims, ec_private, algorithm="ES256", headers={"kid": "ec-1"})
    assert check.verify(rs).subject == "s"
    assert check.verify(es).subject == "s"
    # A key id the set does not hold, or a key used with another key's id, fails.
    with pytest.raises(AuthError):
        check.verify(jwt.encode(claims, ec_private, algorithm="ES256", headers={"kid": "rsa-1"}))


def test_unreadable_key_settings_stop_the_service_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="REDRESS_AUTH_JWKS_FILE"):
        AuthSettings(jwks_file=tmp_path / "absent.json")
    (tmp_path / "bad.pem").write_text(
        "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(ValueError, match="REDRESS_AUTH_PUBLIC_KEY_FILE"):
        AuthSettings(public_key_file=tmp_path / "bad.pem")


def test_auth_is_on_by_default() -> None:
    assert AuthSettings.model_fields["enabled"].default is True


@pytest.mark.parametrize(
    ("service", "path", "scopes"),
    [
        ("intake", "/v1/complaints", {"complaints:write"}),
        ("recovery", "/v1/cases/abc/remedies", {"cases:write"}),
        ("reporting", "/v1/complaints/abc", {"reports:read"}),
        ("reporting", "/v1/audit/abc", {"audit:read"}),
        ("reporting", "/v1/auditors", {"reports:read"}),
        ("intake", "/anything/unknown", {"complaints:write"}),
        ("reporting", "/healthz", None),
        ("intake", "/readyz", None),
        ("recovery", "/metrics", None),
        ("intake", "/openapi.json", None),
        ("reporting", "/docs", None),
    ],
)
def test_scope_policy(service: str, path: str, scopes: set[str] | None) -> None:
    assert required_scopes(service, path) == (frozenset(scopes) if scopes is not None else None)


def test_unknown_service_fails_closed() -> None:
    with pytest.raises(ValueError, match="no access rules"):
        required_scopes("mystery", "/v1/x")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_bucket_per_key_and_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(0.5)
    assert limiter.acquire("b") == 0.0  # another token has its own bucket
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_gate_decisions() -> None:
    gate = AccessGate(
        service="intake",
        verifier=verifier(),
        limiter=RateLimiter(rate_per_s=0.001, burst=1),
    )
    assert gate.check("/healthz", None) is None
    missing = gate.check("/v1/complaints", None)
    assert isinstance(missing, Denied) and missing.status == 401
    basic = gate.check("/v1/complaints", "Basic dXNlcjpwYXNz")
    assert isinstance(basic, Denied) and basic.status == 401
    wrong = gate.check("/v1/complaints", f"Bearer {suite_token(('reports:read',))}")
    assert isinstance(wrong, Denied) and wrong.status == 403
    assert wrong.required_scopes == ("complaints:write",)
    token = suite_token(("complaints:write",), "crm")
    ok = gate.check("/v1/complaints", f"Bearer {token}")
    assert ok == Allowed("crm", frozenset({"complaints:write"}))
    limited = gate.check("/v1/complaints", f"Bearer {token}")
    assert isinstance(limited, Denied) and limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1


def test_dev_credentials_verify_with_the_env_they_set(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    token = ensure_dev_keys_and_token(tmp_path, env)
    key_file = tmp_path / "auth" / "dev-signing-key.pem"
    assert key_file.stat().st_mode & 0o077 == 0
    settings = AuthSettings(
        issuer=env["REDRESS_AUTH_ISSUER"],
        audience=env["REDRESS_AUTH_AUDIENCE"],
        jwks_file=Path(env["REDRESS_AUTH_JWKS_FILE"]),
    )
    check = TokenVerifier(
        keys=settings.key_ring(), issuer=settings.issuer, audience=settings.audience
    )
    principal = check.verify(token)
    assert principal.scopes == {
        "complaints:write",
        "cases:write",
        "reports:read",
        "pii:read",
        "audit:read",
    }
    # A second `make up` keeps the key: the first token still verifies.
    before = key_file.read_text()
    again = ensure_dev_keys_and_token(tmp_path, {})
    assert key_file.read_text() == before
    assert check.verify(again).subject == "dev"
