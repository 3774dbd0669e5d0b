"""Deactivation requests end to end: status change, confirmed stop, erasure, receipt, hooks.

One path serves every caller (CLI, HTTP API, the demo): `request` records a pending
receipt at once (idempotent by request id) and `process` carries it out:

1. change the account's status (or remove the device) in the registry, which publishes
   the lifecycle event;
2. wait until every running collector has acknowledged the event: gate closed, polls
   cancelled, subscriptions dropped, in-flight records purged;
3. for a revocation, apply each retention class's end action in every sink;
4. complete the receipt, audit it, queue the outbound webhooks and call in-process hooks.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from collector.core.errors import UnknownDevice
from collector.core.interfaces import AccountData
from collector.retention import RetentionPolicy
from collector.runtime.lifecycle import end_account, is_outstanding
from provisioning.events import LifecycleEvent
from provisioning.models import AccountStatus
from provisioning.outbox import ALL_WEBHOOKS, Outbox
from provisioning.plugins import Hook, call_hooks, load_hooks
from provisioning.receipts import Action, Receipt, ReceiptBook, ReceiptStatus
from provisioning.registry import Registry

T = TypeVar("T")
Runner = Callable[[Callable[[], T]], Awaitable[T]]
STOP_EVENT = "collection.stopped"
DEFAULT_ACK_TIMEOUT_S = 5.0  # how long a stop waits for running collectors (ServiceConfig.ack_timeout_s)
_STATUS = {
    Action.SUSPEND: AccountStatus.INACTIVE,
    Action.REVOKE: AccountStatus.REVOKED,
    Action.REACTIVATE: AccountStatus.ACTIVE,
}


def action_for_status(status: AccountStatus) -> Action:
    return {v: k for k, v in _STATUS.items()}[status]


async def _in_thread(job: Callable[[], T]) -> T:
    return await asyncio.to_thread(job)


# Registry, receipt and outbox calls (SQLite) go to a worker thread: never on the loop.
_io = asyncio.to_thread


class Deactivator:
    def __init__(
        self,
        registry: Registry,
        receipts: ReceiptBook,
        holders: Sequence[AccountData],
        policy: RetentionPolicy,
        *,
        outbox: Outbox | None = None,
        hooks: Sequence[tuple[str, Hook]] = (),
        ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
        run_blocking: Runner[Any] = _in_thread,
        remote_end: Callable[[str, datetime], dict[str, Any] | None] | None = None,
    ) -> None:
        """`holders`: the stores erased directly; `remote_end(account, revoked_at)`: the
        remote stores' erasure of one revocation, done once (RetentionSweeper.end_revocation)."""
        self._remote_end = remote_end
        self.registry = registry
        self._registry = registry
        self.receipts = receipts
        self._holders = list(holders)
        self._policy = policy
        self._outbox = outbox
        self._hooks = list(hooks)
        self._ack_timeout = ack_timeout_s
        self._run = run_blocking

    @property
    def unavailable(self) -> tuple[type[Exception], ...]:
        return self._registry.db.unavailable

    def request(
        self,
        action: Action,
        account_id: str,
        reason: str = "",
        request_id: str | None = None,
        device_id: str | None = None,
    ) -> tuple[Receipt, bool]:
        """Accept a request: validate it and return its pending receipt (or the existing one,
        also once the account has ended and the registry keeps it only as a pseudonym)."""
        if request_id is not None and self.receipts.find(request_id) is not None:
            return self.receipts.open(action, account_id, reason, request_id, device_id)
        self._registry.account(account_id)  # raises UnknownAccount
        if device_id is not None:
            device = self._registry.device(device_id)
            if device is None or device.account_id != account_id:
                # One answer for both, so a caller cannot probe other accounts' devices.
                raise UnknownDevice(f"account {account_id} has no device {device_id}")
        return self.receipts.open(action, account_id, reason, request_id, device_id)

    async def process(self, receipt: Receipt) -> Receipt:
        """Carry out a pending receipt, or (one whose stop is done and whose erasure is
        outstanding somewhere) retry the erasure. Done only once every store confirmed."""
        if receipt.status is not ReceiptStatus.PENDING:
            return receipt
        if "erased" in receipt.result:
            return await self._complete(receipt, await self._erase(receipt, receipt.result))
        try:
            result = await self._carry_out(receipt)
        except Exception as exc:
            await _io(
                self._registry.record_audit,
                "receipt.failed",
                {"receipt": receipt.id, "error": str(exc)},
                account_id=receipt.account_id,
                device_id=receipt.device_id,
            )
            return await _io(self.receipts.finish, receipt.id, ReceiptStatus.FAILED, {"error": str(exc)})
        return await self._complete(receipt, result)

    async def _erase(self, receipt: Receipt, result: dict[str, Any]) -> dict[str, Any]:
        reason = receipt.reason or "revoked"
        before = result.get("erased", {})
        result = dict(result)
        account, registry, holders, policy = receipt.account_id, self._registry, self._holders, self._policy

        revoked_at = datetime.fromisoformat(str(result.get("revoked_at") or datetime.now(UTC).isoformat()))
        end = self._remote_end
        remote = None if end is None else functools.partial(end, account, revoked_at)

        def erase() -> dict[str, Any]:
            return end_account(registry, holders, policy, account, reason, before, remote)

        result["erased"] = await self._run(erase)
        return result

    async def _complete(self, receipt: Receipt, result: dict[str, Any]) -> Receipt:
        """Done, or still pending with the stores that have not confirmed the erasure."""
        outstanding = sorted(k for k, v in result.get("erased", {}).items() if is_outstanding(v))
        result.pop("outstanding", None)
        if outstanding:
            result["outstanding"] = outstanding
            pending = await _io(self.receipts.progress, receipt.id, result)
            await _io(
                self._registry.record_audit,
                "receipt.erasure_outstanding",
                {"receipt": receipt.id, "stores": outstanding},
                account_id=receipt.account_id,
            )
            return pending
        # Audit and notices first, the receipt done last: once nothing about an account is
        # pending, the registry may forget it (provisioning.forget), and nothing may name
        # it after. A crash in between leaves the receipt pending: retried, notified again.
        await _io(
            self._registry.record_audit,
            "receipt.completed",
            {"receipt": receipt.id, "action": receipt.action.value, **result},
            account_id=receipt.account_id,
            device_id=receipt.device_id,
        )
        if result.get("collection_stopped"):
            await _io(self._notify, receipt, result)
        return await _io(self.receipts.finish, receipt.id, ReceiptStatus.DONE, result)

    async def _carry_out(self, receipt: Receipt) -> dict[str, Any]:
        before = (await _io(self._registry.account, receipt.account_id)).status
        event: LifecycleEvent | None
        if receipt.action is Action.REMOVE_DEVICE:
            assert receipt.device_id is not None
            event = await _io(self._registry.remove_device, receipt.device_id)
        else:
            status = _STATUS[receipt.action]
            event = await _io(self._registry.set_status, receipt.account_id, status, receipt.reason)
        stopping = receipt.action is not Action.REACTIVATE
        changed = await _io(self._registry.account, receipt.account_id)
        after = changed.status
        result: dict[str, Any] = {
            "status_before": before.value,
            "status_after": after.value,
            "collection_stopped": stopping,
            "changed": event is not None,
        }
        if receipt.action is Action.REVOKE:
            result["revoked_at"] = changed.status_changed_at.isoformat()
        if event is not None and stopping:
            result.update(await self._await_acks(event))
        if stopping:
            last_seen: dict[str, datetime] = {}
            for holder in self._holders:
                seen_by_device = await self._run(functools.partial(holder.last_seen, receipt.account_id))
                for device, seen in seen_by_device.items():
                    last_seen[device] = max(seen, last_seen.get(device, seen))
            devices = (
                [receipt.device_id]
                if receipt.device_id
                else [d.id for d in await _io(self._registry.devices, receipt.account_id)]
            )
            result["devices"] = [
                {"device_id": d, "last_seen": last_seen[d].isoformat() if d in last_seen else None}
                for d in devices
            ]
        if receipt.action is Action.REVOKE:
            result = await self._erase(receipt, result)
            result["end_actions"] = {c.name: c.end_action.value for c in self._policy.classes.values()}
        return result

    async def _await_acks(self, event: LifecycleEvent) -> dict[str, Any]:
        """Wait until each running collector confirms it stopped; report who did and when."""
        started = time.monotonic()
        live = set(await _io(self._registry.live_collectors))
        acks: dict[str, datetime] = {}
        while time.monotonic() - started < self._ack_timeout:
            acks = await _io(self._registry.event_acks, event.id)
            if live <= set(acks):
                break
            await asyncio.sleep(0.01)
        latency = max(((at - event.at).total_seconds() * 1000 for at in acks.values()), default=0.0)
        return {
            "stopped_at": event.at.isoformat(),
            "acknowledged_by": {c: at.isoformat() for c, at in acks.items()},
            "unacknowledged": sorted(live - set(acks)),
            "stop_latency_ms": round(latency, 1),
        }

    def _notify(self, receipt: Receipt, result: dict[str, Any]) -> None:
        payload = {
            "event": STOP_EVENT,
            "receipt_id": receipt.id,
            "request_id": receipt.request_id,
            "account_id": receipt.account_id,
            "device_id": receipt.device_id,
            "action": receipt.action.value,
            "reason": receipt.reason,
            "when": result.get("stopped_at") or datetime.now(UTC).isoformat(),
            "devices": result.get("devices", []),
            "erased": result.get("erased", {}),
        }
        if self._outbox is not None:
            # One entry for all webhooks: the running service's dispatcher fans it out to
            # the webhooks in its config, so a CLI call needs no config to notify them.
            self._outbox.enqueue(ALL_WEBHOOKS, STOP_EVENT, payload, receipt.account_id)
        if self._hooks:
            outcome = call_hooks(self._hooks, payload)
            self._registry.record_audit(
                "hook.called", {"receipt": receipt.id, "hooks": outcome}, account_id=receipt.account_id
            )


def build_deactivator(
    registry: Registry,
    holders: Sequence[AccountData],
    policy: RetentionPolicy,
    *,
    ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
    run_blocking: Runner[Any] = _in_thread,
    remote_end: Callable[[str, datetime], dict[str, Any] | None] | None = None,
) -> Deactivator:
    """The one way every entry point (service, CLI, demo) assembles a Deactivator."""
    return Deactivator(
        registry,
        ReceiptBook.of(registry),
        holders,
        policy,
        outbox=Outbox(registry.db),
        hooks=load_hooks(),
        ack_timeout_s=ack_timeout_s,
        run_blocking=run_blocking,
        remote_end=remote_end,
    )
