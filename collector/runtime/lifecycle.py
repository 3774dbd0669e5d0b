"""Reacting to registry lifecycle events inside a running collector.

Each event is handled exactly once: in-process listeners deliver it at once, and a poll
of the registry delivers what other processes emitted. With the registry in PostgreSQL,
a notification (LISTEN/NOTIFY, sent in the transaction that commits the change) wakes the
watcher at once, and after a lost connection the same catch-up query runs; the poll then
is only a safety net. For an event that stops
collection the order is: flip the gate (no new polls, nothing more stored), let the
sources cancel polls and drop subscriptions, purge records that were already in flight,
then acknowledge the event in the registry. Whoever asked for the stop (CLI, HTTP API)
waits for that acknowledgement before reporting collection as stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collector.core.backoff import Backoff
from collector.core.errors import NotErasedHere
from collector.core.interfaces import AccountData
from collector.gate import Gate
from collector.retention import RetentionPolicy
from collector.runtime.pipeline import Pipeline
from provisioning.events import LifecycleEvent
from provisioning.models import Account, Device
from provisioning.registry import Registry

log = logging.getLogger(__name__)
EventCallback = Callable[[LifecycleEvent], None]
HEARTBEAT_S = 1.0
LISTENING_POLL_S = 1.0  # the safety-net poll when the registry notifies
LISTEN_RETRY_S, LISTEN_RETRY_MAX_S = 0.1, 5.0  # reconnecting the listener


OUTSTANDING = ("failed:", "outstanding:")
RemoteEnd = Callable[[], dict[str, Any] | None]  # one revocation's remote erasure: per store, or None


def end_account(
    registry: Registry,
    holders: Sequence[AccountData],
    policy: RetentionPolicy,
    account_id: str,
    reason: str,
    done: Mapping[str, Any] | None = None,
    remote: RemoteEnd | None = None,
) -> dict[str, Any]:
    """Apply every class's end action to an account's data wherever it is held, and audit
    it. Per store (the quarantine counts under the embedded store it lives in): counts per
    class; "failed: <reason>" when the store did not confirm; "outstanding: …" for a remote
    store the service of this data dir writes to that is not among `holders` and that
    `remote` (the remote stores' erasure of this revocation, remembered in the ledger so it
    runs once) did not confirm; or what a store keeps by its own retention. `done`: the
    stores that confirmed before (a retry leaves them be)."""
    classes = list(policy.classes.values())
    counts: dict[str, Any] = {k: v for k, v in (done or {}).items() if not is_outstanding(v)}
    confirmed = set(counts)
    for holder in holders:
        if holder.name in confirmed:
            continue
        try:
            ended = holder.erase_account(account_id, classes, policy.anonymization)
        except NotErasedHere as exc:
            counts[holder.name] = str(exc)
            continue
        except Exception as exc:
            counts[holder.name] = f"failed: {str(exc)[:300]}"
            log.error("account %s: erasure in %s failed: %s", account_id, holder.name, exc)
            continue
        held = counts.setdefault(holder.name, {})
        if isinstance(held, dict):
            held.update(ended)
    missing = [name for name in registry.remote_stores() if name not in counts]
    if missing and remote is not None:
        try:
            remote_done = remote()
        except Exception as exc:
            log.error("account %s: remote erasure failed: %s", account_id, exc)
            remote_done = None
        for name in missing:
            counts[name] = (remote_done or {}).get(name, "failed: not confirmed; retried")
    for name in missing:
        counts.setdefault(name, "outstanding: erased by the running service, which writes to it")
    registry.record_audit(
        "account.data_ended",
        {"reason": reason, "counts": counts, "actions": {c.name: c.end_action.value for c in classes}},
        account_id=account_id,
    )
    return counts


def is_outstanding(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(OUTSTANDING)


@dataclass(frozen=True)
class Change:
    event: LifecycleEvent
    device: Device | None  # for a device event: the device now (None: it was removed)
    account: Account | None  # the device's account, when the gate has not seen it yet


class LifecycleWatcher:
    def __init__(
        self,
        registry: Registry,
        gate: Gate,
        pipeline: Pipeline,
        holders: Sequence[AccountData],
        poll_interval: float = 0.2,
        after_event: int = 0,
    ) -> None:
        """`after_event`: the last event id reflected in the gate's initial state."""
        self._registry = registry
        self._gate = gate
        self._pipeline = pipeline
        self._holders = list(holders)
        self._poll_interval = poll_interval
        self._last_id = after_event
        self._callbacks: list[EventCallback] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._reading = asyncio.Lock()
        self.collector_id = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        registry.subscribe(self._from_registry)

    def on_event(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    async def run(self) -> None:
        """Poll the registry for events (another process's changes) and apply them; wake at
        once for this process's own. Every registry read runs in a worker thread: a
        registry locked by another process (a long import) holds up the watcher, never
        the event loop that collects."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        next_beat = 0.0
        stop_listening = None
        try:
            reconnect = Backoff(LISTEN_RETRY_S, LISTEN_RETRY_MAX_S, jitter=0.2)
            stop_listening = self._registry.listen(self._wake_up, reconnect)  # starts a thread, at once
            listening = stop_listening is not None
            poll = max(self._poll_interval, LISTENING_POLL_S) if listening else self._poll_interval
            while True:
                try:
                    if self._loop.time() >= next_beat:
                        beat = self._registry.collector_heartbeat
                        await asyncio.to_thread(beat, self.collector_id, os.getpid())
                        next_beat = self._loop.time() + HEARTBEAT_S
                    await self._catch_up()
                except self._registry.db.errors as exc:  # e.g. locked by a long import: retry shortly
                    log.error("reading lifecycle events failed, retrying: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)
                self._wake.clear()
        finally:
            if stop_listening is not None:
                await asyncio.to_thread(stop_listening)
            await asyncio.to_thread(self._registry.collector_gone, self.collector_id)

    async def drain(self) -> None:
        """Wait for purge jobs already started."""
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)

    def _from_registry(self, _event: LifecycleEvent) -> None:
        """An in-process change (from any thread): wake the watcher. Events are always
        applied from the registry in id order, so one emitted by another process a moment
        earlier is not skipped."""
        self._wake_up()

    def _wake_up(self) -> None:
        """From any thread: read the registry's events now."""
        loop = self._loop
        if loop is None or self._wake is None:
            return  # not started yet: the first poll picks it up
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to wake
            loop.call_soon_threadsafe(self._wake.set)

    async def _catch_up(self) -> None:
        async with self._reading:  # one reader at a time: events are applied in id order
            for change in await asyncio.to_thread(self._read_changes, self._last_id):
                self._handle(change)

    def _read_changes(self, after: int) -> list[Change]:
        """In a worker thread: the events after `after`, each with what the gate needs to
        apply it (the device as it is now, and its account)."""
        return [Change(event, *self._gate.read(event)) for event in self._registry.events_since(after)]

    def _handle(self, change: Change) -> None:
        event = change.event
        if event.id <= self._last_id:
            return
        self._last_id = event.id
        self._gate.update(event, change.device, change.account)
        for callback in self._callbacks:
            callback(event)
        if event.stops_collection:
            log.info(
                "%s for account %s%s: collection stopped",
                event.type.value,
                event.account_id,
                f" device {event.device_id}" if event.device_id else "",
            )
            self._spawn(self._finish_stop(event))

    @staticmethod
    def _purge(holders: Sequence[AccountData], event: LifecycleEvent) -> int:
        """Remove stragglers wherever they are held; a store that fails is reported, not
        waited for: collection has stopped whatever a remote store answers."""
        purged = 0
        for holder in holders:
            try:
                purged += holder.purge_since(event.account_id, event.at, event.device_id)
            except Exception as exc:
                log.error(
                    "account %s: purging in-flight records from %s failed: %s",
                    event.account_id,
                    holder.name,
                    exc,
                )
        return purged

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def _finish_stop(self, event: LifecycleEvent) -> None:
        try:
            await self._purge_and_ack(event)
        except Exception:
            log.exception("finishing the stop of account %s failed", event.account_id)

    async def _purge_and_ack(self, event: LifecycleEvent) -> None:
        holders = self._holders
        # In the writer thread, behind any write already queued there.
        purged = await self._pipeline.run_in_writer(lambda: self._purge(holders, event))
        if purged:
            log.info("account %s: removed %d records that were in flight", event.account_id, purged)
        await asyncio.to_thread(self._registry.ack_event, event.id, self.collector_id)
