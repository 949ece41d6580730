"""The caller as audit events and domain records name them."""

from __future__ import annotations

from audit.events import Actor
from gateway.auth import Principal


def actor_of(principal: Principal) -> Actor:
    # Events name one role; the alphabetically first keeps the choice stable for multi-role tokens.
    role = sorted(principal.roles)[0].value
    return Actor(iss=principal.issuer, sub=principal.subject, role=role, tenant=principal.tenant)


def actor_key(principal: Principal) -> str:
    """`issuer|subject`: how the protected-speaker list records who changed it."""
    return f"{principal.issuer}|{principal.subject}"
