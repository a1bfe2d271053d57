"""Token validation: every defect in the issue's list is a 401, good tokens map to a principal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth.principal import Role
from shared.auth.tokens import AuthenticationError, LocalIssuer, entra_validator

ISSUER = "https://login.microsoftonline.com/tenant-1/v2.0"
AUDIENCE = "api://mcpaas"


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key, kid: str) -> dict:
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


class Jwks:
    """A JWKS endpoint on loopback whose key set a test can rotate; counts fetches."""

    def __init__(self, keys: list[dict]) -> None:
        self.keys, self.fetches = keys, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keys"


@pytest.fixture
def key1():
    return new_key()


@pytest.fixture
def jwks(key1):
    endpoint = Jwks([jwk(key1, "k1")])
    yield endpoint
    endpoint.server.shutdown()


def claims(**overrides):
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "oid": "user-1", "tid": "tenant-1", "azp": "client-1",
            "roles": ["Developer", "Unknown"], "groups": ["team-a"], "iat": now, "nbf": now, "exp": now + 600}
    base.update(overrides)
    return base


def sign(key, kid="k1", **overrides) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


def validator(jwks, **kwargs):
    return entra_validator(jwks.url, issuers=[ISSUER], audiences=[AUDIENCE], **kwargs)


def test_valid_entra_token_maps_claims(jwks, key1):
    principal = validator(jwks, allowed_clients=["client-1"], allowed_tenants=["tenant-1"]).validate(sign(key1))
    assert principal.subject == "user-1" and principal.roles == {Role.DEVELOPER}
    assert principal.groups == {"team-a"} and principal.tenant == "tenant-1"


def _unsigned(header: dict, payload: dict) -> str:
    def enc(part: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
    return f"{enc(header)}.{enc(payload)}."


def forged(key1):
    return sign(new_key())  # right kid, wrong key


def alg_none(key1):
    return _unsigned({"alg": "none", "kid": "k1"}, claims())


def hs256_with_public_key(key1):
    public_pem = key1.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    signing_input = _unsigned(header, claims())[:-1]
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


@pytest.mark.parametrize("make", [
    forged, alg_none, hs256_with_public_key,
    lambda k: sign(k, exp=int(time.time()) - 3600),
    lambda k: sign(k, nbf=int(time.time()) + 3600),
    lambda k: sign(k, aud="api://other"),
    lambda k: sign(k, iss="https://evil.example/v2.0"),
    lambda k: sign(k, kid="nope"),
    lambda k: "not-a-jwt",
], ids=["forged", "alg-none", "hs256-public-key", "expired", "not-yet-valid", "wrong-aud", "wrong-iss",
        "unknown-kid", "garbage"])
def test_defective_tokens_are_rejected(jwks, key1, make):
    with pytest.raises(AuthenticationError) as info:
        validator(jwks).validate(make(key1))
    assert info.value.status == 401


def test_client_and_tenant_allowlists(jwks, key1):
    with pytest.raises(AuthenticationError):
        validator(jwks, allowed_clients=["client-2"]).validate(sign(key1))
    with pytest.raises(AuthenticationError):
        validator(jwks, allowed_tenants=["tenant-2"]).validate(sign(key1))
    assert validator(jwks, allowed_clients=["client-1"]).validate(sign(key1, azp=None, appid="client-1"))


def test_rotated_key_is_fetched_once_and_unknown_kid_fails_after_one_refresh(jwks, key1):
    checker = validator(jwks, refresh_cooldown_s=0)
    checker.validate(sign(key1))
    key2 = new_key()
    jwks.keys = [jwk(key1, "k1"), jwk(key2, "k2")]
    before = jwks.fetches
    assert checker.validate(sign(key2, kid="k2")).subject == "user-1"
    assert jwks.fetches == before + 1
    before = jwks.fetches
    with pytest.raises(AuthenticationError):
        checker.validate(sign(key2, kid="k3"))
    assert jwks.fetches == before + 1  # one refresh, then the rejection


def test_local_issuer_roundtrip_and_key_persistence(tmp_path):
    issuer = LocalIssuer(tmp_path / "auth" / "signing-key.pem")
    token = issuer.mint("alice", [Role.OPERATOR], groups=["team-a"])
    principal = issuer.validator().validate(token)
    assert (principal.subject, principal.roles, principal.groups) == ("alice", {Role.OPERATOR}, {"team-a"})
    assert (tmp_path / "auth" / "signing-key.pem").stat().st_mode & 0o077 == 0
    assert LocalIssuer(tmp_path / "auth" / "signing-key.pem").validator().validate(token).subject == "alice"
    other = LocalIssuer(tmp_path / "other.pem")
    with pytest.raises(AuthenticationError):
        other.validator().validate(token)
    with pytest.raises(AuthenticationError):
        issuer.validator().validate(issuer.mint("bob", [Role.READER], lifetime_s=-120))
