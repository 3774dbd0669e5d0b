"""A small time-bounded cache for reports that take seconds to compute (rollouts)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class ReportCache:
    """Reports computed at most once per `ttl_s` for the same question; emptied whenever
    collection stops for anyone, so a stopped account's devices never linger in one."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            found = self._entries.get(key)
        if found is not None and found[0] > time.monotonic():
            return found[1]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            if len(self._entries) > 64:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self._ttl, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
