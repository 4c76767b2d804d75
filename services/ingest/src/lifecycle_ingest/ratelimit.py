"""Per-key rate limits: a token bucket per key, counted in events (a 100-event batch takes 100).

Pure arithmetic over an injected monotonic time; one `RateLimiter` per ingest instance, so the
limit a key gets is per instance (documented: with N instances behind a balancer, N times it).
The answers carry the IETF draft's `RateLimit-Limit/Remaining/Reset` headers and, when refused,
`Retry-After`: the seconds until the bucket holds enough tokens for this request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # until the bucket is full again
    retry_after_s: int  # until this request would fit (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(self.reset_s)}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class TokenBucket:
    def __init__(self, *, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def take(self, count: int, now: float) -> Decision:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        allowed = count <= self.tokens
        if allowed:
            self.tokens -= count
        short = 0.0 if allowed else count - self.tokens
        return Decision(allowed=allowed, limit=self.burst, remaining=int(self.tokens),
                        reset_s=math.ceil((self.burst - self.tokens) / self.rate),
                        retry_after_s=max(1, math.ceil(short / self.rate)) if not allowed else 0)


class RateLimiter:
    """One bucket per key id; at most `max_keys` buckets (the oldest forgotten, i.e. refilled)."""

    def __init__(self, *, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key_id: str, count: int, now: float) -> Decision:
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key_id] = TokenBucket(rate=self._rate, burst=self._burst, now=now)
        return bucket.take(count, now)
