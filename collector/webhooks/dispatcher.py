"""Delivering the outbox's notices: at least once, retried with capped exponential
backoff (jittered, so receivers coming back are not stampeded), each signed.

Each delivery carries a stable `X-Hookflash-Delivery` id so receivers can drop duplicates.
Several dispatchers (processes) may share an outbox: entries are leased while delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from collector.core.backoff import backoff_delay
from collector.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from provisioning.outbox import ALL_WEBHOOKS, Outbox, OutboxEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookTarget:
    name: str
    url: str
    secret: bytes  # never logged: only the name and URL appear in messages
    timeout_s: float = 5.0

    def __repr__(self) -> str:
        return f"WebhookTarget(name={self.name!r}, url={self.url!r}, secret=<hidden>)"


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
            # Audited before it is marked delivered: once no notice about an account is
            # pending, the registry may forget the account, and nothing may name it after.
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
            await asyncio.to_thread(self._outbox.delivered, entry.id)
            return True
        retry = backoff_delay(entry.attempts + 1, self._base, self._cap, jitter=0.2)
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
