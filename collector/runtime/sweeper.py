"""The retention sweeper: ends records whose class's time is up (P3, P5).

Duration classes end by age. "while-active" classes end when the account is revoked,
or once it has been inactive for the policy's grace period. The clock is injected so
tests can move time.

Remote sinks (InfluxDB) end duration classes themselves (each class's bucket has its
retention, see `hookflash influx ensure-buckets`); the sweeper tells them to end an
account's data once per status it reaches (inactive past the grace period, revoked), and
tries again at the next sweep if one of them fails.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from collector.core.errors import NotErasedHere
from collector.core.interfaces import Sink
from collector.core.records import Anonymization, RetentionClass
from collector.retention import RetentionPolicy
from collector.sinks.sqlite import EmbeddedStore
from provisioning.models import Account, AccountStatus
from provisioning.outbox import Outbox
from provisioning.registry import Registry

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


class RetentionSweeper:
    def __init__(
        self,
        policy: RetentionPolicy,
        store: EmbeddedStore,
        registry: Registry,
        clock: Clock = lambda: datetime.now(UTC),
        remote: Sequence[Sink] = (),
    ) -> None:
        self._policy = policy
        self._store = store
        self._registry = registry
        self._clock = clock
        self._remote = list(remote)
        self._outbox = Outbox(registry.path)  # webhook notices delivered about ended accounts

    def sweep(self) -> dict[str, int]:
        """One pass; returns how many records each class ended."""
        now = self._clock()
        ended: Counter[str] = Counter(dict.fromkeys(self._policy.classes, 0))
        texts = self._policy.anonymization
        for cls in self._policy.classes.values():
            if cls.ttl is not None:
                ended[cls.name] += self._store.sink.expire(cls, now - cls.ttl, texts)
        for account in self._registry.accounts():
            if account.status is AccountStatus.REVOKED:
                self._outbox.forget_delivered(account.id)
            ending = self._ending(account, now)
            if not ending:
                continue
            counts = self._store.sink.erase_account(account.id, ending, texts)
            self._store.quarantine.erase_account(account.id, ending, texts)
            for cls in ending:
                ended[cls.name] += counts[cls.name]
            self._end_remote(account.id, account.status_changed_at, ending, texts)
        expired_quarantine = self._store.quarantine.expire(now - self._policy.quarantine_ttl)
        if sum(ended.values()) or expired_quarantine:
            self._store.sink.db.forget_erased()  # what ended leaves the WAL too
            self._registry.record_audit("retention.swept", {**ended, "quarantine": expired_quarantine})
        return dict(ended)

    def _ending(self, account: Account, now: datetime) -> list[RetentionClass]:
        """The classes whose data of this account must be gone by now."""
        every = list(self._policy.classes.values())
        if account.status is AccountStatus.REVOKED:
            # Revocation ends every class, whatever its TTL (normally done at once by the
            # deactivation; repeated here so data written by any path cannot linger).
            return every
        if (
            account.status is AccountStatus.INACTIVE
            and now - account.status_changed_at >= self._policy.inactive_grace
        ):
            return [c for c in every if c.while_active]
        return []

    def end_remote(self, account_id: str | None = None) -> None:
        """Tell the remote sinks now, instead of at the next sweep: for one account (just
        revoked, perhaps by another process whose deactivation reached only the embedded
        store), or for all (at start-up, for what happened while hookflash was stopped)."""
        if not self._remote:
            return
        now = self._clock()
        for account in self._registry.accounts():
            if account_id is None or account.id == account_id:
                ending = self._ending(account, now)
                if ending:
                    self._end_remote(
                        account.id, account.status_changed_at, ending, self._policy.anonymization
                    )

    def end_revocation(self, account_id: str, revoked_at: datetime) -> dict[str, Any] | None:
        """The remote sinks' part of one revocation (a receipt's): every class erased there,
        once (the ledger remembers it, whoever did it first). Per sink what it did, or None
        while one has not confirmed."""
        every = list(self._policy.classes.values())
        return self._end_remote(account_id, revoked_at, every, self._policy.anonymization)

    def _end_remote(
        self, account_id: str, since: datetime, ending: list[RetentionClass], texts: Anonymization
    ) -> dict[str, Any] | None:
        done: dict[str, Any] = {}
        if not self._remote or self._store.ledger.remote_erased(account_id, since):
            return {
                s.name: getattr(s, "not_erased_reason", None) or {c.name: -1 for c in ending}
                for s in self._remote
            }
        for sink in self._remote:
            try:
                done[sink.name] = sink.erase_account(account_id, ending, texts)
            except NotErasedHere as exc:  # its own retention bounds the data, by configuration
                done[sink.name] = str(exc)
            except Exception as exc:
                log.error(
                    "retention: ending %s's data in %s failed, next sweep retries: %s",
                    account_id,
                    sink.name,
                    exc,
                )
                return None
        self._store.ledger.mark_remote_erased(account_id, since)
        self._registry.record_audit(
            "retention.remote_ended",
            {
                "account_id": account_id,
                "sinks": [s.name for s in self._remote],
                "classes": [c.name for c in ending],
            },
        )
        return done
