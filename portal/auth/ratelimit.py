"""Moving-window rate limits for sign-in, backed by the ``limits`` library.

Limits are kept in Redis when ``REDIS_URL`` is set (shared by every process),
in memory otherwise. If Redis cannot be reached the limiter falls back to a
per-process memory window: limits get looser across processes but never
disappear (we fail to a local limit, not to "unlimited").
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    name: str
    item: RateLimitItem


# OWASP ASVS level 2 and our reference notes.
LOGIN_PER_ACCOUNT = Rule("login-account", parse("10 per 5 minutes"))
LOGIN_PER_IP = Rule("login-ip", parse("10 per 5 minutes"))
MFA_PER_ACCOUNT = Rule("mfa-account", parse("5 per 5 minutes"))
MFA_PER_ACCOUNT_HOURLY = Rule("mfa-account-hour", parse("20 per hour"))
FAILURES_PER_ACCOUNT_HOURLY = Rule("fail-account-hour", parse("100 per hour"))


class Limited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


class RateLimiter:
    def __init__(self, redis_url: str | None) -> None:
        self._fallback = MovingWindowRateLimiter(MemoryStorage())
        self._primary: MovingWindowRateLimiter | None = None
        if redis_url:
            storage = storage_from_string(redis_url)
            assert isinstance(storage, Storage)
            self._primary = MovingWindowRateLimiter(storage)
        self.using_fallback = self._primary is None

    def _limiter(self) -> MovingWindowRateLimiter:
        return self._primary or self._fallback

    def _call(self, method: str, *args: object) -> object:
        limiter = self._limiter()
        try:
            result = getattr(limiter, method)(*args)
            self.using_fallback = limiter is self._fallback
            return result
        except Exception as exc:  # the store is down: keep limiting locally
            if limiter is self._fallback:
                raise
            if not self.using_fallback:
                log.warning("rate-limit store unreachable (%s); using a local window", type(exc).__name__)
            self.using_fallback = True
            return getattr(self._fallback, method)(*args)

    def check(self, *checks: tuple[Rule, str]) -> None:
        """Raise ``Limited`` if any (rule, key) is exhausted; nothing is counted."""
        waits = [
            self._retry_after(rule, key) for rule, key in checks if not self._call("test", rule.item, rule.name, key)
        ]
        if waits:
            raise Limited(max(waits))

    def hit(self, *checks: tuple[Rule, str]) -> None:
        for rule, key in checks:
            self._call("hit", rule.item, rule.name, key)

    def take(self, rule: Rule, key: str) -> None:
        """Count one attempt against ``rule``, refusing it if the window is full: one call to the store (a
        moving window's hit is refused, and not counted, when it would pass the limit)."""
        if not self._call("hit", rule.item, rule.name, key):
            raise Limited(self._retry_after(rule, key))

    def attempt(self, *checks: tuple[Rule, str]) -> None:
        """Count one attempt against every rule, refusing it if any is exhausted."""
        self.check(*checks)
        self.hit(*checks)

    def _retry_after(self, rule: Rule, key: str) -> int:
        stats = self._call("get_window_stats", rule.item, rule.name, key)
        reset_time = getattr(stats, "reset_time", time.time() + rule.item.get_expiry())
        return max(1, math.ceil(float(reset_time) - time.time()))

    def reset(self) -> None:
        for limiter in (self._primary, self._fallback):
            if limiter is not None:
                try:
                    limiter.storage.reset()
                except Exception:
                    log.warning("could not reset rate-limit storage", exc_info=True)
