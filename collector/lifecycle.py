"""Reacting to registry lifecycle events: stop collection, purge stragglers, erase on revoke.

`end_account` is also what the CLI runs when no collector is running, so a revocation
erases data whether or not the service is up; both paths are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from collector.pipeline import Pipeline
from collector.retention import RetentionPolicy
from collector.sinks.base import Sink
from provisioning.events import EventType, LifecycleEvent
from provisioning.registry import Registry

log = logging.getLogger(__name__)
EventCallback = Callable[[LifecycleEvent], None]


def end_account(
    registry: Registry, sinks: Sequence[Sink], policy: RetentionPolicy, account_id: str, reason: str
) -> dict[str, dict[str, int]]:
    """Apply every class's end action to an account's data in every sink, and audit it."""
    device_ids = [d.id for d in registry.devices(account_id)]
    classes = list(policy.classes.values())
    counts = {
        sink.name: sink.erase_account(account_id, device_ids, classes, policy.aggregate_text_fields)
        for sink in sinks
    }
    registry.record_audit(
        "account.data_ended",
        {
            "reason": reason,
            "counts": counts,
            "actions": {c.name: c.end_action.value for c in classes},
        },
        account_id=account_id,
    )
    return counts


class LifecycleWatcher:
    """Delivers each registry event exactly once: in-process at once, cross-process by polling."""

    def __init__(
        self,
        registry: Registry,
        pipeline: Pipeline,
        policy: RetentionPolicy,
        poll_interval: float = 0.2,
    ) -> None:
        self._registry = registry
        self._pipeline = pipeline
        self._policy = policy
        self._poll_interval = poll_interval
        self._last_id = registry.last_event_id()
        self._callbacks: list[EventCallback] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        registry.subscribe(self._from_registry)

    def on_event(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            for event in self._registry.events_since(self._last_id):
                self._handle(event)
            await asyncio.sleep(self._poll_interval)

    async def drain(self) -> None:
        """Wait for purge and erasure jobs already started."""
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)

    def _from_registry(self, event: LifecycleEvent) -> None:
        loop = self._loop
        if loop is None:
            return  # not started yet: the first poll picks it up
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._handle(event)
        else:
            loop.call_soon_threadsafe(self._handle, event)

    def _handle(self, event: LifecycleEvent) -> None:
        if event.id <= self._last_id:
            return
        self._last_id = event.id
        self._pipeline.gate.apply(event)
        for callback in self._callbacks:
            callback(event)
        if event.stops_collection:
            log.info("account %s: %s, collection stopped", event.account_id, event.type.value)
            self._spawn(self._stop_account(event))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def _stop_account(self, event: LifecycleEvent) -> None:
        sinks = self._pipeline.sinks
        # Records observed at or after the change that slipped past the gate are removed,
        # in the writer thread, after any write already queued there.
        purged = await self._pipeline.run_in_writer(
            lambda: sum(s.purge_account_since(event.account_id, event.at) for s in sinks)
        )
        if purged:
            log.info("account %s: removed %d in-flight records", event.account_id, purged)
        if event.type is EventType.ACCOUNT_REVOKED:
            await self._pipeline.run_in_writer(
                lambda: end_account(self._registry, sinks, self._policy, event.account_id, "revoked")
            )
