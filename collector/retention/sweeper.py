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
        every = list(self._policy.classes.values())
        lifetime = [c for c in every if c.while_active]
        for account in self._registry.accounts():
            if account.status is AccountStatus.REVOKED:
                # Revocation ends every class, whatever its TTL (normally done at once by the
                # deactivation; repeated here so data written by any path cannot linger).
                ending = every
            elif (
                account.status is AccountStatus.INACTIVE
                and now - account.status_changed_at >= self._policy.inactive_grace
            ):
                ending = lifetime
            else:
                continue
            counts = self._store.erase_account(account.id, ending, texts)
            for cls in ending:
                ended[cls.name] += counts[cls.name]
        expired_quarantine = self._store.expire_quarantine(now - self._policy.quarantine_ttl)
        if sum(ended.values()) or expired_quarantine:
            self._registry.record_audit("retention.swept", {**ended, "quarantine": expired_quarantine})
        return dict(ended)
