"""Bearer-token validation (Entra ID and the embedded local issuer) and local minting.

One path validates both issuers: the signature through a key looked up by `kid`
(Entra: the tenant's JWKS via `jwt.PyJWKClient`, which refetches the set once for an
unknown `kid`; local: the platform's own RSA key), then `iss`, `aud`, `exp`/`nbf`
with a small leeway, the `azp`/`appid` client allowlist and the `tid` tenant allowlist.
Only RS256 is accepted, which rules out `alg: none` and HS256-with-the-public-key.
Sources: https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-tokens,
RFC 8725 (JWT best current practices).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth.principal import SCOPES_CLAIM, Principal, Role, parse_scopes
from shared.errors import MCPaaSError

ALGORITHMS = ["RS256"]
LOCAL_ISSUER = "mcpaas-local"
LOCAL_AUDIENCE = "mcpaas"
KeyLookup = Callable[[str], Any]


class AuthenticationError(MCPaaSError):
    """No valid credential (401). `detail` never contains the credential itself."""

    status = 401
    title = "Unauthorized"


def _roles(values: Iterable[str]) -> frozenset[Role]:
    known = {role.value: role for role in Role}
    return frozenset(known[value] for value in values if value in known)


class TokenValidator:
    """Validates RS256 bearer tokens and maps their claims to a `Principal`.

    Args:
        key_for_kid: returns the public key for a `kid`; raises on an unknown one.
        issuers / audiences: accepted `iss` and `aud` values.
        allowed_clients: accepted `azp` (v2) or `appid` (v1) values; empty = any.
        allowed_tenants: accepted `tid` values; empty = any (single tenant via `iss`).
        leeway_s: clock skew tolerated on `exp`/`nbf`, in seconds.
    """

    def __init__(self, key_for_kid: KeyLookup, *, issuers: Iterable[str], audiences: Iterable[str],
                 allowed_clients: Iterable[str] = (), allowed_tenants: Iterable[str] = (),
                 leeway_s: float = 60.0) -> None:
        self._key_for_kid = key_for_kid
        self._issuers = list(issuers)
        self._audiences = list(audiences)
        self._clients = frozenset(allowed_clients)
        self._tenants = frozenset(allowed_tenants)
        self._leeway = leeway_s

    def validate(self, token: str) -> Principal:
        """Return the caller of `token`. Raises AuthenticationError for any defect."""
        return self.verify(token)[0]

    def verify(self, token: str) -> tuple[Principal, float]:
        """The caller of `token` and its `exp` (seconds since the epoch), so a cache can
        keep the result no longer than the token lives. Raises AuthenticationError."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                raise AuthenticationError(f"token algorithm {header.get('alg')!r} is not accepted")
            key = self._key_for_kid(str(header.get("kid", "")))
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=self._audiences,
                                issuer=self._issuers, leeway=self._leeway,
                                options={"require": ["exp", "iss", "aud"]})
        except AuthenticationError:
            raise
        except (jwt.PyJWTError, ValueError, KeyError) as error:
            raise AuthenticationError(f"invalid token: {type(error).__name__}: {error}") from None
        return self._principal(claims), float(claims["exp"])

    def _principal(self, claims: dict[str, Any]) -> Principal:
        client = claims.get("azp") or claims.get("appid")
        if self._clients and client not in self._clients:
            raise AuthenticationError("token client application is not allowed")
        tenant = claims.get("tid")
        if self._tenants and tenant not in self._tenants:
            raise AuthenticationError("token tenant is not allowed")
        subject = claims.get("oid") or claims.get("sub")
        if not subject:
            raise AuthenticationError("token has no subject")
        return Principal(subject=str(subject), name=str(claims.get("preferred_username") or claims.get("name") or ""),
                         kind="service" if claims.get("idtyp") == "app" else "user",
                         roles=_roles(claims.get("roles", [])), groups=frozenset(claims.get("groups", [])),
                         tenant=tenant, scopes=parse_scopes(claims.get(SCOPES_CLAIM)))


def entra_validator(jwks_url: str, *, issuers: Iterable[str], audiences: Iterable[str],
                    allowed_clients: Iterable[str] = (), allowed_tenants: Iterable[str] = (),
                    refresh_cooldown_s: float = 30.0) -> TokenValidator:
    """A validator for Entra ID tokens whose keys come from `jwks_url` (cached, 5 min).

    An unknown `kid` refetches the key set once, at most every `refresh_cooldown_s`
    seconds, so random `kid`s cannot turn the gateway into a JWKS flooder.
    """
    client = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=10,
                             cooldown_duration=refresh_cooldown_s)

    def key_for_kid(kid: str) -> Any:
        try:
            return client.get_signing_key(kid).key
        except jwt.PyJWKClientError as error:
            raise AuthenticationError(f"signing key not found: {error}") from None

    return TokenValidator(key_for_kid, issuers=issuers, audiences=audiences,
                          allowed_clients=allowed_clients, allowed_tenants=allowed_tenants)


class LocalIssuer:
    """The embedded issuer: an RSA key in the data dir, created on first use.

    The private key file is written with mode 0600. `kid` is a digest of the public key,
    so a rotated key invalidates old tokens.
    """

    def __init__(self, key_path: Path) -> None:
        self.key_path = Path(key_path)
        if not self.key_path.exists():
            self._create_key()
        private = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey):  # tokens are signed RS256
            raise ValueError(f"{self.key_path} does not hold an RSA private key")
        self._private = private
        public_der = self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = hashlib.sha256(public_der).hexdigest()[:16]

    def _create_key(self) -> None:
        # The control plane, the gateway and `mcpaas up` may all start at once: write a
        # private temp file, then link it into place, which fails if another won the race.
        self.key_path.parent.mkdir(parents=True, exist_ok=True)
        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        temp = self.key_path.with_name(f".{self.key_path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
            with contextlib.suppress(FileExistsError):
                os.link(temp, self.key_path)
        finally:
            temp.unlink(missing_ok=True)

    def mint(self, user: str, roles: Iterable[Role], *, lifetime_s: int = 8 * 3600,
             groups: Iterable[str] = (), scopes: dict[str, list[str]] | None = None) -> str:
        """A signed access token for local user `user` with `roles`, valid `lifetime_s` seconds;
        `scopes` binds the user to scope values (claim `mcpaas_scopes`, FR-019)."""
        now = int(time.time())
        claims = {"iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "sub": user, "preferred_username": user,
                  "roles": sorted(Role(role).value for role in roles), "groups": list(groups),
                  "iat": now, "nbf": now, "exp": now + lifetime_s}
        if scopes:
            claims[SCOPES_CLAIM] = {param: list(values) for param, values in scopes.items()}
        return jwt.encode(claims, self._private, algorithm="RS256", headers={"kid": self.kid})

    def validator(self) -> TokenValidator:
        """A validator that accepts only this issuer's tokens."""
        public = self._private.public_key()

        def key_for_kid(kid: str) -> Any:
            if kid != self.kid:
                raise AuthenticationError("signing key not found")
            return public

        return TokenValidator(key_for_kid, issuers=[LOCAL_ISSUER], audiences=[LOCAL_AUDIENCE])
