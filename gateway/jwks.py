"""The identity provider's signing keys (a JWKS from a file or a URL), kept current.

What the gateway promises about them (docs/operations.md, "Identity provider"):
- the set is read again every refresh interval, and at once when a token names a `kid` the set
  does not hold — such look-ups no more often than the minimum interval: a new key is accepted
  on the first token that names it, and a flood of made-up kids costs the provider one request
  per minimum interval;
- each successful read replaces the whole set: a key the provider removed is refused from the
  next read on (revocation without a restart);
- a file is read again as soon as its size, time or inode changes;
- a failed read (unreachable, an error status, not a JWKS, no usable key) is logged, counted,
  shown by `/readyz` and answered 503 `identity_provider_unavailable` — a token that cannot be
  checked is not called forged. `grace_seconds` keeps the last good set in use for that long
  instead (0, the default: refuse at once, since a revoked key cannot be told from a good one).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt
from prometheus_client import Counter, Gauge

from gateway.errors import AuthenticationFailed, IdentityProviderUnavailable

log = logging.getLogger("clonegate.auth")

# A JWKS is a few keys; anything much larger is not one (and must not fill memory).
MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS = 64
# The key types a signature algorithm we accept may use; symmetric (`oct`) keys never come from a JWKS.
SIGNING_KEY_TYPES = ("RSA", "EC")

# Exported by whoever serves /metrics (prometheus_client's default registry).
JWKS_REFRESHES = Counter(
    "clonegate_jwks_refreshes", "Reads of the identity provider's key set, by outcome", ["outcome"]
)
JWKS_UP = Gauge("clonegate_jwks_up", "1 when the latest read of the identity provider's key set succeeded")
JWKS_KEYS = Gauge("clonegate_jwks_keys", "Signing keys in the key set in use")
JWKS_LAST_SUCCESS = Gauge(
    "clonegate_jwks_last_success_timestamp_seconds", "Unix time of the latest successful key set read"
)


class KeySetUnusable(Exception):
    """The source answered, but not with a key set we can use."""


class JwksSource(Protocol):
    description: str

    def read(self) -> bytes: ...

    def changed(self) -> bool:
        """Whether the source may hold something new since the last read (files: stat changed)."""
        ...


class FileSource:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.description = f"file {self.path}"
        self._signature: tuple[int, int, int] | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def read(self) -> bytes:
        self._signature = self._stat()
        with open(self.path, "rb") as handle:
            return handle.read(MAX_JWKS_BYTES + 1)

    def changed(self) -> bool:
        return self._stat() != self._signature


class UrlSource:
    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.description = f"URL {url}"
        self._timeout = timeout

    def read(self) -> bytes:
        with httpx.stream("GET", self.url, timeout=self._timeout, headers={"Accept": "application/json"}) as answer:
            if answer.status_code != 200:
                raise KeySetUnusable(f"HTTP {answer.status_code}")
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    break
            return body

    def changed(self) -> bool:
        return False  # a URL is read on the interval and on an unknown kid only


def parse_key_set(document: bytes) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS document by `kid`; `KeySetUnusable` if there is none."""
    if len(document) > MAX_JWKS_BYTES:
        raise KeySetUnusable(f"larger than {MAX_JWKS_BYTES} bytes")
    try:
        members = json.loads(document)["keys"]
    except (ValueError, TypeError, KeyError) as exc:
        raise KeySetUnusable(f"not a JWKS document ({type(exc).__name__})") from None
    if not isinstance(members, list):
        raise KeySetUnusable("`keys` is not a list")
    keys: dict[str, jwt.PyJWK] = {}
    for member in members[:MAX_KEYS]:
        if not isinstance(member, dict) or member.get("kty") not in SIGNING_KEY_TYPES:
            continue
        kid = member.get("kid")
        if not isinstance(kid, str) or not kid or member.get("use", "sig") != "sig" or kid in keys:
            continue
        try:
            keys[kid] = jwt.PyJWK(member)
        except jwt.PyJWTError:
            continue  # a key we cannot use (an unsupported curve) is skipped, as RFC 7517 §5 allows
    if not keys:
        raise KeySetUnusable("no RSA or EC signing key with a kid")
    return keys


@dataclass(frozen=True)
class KeySetStatus:
    source: str
    keys: int
    up: bool
    last_error: str | None
    last_success_age_seconds: float | None


class JwksKeySet:
    """The current keys, refreshed as the module docstring says; thread-safe."""

    def __init__(
        self,
        source: JwksSource,
        *,
        refresh_seconds: float,
        min_refresh_seconds: float,
        grace_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._refresh_seconds = refresh_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._grace_seconds = grace_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._attempted_at = float("-inf")
        self._looked_up_at = float("-inf")
        self._succeeded_at: float | None = None
        self._error: str | None = None

    def load(self) -> None:
        """Read the set now (at start-up); the outcome is recorded, never raised."""
        with self._lock:
            self._refresh()

    def key(self, kid: str) -> jwt.PyJWK:
        """The key named `kid`, or `AuthenticationFailed` (no such key in a set we could read)
        or `IdentityProviderUnavailable` (the latest read failed)."""
        with self._lock:
            now = self._clock()
            refreshed = True
            if now - self._attempted_at >= self._refresh_seconds or self._source.changed():
                self._refresh()
            elif self._error is not None and now - self._attempted_at >= self._min_refresh_seconds:
                self._refresh()  # an outage: try again, no more often than the minimum interval
            else:
                refreshed = False
            if not refreshed and kid not in self._keys and now - self._looked_up_at >= self._min_refresh_seconds:
                # First sight of a kid: perhaps the provider has just rotated. Only these reads are
                # bounded by the minimum interval, so a rotation right after a scheduled read still works.
                self._looked_up_at = now
                self._refresh()
            if not self._usable():
                raise IdentityProviderUnavailable(
                    f"the identity provider's keys cannot be read ({self._error}); try again shortly",
                    retry_after=self._min_refresh_seconds,
                )
            found = self._keys.get(kid)
        if found is None:
            raise AuthenticationFailed(f"no key with id {kid!r}", code="token_unknown_key")
        return found

    def ready(self) -> bool:
        """For /readyz: tokens can be checked now (retries a failed read when one is due)."""
        with self._lock:
            if self._error is not None and self._clock() - self._attempted_at >= self._min_refresh_seconds:
                self._refresh()
            return self._usable()

    def status(self) -> KeySetStatus:
        with self._lock:
            age = None if self._succeeded_at is None else self._clock() - self._succeeded_at
            return KeySetStatus(
                source=self._source.description,
                keys=len(self._keys),
                up=self._error is None and self._succeeded_at is not None,
                last_error=self._error,
                last_success_age_seconds=age,
            )

    def _usable(self) -> bool:
        if self._succeeded_at is None:
            return False
        if self._error is None:
            return True
        return self._clock() - self._succeeded_at <= self._grace_seconds

    def _refresh(self) -> None:
        self._attempted_at = self._clock()
        try:
            keys = parse_key_set(self._source.read())
        except (OSError, httpx.HTTPError, KeySetUnusable) as exc:
            self._record_failure(_describe(exc))
            return
        if self._error is not None:
            log.info("identity provider keys readable again", extra={"jwks": self._source.description})
        removed = sorted(set(self._keys) - set(keys))
        if removed:
            log.info("identity provider keys removed: %s", removed, extra={"jwks": self._source.description})
        self._keys, self._error, self._succeeded_at = keys, None, self._attempted_at
        JWKS_REFRESHES.labels(outcome="ok").inc()
        JWKS_UP.set(1)
        JWKS_KEYS.set(len(keys))
        JWKS_LAST_SUCCESS.set(time.time())

    def _record_failure(self, reason: str) -> None:
        self._error = reason
        log.error("cannot read the identity provider's keys from %s: %s", self._source.description, reason)
        JWKS_REFRESHES.labels(outcome="failed").inc()
        JWKS_UP.set(0)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(exc)


def key_set_from(*, file: Path | None, url: str | None, timeout: float, **refresh: Any) -> JwksKeySet | None:
    """The key set of the configured source (None when there is none), read once now."""
    source: JwksSource
    if file is not None:
        source = FileSource(file)
    elif url is not None:
        source = UrlSource(url, timeout=timeout)
    else:
        return None
    key_set = JwksKeySet(source, **refresh)
    key_set.load()
    return key_set
