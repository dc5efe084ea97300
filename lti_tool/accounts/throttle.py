"""Failed sign-in attempts, counted per account and per client address (the `limits` library).

After too many failures within the window an account (or an address) is locked until the
oldest failure leaves the window, whatever password is tried then. The counts live in Redis
when the tool has one, so every process and host sees them; without Redis (the embedded
default: one process) they live in memory.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class Lockout:
    """Why attempts are refused, and for how long."""

    scope: str  # "account" or "address"
    retry_after_seconds: int

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after_seconds / 60))


class SignInThrottle:
    def __init__(
        self,
        storage_uri: str,
        max_per_account: int,
        max_per_address: int,
        window_minutes: int,
    ) -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.account_limit = RateLimitItemPerMinute(max_per_account, window_minutes)
        self.address_limit = RateLimitItemPerMinute(max_per_address, window_minutes)

    def _checks(self, email: str, address: str):
        yield "account", self.account_limit, ("lti-tool-signin-account", email)
        yield "address", self.address_limit, ("lti-tool-signin-address", address)

    def locked(self, email: str, address: str) -> Lockout | None:
        """The lockout in force for this e-mail or this address, if any."""
        for scope, limit, keys in self._checks(email, address):
            if not self.limiter.test(limit, *keys):
                reset_at = self.limiter.get_window_stats(limit, *keys).reset_time
                return Lockout(scope, max(1, math.ceil(reset_at - time.time())))
        return None

    def record_failure(self, email: str, address: str) -> None:
        for _scope, limit, keys in self._checks(email, address):
            self.limiter.hit(limit, *keys)

    def forget_account(self, email: str) -> None:
        """A successful sign-in clears the account's failures (not the address's)."""
        self.limiter.clear(self.account_limit, "lti-tool-signin-account", email)
