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

from collector.alerts.state import forget_account_in
from collector.core.errors import NotErasedHere
from collector.core.interfaces import Sink
from collector.core.records import Anonymization, RetentionClass
from collector.retention import RetentionPolicy
from collector.runtime.paths import alerts_path
from collector.sinks.sqlite import EmbeddedStore
from provisioning.models import Account, AccountStatus
from provisioning.outbox import Outbox
from provisioning.receipts import ReceiptBook
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
        webhooks: Sequence[str] | None = None,
    ) -> None:
        """`webhooks`: the webhooks the service of this data dir notifies; None where that
        is not known (the CLI), so notices waiting for them are left to the service."""
        self._webhooks = None if webhooks is None else list(webhooks)
        self._policy = policy
        self._store = store
        self._registry = registry
        self._clock = clock
        self._remote = list(remote)
        self._outbox = Outbox(registry.db)  # webhook notices delivered about ended accounts
        self._receipts = ReceiptBook.of(registry)

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
        forgotten = self._forget_ended(now)
        if sum(ended.values()) or expired_quarantine or forgotten:
            self._store.sink.db.forget_erased()  # what ended leaves the WAL too
            summary = {**ended, "quarantine": expired_quarantine, "accounts_forgotten": forgotten}
            self._registry.record_audit("retention.swept", summary)
        return dict(ended)

    def _forget_ended(self, now: datetime) -> int:
        """Forget (provisioning.forget) each account whose data has ended everywhere: no
        record or quarantined payload of it left here, every remote store done, no receipt
        outstanding and no notice about it waiting to be delivered."""
        if self._webhooks == []:
            self._outbox.settle_unaddressed()
        pending = {r.account_id for r in self._receipts.pending()}
        remote = bool(self._remote or set(self._registry.remote_stores()) - {self._store.sink.name})
        forgotten = 0
        for account in self._registry.accounts():
            if (
                not self._ended(account, now)
                or account.id in pending
                or (remote and not self._store.ledger.remote_erased(account.id, account.status_changed_at))
                or self._store.sink.last_seen(account.id)
                or self._store.quarantine.last_seen(account.id)
                or self._outbox.pending_for(account.id)
            ):
                continue
            counts = self._registry.forget_account(account.id)  # its delivered notices too
            forget_account_in(alerts_path(self._registry.data_dir), account.id)
            self._store.ledger.forget(account.id)
            log.info("retention: account data ended everywhere; registry keeps a pseudonym: %s", counts)
            forgotten += 1
        return forgotten

    def _ended(self, account: Account, now: datetime) -> bool:
        """Revoked, or inactive for longer than the grace period."""
        return account.status is AccountStatus.REVOKED or (
            account.status is AccountStatus.INACTIVE
            and now - account.status_changed_at >= self._policy.inactive_grace
        )

    def _ending(self, account: Account, now: datetime) -> list[RetentionClass]:
        """The classes whose data of this account must be gone by now."""
        every = list(self._policy.classes.values())
        if account.status is AccountStatus.REVOKED:
            # Revocation ends every class, whatever its TTL (normally done at once by the
            # deactivation; repeated here so data written by any path cannot linger).
            return every
        return [c for c in every if c.while_active] if self._ended(account, now) else []

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
        self._registry.record_audit(  # before the mark, after which the account may be forgotten
            "retention.remote_ended",
            {"sinks": [s.name for s in self._remote], "classes": [c.name for c in ending]},
            account_id=account_id,
        )
        self._store.ledger.mark_remote_erased(account_id, since)
        return done
