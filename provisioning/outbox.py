"""Outbound deactivation webhooks: a persistent outbox, HMAC-SHA256 signatures, and a
dispatcher that delivers at least once with capped exponential backoff.

Entries live in the registry database, so a receiver outage or a restart of hookflash
loses nothing: the next dispatcher to run picks up whatever is still pending. Each
delivery carries a stable `X-Hookflash-Delivery` id so receivers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from provisioning.db import open_db, transaction

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY, webhook TEXT NOT NULL, event TEXT NOT NULL, account_id TEXT,
    payload TEXT NOT NULL, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, claimed_until REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending', delivered_at REAL, last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt_at);
"""
ALL_WEBHOOKS = "*"  # fanned out by the dispatcher to every webhook in its config
SIGNATURE_HEADER = "X-Hookflash-Signature"
TIMESTAMP_HEADER = "X-Hookflash-Timestamp"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` over `<timestamp>.<body>`; the timestamp stops replays of old bodies."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """What a receiver runs: constant-time compare, and reject stale timestamps."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


@dataclass(frozen=True)
class WebhookTarget:
    name: str
    url: str
    secret: bytes  # never logged: only the name and URL appear in messages
    timeout_s: float = 5.0

    def __repr__(self) -> str:
        return f"WebhookTarget(name={self.name!r}, url={self.url!r}, secret=<hidden>)"


@dataclass(frozen=True)
class OutboxEntry:
    id: str
    webhook: str
    event: str
    account_id: str | None
    payload: str
    attempts: int


class Outbox:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._db = open_db(path, _SCHEMA)

    def enqueue(self, webhook: str, event: str, payload: Mapping[str, Any], account_id: str | None) -> str:
        entry_id = f"dlv_{uuid.uuid4().hex}"
        now = self._clock()
        with self._lock:
            self._db.execute(
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
        with transaction(self._db, self._lock):
            rows = self._db.execute(
                "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
                " AND claimed_until <= ? ORDER BY next_attempt_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
            self._db.executemany(
                "UPDATE outbox SET claimed_until = ? WHERE id = ?", [(now + lease_s, r["id"]) for r in rows]
            )
        return [
            OutboxEntry(r["id"], r["webhook"], r["event"], r["account_id"], r["payload"], r["attempts"])
            for r in rows
        ]

    def fan_out(self, entry: OutboxEntry, webhooks: list[str]) -> None:
        """Replace an all-webhooks entry by one entry per webhook (ids stable: `<id>.<name>`)."""
        now = self._clock()
        with transaction(self._db, self._lock):
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (id, webhook, event, account_id, payload, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (f"{entry.id}.{name}", name, entry.event, entry.account_id, entry.payload, now, now)
                    for name in webhooks
                ],
            )
            self._db.execute("UPDATE outbox SET status = 'fanned-out' WHERE id = ?", (entry.id,))

    def delivered(self, entry_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1,"
                " claimed_until = 0 WHERE id = ?",
                (self._clock(), entry_id),
            )

    def failed(self, entry_id: str, error: str, retry_in_s: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
                " claimed_until = 0 WHERE id = ?",
                (error[:500], self._clock() + retry_in_s, entry_id),
            )

    def entries(self, account_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM outbox", tuple[str, ...]()
        if account_id is not None:
            sql, args = sql + " WHERE account_id = ?", (account_id,)
        with self._lock:
            return [dict(r) for r in self._db.execute(sql + " ORDER BY created_at", args)]


def backoff_s(attempts: int, base_s: float = 1.0, cap_s: float = 300.0) -> float:
    """Capped exponential backoff with ±20% jitter so receivers coming back are not stampeded."""
    return float(min(cap_s, base_s * 2 ** min(attempts, 20)) * random.uniform(0.8, 1.2))


AuditFn = Callable[[str, dict[str, Any], str | None], None]


class WebhookDispatcher:
    def __init__(
        self,
        outbox: Outbox,
        targets: Mapping[str, WebhookTarget],
        audit: AuditFn,
        poll_s: float = 0.5,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        self._outbox = outbox
        self._targets = dict(targets)
        self._audit = audit
        self._poll_s = poll_s
        self._base = base_backoff_s
        self._cap = max_backoff_s

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                await self.deliver_due(client)
                await asyncio.sleep(self._poll_s)

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        entries = await asyncio.to_thread(self._outbox.claim_due)
        if any(e.webhook == ALL_WEBHOOKS for e in entries):
            for entry in entries:
                if entry.webhook == ALL_WEBHOOKS:
                    await asyncio.to_thread(self._outbox.fan_out, entry, sorted(self._targets))
            entries = await asyncio.to_thread(self._outbox.claim_due)
        results = await asyncio.gather(*(self._deliver(client, e) for e in entries), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):  # e.g. the registry was locked: retried next round
                log.error("webhook delivery round failed: %s", result)
        return sum(1 for r in results if r is True)

    async def _deliver(self, client: httpx.AsyncClient, entry: OutboxEntry) -> bool:
        target = self._targets.get(entry.webhook)
        if target is None:
            await asyncio.to_thread(
                self._outbox.failed, entry.id, f"no webhook named {entry.webhook!r} in config", self._cap
            )
            return False
        body = entry.payload.encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "hookflash-webhook/1",
            "X-Hookflash-Event": entry.event,
            "X-Hookflash-Delivery": entry.id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(target.secret, timestamp, body),
        }
        try:
            response = await client.post(target.url, content=body, headers=headers, timeout=target.timeout_s)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if error is None:
            await asyncio.to_thread(self._outbox.delivered, entry.id)
            await asyncio.to_thread(
                self._audit,
                "hook.delivered",
                {
                    "webhook": entry.webhook,
                    "event": entry.event,
                    "delivery": entry.id,
                    "attempts": entry.attempts + 1,
                },
                entry.account_id,
            )
            return True
        retry = backoff_s(entry.attempts, self._base, self._cap)
        log.warning(
            "webhook %s (%s) delivery %s failed (%s); retry in %.1fs",
            entry.webhook,
            target.url,
            entry.id,
            error,
            retry,
        )
        await asyncio.to_thread(self._outbox.failed, entry.id, error, retry)
        return False
