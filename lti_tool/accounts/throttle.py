"""Failed attempts to get in, counted per key in a moving window (the `limits` library).

After too many failures within the window a key (an account, a client address) is locked until
the oldest failure leaves the window, whatever is tried then. The counts live in Redis when the
tool has one, so every process and host sees them; without Redis (the embedded default: one
process) they live in memory. Sign-in (web/signin.py) counts per account and per address; the
API (web/api.py) counts failed token authentications per address.
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


def make_limiter(storage_uri: str) -> MovingWindowRateLimiter:
    """A limiter on Redis (`redis://...`) or in this process's memory (`memory://`)."""
    return MovingWindowRateLimiter(storage_from_string(storage_uri))


class FailureLimit:
    """At most `max_failures` failures per key of one `scope` within `window_minutes`."""

    def __init__(
        self,
        limiter: MovingWindowRateLimiter,
        namespace: str,
        scope: str,
        max_failures: int,
        window_minutes: int,
    ) -> None:
        self.limiter = limiter
        self.namespace = namespace
        self.scope = scope
        self.limit = RateLimitItemPerMinute(max_failures, window_minutes)

    def locked(self, key: str) -> Lockout | None:
        """The lockout in force for this key, if any."""
        if self.limiter.test(self.limit, self.namespace, key):
            return None
        reset_at = self.limiter.get_window_stats(self.limit, self.namespace, key).reset_time
        return Lockout(self.scope, max(1, math.ceil(reset_at - time.time())))

    def record_failure(self, key: str) -> None:
        self.limiter.hit(self.limit, self.namespace, key)

    def forget(self, key: str) -> None:
        self.limiter.clear(self.limit, self.namespace, key)


class SignInThrottle:
    """Failed sign-ins, per account (an e-mail) and per client address."""

    def __init__(
        self,
        storage_uri: str,
        max_per_account: int,
        max_per_address: int,
        window_minutes: int,
    ) -> None:
        limiter = make_limiter(storage_uri)
        self.account = FailureLimit(
            limiter, "lti-tool-signin-account", "account", max_per_account, window_minutes
        )
        self.address = FailureLimit(
            limiter, "lti-tool-signin-address", "address", max_per_address, window_minutes
        )

    def locked(self, email: str, address: str) -> Lockout | None:
        """The lockout in force for this e-mail or this address, if any."""
        return self.account.locked(email) or self.address.locked(address)

    def record_failure(self, email: str, address: str) -> None:
        self.account.record_failure(email)
        self.address.record_failure(address)

    def forget_account(self, email: str) -> None:
        """A successful sign-in clears the account's failures (not the address's)."""
        self.account.forget(email)
