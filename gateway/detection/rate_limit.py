"""A token bucket per client address, for anonymous detection only."""

from __future__ import annotations

import threading
import time

from gateway.errors import GatewayError


class DetectRateLimited(GatewayError):
    code = "detect_rate_limited"
    status = 429

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, round(retry_after)))}


class AnonymousRateLimiter:
    def __init__(self, *, per_minute: int) -> None:
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                raise DetectRateLimited("too many anonymous detection requests", retry_after=(1 - tokens) / self._rate)
            self._buckets[client] = (tokens - 1.0, now)
