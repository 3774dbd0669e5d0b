"""The retention sweeper: ends records whose class's time is up (P3, P5).

Duration classes end by age. "while-active" classes end when the account is revoked,
or once it has been inactive for the policy's grace period. The clock is injected so
tests can move time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from collector.retention.policy import RetentionPolicy
from collector.sinks.sqlite_store import SqliteStore
from provisioning.models import AccountStatus
from provisioning.registry import Registry

Clock = Callable[[], datetime]


class RetentionSweeper:
    def __init__(
        self,
        policy: RetentionPolicy,
        store: SqliteStore,
        registry: Registry,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._policy = policy
        self._store = store
        self._registry = registry
        self._clock = clock

    def sweep(self) -> dict[str, int]:
        """One pass; returns how many records each class ended."""
        now = self._clock()
        ended: Counter[str] = Counter(dict.fromkeys(self._policy.classes, 0))
        texts = self._policy.aggregate_text_fields
        for cls in self._policy.classes.values():
            if cls.ttl is not None:
                ended[cls.name] += self._store.expire(cls, now - cls.ttl, texts)
        lifetime = [c for c in self._policy.classes.values() if c.while_active]
        for account in self._registry.accounts():
            over = account.status is AccountStatus.REVOKED or (
                account.status is AccountStatus.INACTIVE
                and now - account.status_changed_at >= self._policy.inactive_grace
            )
            if not over or not lifetime:
                continue
            devices = [d.id for d in self._registry.devices(account.id)]
            counts = self._store.erase_account(account.id, devices, lifetime, texts)
            for name in (c.name for c in lifetime):
                ended[name] += counts[name]
        if sum(ended.values()):
            self._registry.record_audit("retention.swept", dict(ended))
        return dict(ended)
