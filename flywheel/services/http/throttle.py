"""Rate limits of the HTTP API: requests per token, failed authentications per client address.

Both are moving windows of the `limits` library, counted in memory (no Redis): each ingress
replica counts on its own, so with N replicas a client may get up to N times a rate. A refused
request is 429 with ``Retry-After`` (whole seconds until the window frees a slot).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class Throttle:
    """Counts requests per token name and failed authentications per client address."""

    def __init__(self, per_token: str, failed_auth_per_client: str):
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_token: RateLimitItem = parse(per_token)
        self._failed_auth: RateLimitItem = parse(failed_auth_per_client)

    def take(self, token_name: str) -> int | None:
        """Count one request of ``token_name``: None when allowed, else seconds to wait."""
        if self._limiter.hit(self._per_token, "token", token_name):
            return None
        return self._wait(self._per_token, "token", token_name)

    def auth_blocked(self, address: str) -> int | None:
        """None when ``address`` may try to authenticate, else seconds to wait."""
        if self._limiter.test(self._failed_auth, "auth", address):
            return None
        return self._wait(self._failed_auth, "auth", address)

    def auth_failed(self, address: str) -> None:
        """Count a failed authentication from ``address``."""
        self._limiter.hit(self._failed_auth, "auth", address)

    def _wait(self, item: RateLimitItem, *key: str) -> int:
        stats = self._limiter.get_window_stats(item, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))
