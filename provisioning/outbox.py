"""The webhook outbox: notices waiting to be delivered, persistent so that a receiver
outage or a restart of hookflash loses nothing (collector.webhooks delivers them).

Entries live in the registry database (deactivation notices) or in alerts.db (alert
notices); whoever opens an outbox by path names the file's schema, which holds the outbox
tables, or hands over the registry's open database (SQLite or PostgreSQL).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioning.database import Database, SqliteDatabase
from provisioning.db import Schema
from provisioning.schema import REGISTRY

ALL_WEBHOOKS = "*"  # fanned out by the dispatcher to every webhook in its config


@dataclass(frozen=True)
class OutboxEntry:
    id: str
    webhook: str
    event: str
    account_id: str | None
    payload: str
    attempts: int


class Outbox:
    def __init__(
        self, location: Path | Database, schema: Schema = REGISTRY, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._db = (
            SqliteDatabase(location, schema, "secure_delete=ON") if isinstance(location, Path) else location
        )

    def enqueue(self, webhook: str, event: str, payload: Mapping[str, Any], account_id: str | None) -> str:
        entry_id = f"dlv_{uuid.uuid4().hex}"
        now = self._clock()
        self._db.run(
            "INSERT INTO outbox (id, webhook, event, account_id, payload, created_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                entry_id,
                webhook,
                event,
                account_id,
                json.dumps(payload, sort_keys=True, default=str),
                now,
                now,
            ),
        )
        return entry_id

    def claim_due(self, limit: int = 50, lease_s: float = 30) -> list[OutboxEntry]:
        """Due entries, leased so another dispatcher (another process) skips them meanwhile."""
        now = self._clock()
        with self._db.transaction() as tx:
            rows = tx.query(
                "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
                " AND claimed_until <= ? ORDER BY next_attempt_at LIMIT ?",
                (now, now, limit),
            )
            tx.runmany(
                "UPDATE outbox SET claimed_until = ? WHERE id = ?", [(now + lease_s, r["id"]) for r in rows]
            )
        return [
            OutboxEntry(r["id"], r["webhook"], r["event"], r["account_id"], r["payload"], r["attempts"])
            for r in rows
        ]

    def fan_out(self, entry: OutboxEntry, webhooks: list[str]) -> None:
        """Replace an all-webhooks entry by one entry per webhook (ids stable: `<id>.<name>`)."""
        now = self._clock()
        with self._db.transaction() as tx:
            tx.runmany(
                "INSERT INTO outbox (id, webhook, event, account_id, payload, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    (f"{entry.id}.{name}", name, entry.event, entry.account_id, entry.payload, now, now)
                    for name in webhooks
                ],
            )
            tx.run("UPDATE outbox SET status = 'fanned-out' WHERE id = ?", (entry.id,))

    def settle_unaddressed(self) -> int:
        """No webhook is configured: a notice for all webhooks reaches nobody. Marked
        fanned out (to none), so that it does not wait for ever, nor reach a webhook
        configured later with news that is no longer news."""
        return self._db.run(
            "UPDATE outbox SET status = 'fanned-out' WHERE webhook = ? AND status = 'pending'",
            (ALL_WEBHOOKS,),
        )

    def delivered(self, entry_id: str) -> None:
        self._db.run(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1,"
            " claimed_until = 0 WHERE id = ?",
            (self._clock(), entry_id),
        )

    def forget_delivered(self, account_id: str) -> int:
        """Delivered notices about an account whose data has ended (and the originals
        fanned out to each webhook): not kept (P5). Pending ones stay until delivered (the
        revocation's own stop notice among them)."""
        return self._db.run("DELETE FROM outbox WHERE account_id = ? AND status != 'pending'", (account_id,))

    def pending_for(self, account_id: str) -> int:
        """Notices about this account still to be delivered."""
        row = self._db.one(
            "SELECT count(*) FROM outbox WHERE account_id = ? AND status = 'pending'", (account_id,)
        )
        assert row is not None
        return int(row[0])

    def failed(self, entry_id: str, error: str, retry_in_s: float) -> None:
        self._db.run(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
            " claimed_until = 0 WHERE id = ?",
            (error[:500], self._clock() + retry_in_s, entry_id),
        )

    def entries(self, account_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM outbox", tuple[str, ...]()
        if account_id is not None:
            sql, args = sql + " WHERE account_id = ?", (account_id,)
        return [dict(r) for r in self._db.query(sql + " ORDER BY created_at", args)]
