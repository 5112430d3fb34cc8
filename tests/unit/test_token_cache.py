"""The verified-token cache: a token verified once is served from memory, but never past its
expiry, never after its key left the key ring, and never for any other token string."""

from __future__ import annotations

import time

import jwt
import pytest
from redress_auth import AuthError, KeyRing, TokenVerifier
from redress_auth.tokens import generate_keypair

from tests.support.auth import AUDIENCE, ISSUER, PUBLIC_KEY_PEM, suite_token


def ring(*pems: str) -> KeyRing:
    keys = KeyRing()
    for pem in pems:
        keys.add_pem(pem.encode())
    return keys


def cached_verifier(keys: KeyRing | None = None, **kwargs: object) -> TokenVerifier:
    options: dict[str, object] = {"leeway_s": 0, "cache_size": 100, **kwargs}
    return TokenVerifier(
        keys=keys or ring(PUBLIC_KEY_PEM),
        issuer=ISSUER,
        audience=AUDIENCE,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature was actually checked."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        seen.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def test_a_verified_token_is_checked_once(decodes: list[str]) -> None:
    verifier = cached_verifier()
    token = suite_token(("complaints:write",), "crm")
    first = verifier.verify(token)
    for _ in range(5):
        assert verifier.verify(token) == first
    assert decodes == [token]
    assert verifier.cached_tokens == 1


def test_without_a_cache_every_request_is_checked(decodes: list[str]) -> None:
    verifier = cached_verifier(cache_size=0)
    token = suite_token(("complaints:write",))
    verifier.verify(token)
    verifier.verify(token)
    assert decodes == [token, token]
    assert verifier.cached_tokens == 0


def test_a_cached_token_is_refused_once_it_expires() -> None:
    verifier = cached_verifier()
    token = suite_token(("complaints:write",), ttl_s=2)
    verifier.verify(token)
    time.sleep(
        max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time())
    )
    time.sleep(0.05)
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    assert caught.value.reason == "expired"
    assert verifier.cached_tokens == 0


def test_expiry_is_read_from_the_cache_entry_with_the_leeway(decodes: list[str]) -> None:
    now = [time.time()]
    verifier = cached_verifier(leeway_s=30, clock=lambda: now[0])
    token = suite_token(("complaints:write",), ttl_s=600)
    exp = verifier.verify(token).expires_at
    now[0] = exp + 29  # within the leeway: still served from memory
    verifier.verify(token)
    assert len(decodes) == 1
    now[0] = exp + 30  # past exp + leeway: checked afresh (the real clock says it is valid)
    verifier.verify(token)
    assert len(decodes) == 2


def test_a_cached_token_is_refused_once_its_key_leaves_the_ring() -> None:
    other_private, other_public = generate_keypair()
    keys = ring(PUBLIC_KEY_PEM, other_public)
    verifier = cached_verifier(keys)
    token = suite_token(("complaints:write",))
    verifier.verify(token)
    keys.keys = [k for k in keys.keys if k is not keys.keys[0]]  # the suite key is revoked
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    assert caught.value.reason == "bad_signature"
    # a token of the key still trusted is fine
    assert verifier.verify(suite_token(private_key_pem=other_private)).subject == "test-suite"


def test_any_other_token_string_is_verified_in_full() -> None:
    verifier = cached_verifier()
    token = suite_token(("complaints:write",))
    verifier.verify(token)
    head, payload, signature = token.split(".")
    other = "AAAA" if signature[-4:] != "AAAA" else "BBBB"
    tampered_signature = f"{head}.{payload}.{signature[:-4]}{other}"
    forged = suite_token(("complaints:write",), private_key_pem=generate_keypair()[0])
    for bad in (tampered_signature, forged, token + " ", token[:-1]):
        with pytest.raises(AuthError):
            verifier.verify(bad)


def test_refused_tokens_are_not_remembered() -> None:
    verifier = cached_verifier()
    with pytest.raises(AuthError):
        verifier.verify(suite_token(issuer="someone-else"))
    assert verifier.cached_tokens == 0


def test_the_cache_is_bounded_least_recently_used_first(decodes: list[str]) -> None:
    verifier = cached_verifier(cache_size=2)
    a, b, c = (suite_token(("complaints:write",), subject) for subject in "abc")
    verifier.verify(a)
    verifier.verify(b)
    verifier.verify(a)  # a is now the most recently used
    verifier.verify(c)  # evicts b
    assert verifier.cached_tokens == 2
    verifier.verify(a)
    verifier.verify(b)
    assert decodes == [a, b, c, b]
    verifier.forget_tokens()
    assert verifier.cached_tokens == 0
