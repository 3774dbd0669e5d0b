"""Capped exponential backoff: the one every retry loop in hookflash uses (MQTT reconnects,
the pipeline's local writes, the spool worker, webhook deliveries, unreachable devices)."""

from __future__ import annotations

import random


def backoff_delay(failures: int, first_s: float, cap_s: float, jitter: float = 0.0) -> float:
    """The wait after `failures` consecutive failures (1 for the first): `first_s`, doubling
    each time, at most `cap_s`. `jitter` (0.2: ±20 %) spreads clients that failed together,
    so a receiver coming back is not stampeded."""
    delay = min(cap_s, first_s * 2.0 ** min(max(failures - 1, 0), 62))
    if jitter:
        delay *= random.uniform(1.0 - jitter, 1.0 + jitter)
    return float(delay)


class Backoff:
    """The same, for a loop that keeps its own count: `next()` after a failure, `reset()`
    after a success."""

    def __init__(self, first_s: float, cap_s: float, jitter: float = 0.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self.jitter = jitter
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return backoff_delay(self.failures, self.first_s, self.cap_s, self.jitter)

    def reset(self) -> None:
        self.failures = 0
