"""Backoff between retries, shared by every delivery path (LTI Advantage calls, the outbox)."""

from __future__ import annotations

import random


def equal_jitter(base: float, retry: int, cap: float) -> float:
    """Exponential backoff with "equal jitter": between half and all of base * 2^retry,
    capped, so that many clients failing together do not retry together."""
    ceiling = min(cap, base * (2**retry))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
