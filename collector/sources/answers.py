"""The answers a UDP source owes to requests it has seen, kept for a while: a retransmitted
request (a SIP transaction's, an SNMP inform's) is answered again, or absorbed while its
answer is pending, and reaches the intake only once."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable

PENDING = b""  # seen, answer not settled yet


class RecentAnswers:
    """Per request key, its answer (PENDING until settled), for `keep_s` and at most
    `bound` requests (the oldest go first)."""

    def __init__(self, keep_s: float, bound: int = 100_000) -> None:
        self._keep_s = keep_s
        self._bound = bound
        self._seen: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()

    def get(self, key: Hashable) -> bytes | None:
        """The answer (PENDING while unsettled), or None for a request not seen lately."""
        self._expire(time.monotonic())
        found = self._seen.get(key)
        return None if found is None else found[1]

    def put(self, key: Hashable, answer: bytes = PENDING) -> None:
        """A request seen: pending, or answered with `answer`. Keeps its first sighting."""
        started = self._seen[key][0] if key in self._seen else time.monotonic()
        self._seen[key] = (started, answer)

    def forget(self, key: Hashable) -> None:
        """Not answered after all (refused): the sender's next try is taken as new."""
        self._seen.pop(key, None)

    def _expire(self, now: float) -> None:
        seen = self._seen
        while seen:
            started = next(iter(seen.values()))[0]
            if now - started < self._keep_s and len(seen) < self._bound:
                break
            seen.popitem(last=False)
