"""The rate limiter: requests per minute and audio seconds per day, per tenant and per token
subject (and per address for anonymous detection), from `CLONEGATE_RATE_LIMITS`.

Windows are fixed (a UTC minute, a UTC day) by the replica's clock, so replicas must keep their
clocks in step (NTP); at a minute's boundary a caller may get up to twice its per-minute budget
in a short burst, never more than its budget within one window. A refusal answers 429 with
`Retry-After` (the seconds until the window ends) and is counted, not audited one by one: each
finished minute's refusals of a budget become one `request.rate_limited` event
(gateway/rate_limits/reporting.py).

The audio quota is checked before admission and spent when audio is released, so requests
admitted at the same time may together pass it by their own length; a request is never cut off
for it once admitted.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.orm import Session, sessionmaker

from gateway.auth import Principal
from gateway.errors import GatewayError
from gateway.metrics import RATE_LIMITED
from gateway.rate_limits import store
from gateway.rate_limits.store import RefusedCaller
from gateway.settings import LimitSet, RateLimits
from gateway.shared.transactions import transaction

log = logging.getLogger("clonegate.rate_limits")

MINUTE = 60
DAY = 86_400


class Limit(StrEnum):
    """What a budget counts; the names are those of `CLONEGATE_RATE_LIMITS`'s fields."""

    SYNTHESIS_REQUESTS = "synthesis_requests_per_minute"
    SYNTHESIS_AUDIO = "synthesis_audio_seconds_per_day"
    DETECTION_REQUESTS = "detection_requests_per_minute"
    ENROLLMENT_REQUESTS = "enrollment_requests_per_minute"


class RequestKind(StrEnum):
    SYNTHESIS = "synthesis"
    DETECTION = "detection"
    ENROLLMENT = "enrollment"


_REQUESTS_LIMIT = {
    RequestKind.SYNTHESIS: Limit.SYNTHESIS_REQUESTS,
    RequestKind.DETECTION: Limit.DETECTION_REQUESTS,
    RequestKind.ENROLLMENT: Limit.ENROLLMENT_REQUESTS,
}


class RateLimited(GatewayError):
    """A budget of the caller (its tenant's, its own, or its address's) is spent for this window."""

    code = "rate_limited"
    status = 429

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = max(1, math.ceil(retry_after))
        self.headers = {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class Budget:
    limit: Limit
    scope: str  # "tenant", "subject" or "address"
    identity: str
    allowance: int  # requests, or milliseconds of audio
    period: int  # seconds

    @property
    def bucket(self) -> str:
        digest = hashlib.sha256(self.identity.encode()).hexdigest()[:32]
        return f"{self.limit.value}:{self.scope}:{digest}"

    def window(self, now: float) -> tuple[int, int]:
        start = int(now // self.period) * self.period
        return start, start + self.period

    def describe(self) -> str:
        amount = f"{self.allowance / 1000:g} s of audio" if self.limit is Limit.SYNTHESIS_AUDIO else self.allowance
        per = "day" if self.period == DAY else "minute"
        whose = {"tenant": "this tenant", "subject": "this token's subject", "address": "this address"}[self.scope]
        return f"{self.limit.value.split('_')[0]} budget of {whose} is spent: {amount} per {per}"


def _caller(principal: Principal | None) -> RefusedCaller:
    if principal is None:
        return RefusedCaller(iss="anonymous", sub="anonymous", role="anonymous", tenant=None)
    role = sorted(principal.roles)[0].value  # as gateway.shared.actors.actor_of names it
    return RefusedCaller(iss=principal.issuer, sub=principal.subject, role=role, tenant=principal.tenant)


class RateLimiter:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        limits: RateLimits,
        anonymous_detection_per_minute: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._limits = limits
        self._anonymous_per_minute = anonymous_detection_per_minute
        self._clock = clock

    # --- what services and dependencies call --------------------------------------------------

    def admit(self, principal: Principal, kind: RequestKind) -> None:
        """Count one request of ``kind`` against the caller's tenant and subject budgets, or raise
        `RateLimited` and count nothing; a synthesis also needs audio left in its day."""
        limit = _REQUESTS_LIMIT[kind]
        budgets = [b for b in self._budgets(principal) if b.limit is limit]
        audio = [b for b in self._budgets(principal) if b.limit is Limit.SYNTHESIS_AUDIO]
        self._take(principal, requests=budgets, audio=audio if kind is RequestKind.SYNTHESIS else [])

    def admit_anonymous_detection(self, address: str) -> None:
        budget = Budget(Limit.DETECTION_REQUESTS, "address", address, self._anonymous_per_minute, MINUTE)
        self._take(None, requests=[budget], audio=[])

    def spend_audio(self, principal: Principal, *, seconds: float) -> None:
        """Add released audio to the caller's day quotas, whatever they show. Never raises: the
        audio is already released, so a store failure here is logged, not the request's answer."""
        now = self._clock()
        budgets = [b for b in self._budgets(principal) if b.limit is Limit.SYNTHESIS_AUDIO]
        if not budgets:
            return
        try:
            self._spend(budgets, now=now, milliseconds=max(1, round(seconds * 1000)))
        except Exception:
            log.error("could not count %.1f s of released audio against the quota", seconds, exc_info=True)

    def _spend(self, budgets: list[Budget], *, now: float, milliseconds: int) -> None:
        with transaction(self._sessions) as session:
            for budget in budgets:
                start, end = budget.window(now)
                store.add(
                    session,
                    bucket=budget.bucket,
                    window_start=start,
                    expires_at=end,
                    amount=milliseconds,
                )

    # --- inside --------------------------------------------------------------------------------

    def _budgets(self, principal: Principal) -> list[Budget]:
        sets: list[tuple[str, str, LimitSet]] = []
        if principal.tenant is not None:
            sets.append(("tenant", principal.tenant, self._limits.of_tenant(principal.tenant)))
        sets.append(("subject", f"{principal.issuer}|{principal.subject}", self._limits.of_subject()))
        budgets = []
        for scope, identity, limits in sets:
            for limit in Limit:
                allowance = getattr(limits, limit.value)
                if allowance is None:
                    continue
                if limit is Limit.SYNTHESIS_AUDIO:
                    budgets.append(Budget(limit, scope, identity, round(allowance * 1000), DAY))
                else:
                    budgets.append(Budget(limit, scope, identity, int(allowance), MINUTE))
        return budgets

    def _take(self, principal: Principal | None, *, requests: list[Budget], audio: list[Budget]) -> None:
        if not requests and not audio:
            return
        now = self._clock()
        refused: Budget | None = None
        with transaction(self._sessions) as session:
            for budget, amount, ceiling in [
                *((b, 1, b.allowance) for b in requests),
                *((b, 0, b.allowance - 1) for b in audio),  # some audio left?
            ]:
                start, end = budget.window(now)
                if (
                    store.add_within(
                        session,
                        bucket=budget.bucket,
                        window_start=start,
                        expires_at=end,
                        amount=amount,
                        ceiling=ceiling,
                    )
                    is None
                ):
                    refused = budget
                    session.rollback()  # what the other budgets counted for this request goes too
                    break
        if refused is None:
            return
        self._count_refusal(principal, refused, now=now)
        raise RateLimited(refused.describe(), retry_after=refused.window(now)[1] - now)

    def _count_refusal(self, principal: Principal | None, budget: Budget, *, now: float) -> None:
        RATE_LIMITED.labels(budget.limit.value, budget.scope).inc()
        with transaction(self._sessions) as session:
            store.count_refusal(
                session,
                bucket=budget.bucket,
                window_start=int(now // MINUTE) * MINUTE,
                limit_name=f"{budget.scope}_{budget.limit.value}",
                caller=_caller(principal),
                now=datetime.fromtimestamp(now, UTC),
            )
