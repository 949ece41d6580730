"""Bearer-token authentication and per-route permissions.

Tokens come from the identity provider: HS256 with a shared secret in dev, RS256/ES256 with
keys from a JWKS (selected by `kid`, kept current by gateway/jwks.py) in prod. Every failure is an `AuthenticationFailed` whose
code names the reason; routes declare their permission with `require(Permission.X)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.errors import (
    AuthenticationFailed,
    IdentityProviderUnavailable,
    PermissionDenied,
    declare_dependency_errors,
)
from gateway.jwks import key_set_from
from gateway.settings import HS_JWT_ALGORITHMS, Settings, SettingsError

MAX_TOKEN_BYTES = 8192
# A kid is an identifier, not a payload: a long one is refused before any key set lookup.
MAX_KID_CHARS = 200
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
# The JWK key type each asymmetric algorithm may use: a key of another type is refused, so an
# RSA key can never be used to check an EC signature or the other way round.
KEY_TYPE_FOR_ALGORITHM = {"RS256": "RSA", "ES256": "EC"}


class Role(StrEnum):
    OWNER = "owner"  # a voice owner: enrolls, grants and revokes consent, erases
    CLIENT = "client"  # calls synthesis for a tenant
    AUDITOR = "auditor"  # reads and exports the audit log
    ADMIN = "admin"  # runs the gateway: blocklist, reviews, settings


class Permission(StrEnum):
    READ_SELF = "read_self"
    MANAGE_OWN_VOICES = "manage_own_voices"
    READ_GRANTED_VOICES = "read_granted_voices"
    SYNTHESIZE = "synthesize"
    DETECT = "detect"
    RESOLVE_WATERMARK = "resolve_watermark"
    READ_AUDIT = "read_audit"
    MANAGE_BLOCKLIST = "manage_blocklist"
    DECIDE_REVIEWS = "decide_reviews"
    READ_SETTINGS = "read_settings"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(
        {Permission.READ_SELF, Permission.MANAGE_OWN_VOICES, Permission.SYNTHESIZE, Permission.DETECT}
    ),
    Role.CLIENT: frozenset(
        {Permission.READ_SELF, Permission.READ_GRANTED_VOICES, Permission.SYNTHESIZE, Permission.DETECT}
    ),
    Role.AUDITOR: frozenset(
        {Permission.READ_SELF, Permission.DETECT, Permission.RESOLVE_WATERMARK, Permission.READ_AUDIT}
    ),
    Role.ADMIN: frozenset(
        {
            Permission.READ_SELF,
            Permission.DETECT,
            Permission.RESOLVE_WATERMARK,
            Permission.READ_AUDIT,
            Permission.MANAGE_BLOCKLIST,
            Permission.DECIDE_REVIEWS,
            Permission.READ_SETTINGS,
        }
    ),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the verified token says."""

    issuer: str
    subject: str
    roles: frozenset[Role]
    tenant: str | None
    display_name: str | None
    identity_verified: bool

    def has(self, permission: Permission) -> bool:
        return any(permission in ROLE_PERMISSIONS[role] for role in self.roles)


class TokenVerifier:
    """Verifies bearer tokens against the configured secret (HS256, dev) or JWKS (gateway/jwks.py)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._algorithms = list(settings.jwt_algorithms)
        self.key_set = key_set_from(
            file=settings.jwt_jwks_file,
            url=settings.jwt_jwks_url,
            timeout=settings.jwt_jwks_timeout_seconds,
            refresh_seconds=settings.jwt_jwks_refresh_seconds,
            min_refresh_seconds=settings.jwt_jwks_min_refresh_seconds,
            grace_seconds=settings.jwt_jwks_outage_grace_seconds,
        )
        if any(alg in KEY_TYPE_FOR_ALGORITHM for alg in self._algorithms) and self.key_set is None:
            raise SettingsError(
                "CLONEGATE_JWT_ALGORITHMS names RS256/ES256 but neither CLONEGATE_JWT_JWKS_FILE nor "
                "CLONEGATE_JWT_JWKS_URL is set"
            )
        if settings.jwt_jwks_file is not None and self.key_set is not None and not self.key_set.ready():
            # A file is local configuration: one that cannot be read at start-up is a setting to fix.
            raise SettingsError(
                f"CLONEGATE_JWT_JWKS_FILE {settings.jwt_jwks_file}: cannot load a JWKS: {self.key_set.status().last_error}"
            )

    def ready(self) -> bool:
        """For /readyz: the identity provider's keys are in hand (always, for HS256 alone)."""
        return self.key_set is None or self.key_set.ready()

    def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationFailed("token is too long", code="token_malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise AuthenticationFailed(f"token is not a JWS: {exc}", code="token_malformed") from exc
        algorithm = header.get("alg")
        # Checked before any key is chosen: this refuses `none` and algorithm substitution.
        if algorithm not in self._algorithms:
            raise AuthenticationFailed(f"token algorithm {algorithm!r} is not accepted", code="token_algorithm_refused")
        key = self._key_for(algorithm, header.get("kid"))
        claims = self._decode(token, key, algorithm)
        return self._principal(claims)

    def _key_for(self, algorithm: str, kid: Any) -> Any:
        if algorithm in HS_JWT_ALGORITHMS:
            return self._settings.jwt_secret.get_secret_value()
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_CHARS:
            raise AuthenticationFailed("token header has no usable key id (kid)", code="token_unknown_key")
        if self.key_set is None:  # settings refuse RS256/ES256 without a JWKS; kept as a guard
            raise AuthenticationFailed(f"no key with id {kid!r}", code="token_unknown_key")
        jwk = self.key_set.key(kid)
        if jwk.key_type != KEY_TYPE_FOR_ALGORITHM[algorithm] or (jwk.algorithm_name not in (None, algorithm)):
            raise AuthenticationFailed(
                f"key {kid!r} may not verify {algorithm} signatures", code="token_algorithm_refused"
            )
        return jwk.key

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        settings = self._settings
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_seconds,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationFailed("token has expired", code="token_expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationFailed("token is not valid yet", code="token_not_yet_valid") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationFailed("token issuer is not trusted", code="token_wrong_issuer") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationFailed("token is for another audience", code="token_wrong_audience") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationFailed(str(exc), code="token_missing_claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationFailed("token signature does not verify", code="token_invalid_signature") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"token is invalid: {exc}", code="token_invalid") from exc

    def _principal(self, claims: dict[str, Any]) -> Principal:
        settings = self._settings
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthenticationFailed("token subject must be a non-empty string", code="token_missing_claim")
        raw_roles = claims.get(settings.jwt_role_claim)
        names = [raw_roles] if isinstance(raw_roles, str) else raw_roles if isinstance(raw_roles, list) else []
        roles = frozenset(Role(name) for name in names if name in Role._value2member_map_)
        if not roles:
            raise PermissionDenied("token carries no clonegate role", code="role_missing")
        tenant = claims.get(settings.jwt_tenant_claim)
        if tenant is not None and (not isinstance(tenant, str) or not tenant):
            raise AuthenticationFailed("tenant claim must be a non-empty string", code="token_invalid")
        if Role.CLIENT in roles and tenant is None:
            raise PermissionDenied("a client token must carry a tenant claim", code="tenant_missing")
        name = claims.get(settings.jwt_name_claim)
        return Principal(
            issuer=claims["iss"],
            subject=subject,
            roles=roles,
            tenant=tenant,
            display_name=name if isinstance(name, str) and name else None,
            identity_verified=_identity_verified(claims.get(settings.identity_assurance_claim), settings),
        )


def _identity_verified(value: Any, settings: Settings) -> bool:
    if value is True:
        return True
    return isinstance(value, str) and value in settings.identity_assurance_values


_bearer = HTTPBearer(auto_error=False, description="A JWT from the identity provider")


def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise AuthenticationFailed("a bearer token is required", code="token_missing")
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.verify(credentials.credentials)


Authenticated = Annotated[Principal, Depends(current_principal)]
# Every code `TokenVerifier.verify` and `current_principal` raise, so each route documents them.
TOKEN_REFUSALS = tuple(
    (401, code)
    for code in (
        "token_missing",
        "token_malformed",
        "token_algorithm_refused",
        "token_unknown_key",
        "token_expired",
        "token_not_yet_valid",
        "token_wrong_issuer",
        "token_wrong_audience",
        "token_missing_claim",
        "token_invalid_signature",
        "token_invalid",
    )
)
CLAIM_REFUSALS = ((403, "role_missing"), (403, "tenant_missing"))
declare_dependency_errors(current_principal, *TOKEN_REFUSALS, *CLAIM_REFUSALS, IdentityProviderUnavailable)


def require(permission: Permission) -> Any:
    """A dependency that authenticates the caller and checks one permission.

    Use as `principal: Annotated[Principal, require(Permission.READ_AUDIT)]`.
    """

    def check(principal: Authenticated) -> Principal:
        if not principal.has(permission):
            raise PermissionDenied(
                f"this route needs the {permission.value} permission, which roles {sorted(principal.roles)} do not have"
            )
        return principal

    declare_dependency_errors(check, PermissionDenied)
    return Depends(check)
