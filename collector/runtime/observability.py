"""The read side of a running service: fleet views, alerts, self-metrics and the NOC
dashboard, built from the service's parts (collector.runtime.service wires it in)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from collector.alerts.engine import AlertEngine
from collector.config import ServiceConfig
from collector.core.stats import Stats
from collector.gate import Gate
from collector.runtime.metrics import ServiceMetrics, exposition
from collector.runtime.paths import alerts_path
from collector.runtime.pipeline import Pipeline
from collector.runtime.spooled import SpooledSink
from collector.views.cache import ReportCache
from collector.views.db import ViewsDb
from collector.views.fleet import FleetViews
from provisioning.events import EventType, LifecycleEvent
from provisioning.models import AccountStatus
from provisioning.registry import Registry

T = TypeVar("T")
log = logging.getLogger(__name__)
ROLLOUT_CACHE_S = 15.0  # a rollout report of 50,000 devices takes seconds; the page asks every few


class Observability:
    def __init__(
        self,
        config: ServiceConfig,
        registry: Registry,
        pipeline: Pipeline,
        remote: Sequence[SpooledSink],
        stats: Stats,
        gate: Gate,
    ) -> None:
        data = config.data_dir
        self.config = config
        self._registry = registry
        self.stats = stats
        self.views = FleetViews(ViewsDb(data / "telemetry.db", registry.db), config.views)
        self.rollouts = ReportCache(ROLLOUT_CACHE_S)
        self._forgetting: set[asyncio.Future[None]] = set()
        self.alerts = (
            AlertEngine(
                config.alerts,
                self.views.db,
                alerts_path(data),
                gate.allows,
                sinks=lambda: [sink.health() for sink in remote],
            )
            if config.alerts.enabled
            else None
        )
        self.metrics = ServiceMetrics(
            stats,
            queue_depth=lambda: pipeline.queue_depth,
            queue_capacity=pipeline.queue_capacity,
            remote=remote,
            accounts=self._accounts,
            alerts=self.alerts.firing_counts if self.alerts is not None else dict,
        )

    def _accounts(self) -> dict[str, int]:
        return {
            r[0]: r[1] for r in self.views.db.rows("SELECT status, count(*) FROM reg.accounts GROUP BY 1")
        }

    def metrics_exposition(self) -> bytes:
        return exposition(self.metrics)

    def tasks(self) -> list[tuple[Coroutine[Any, Any, None], str]]:
        if self.alerts is None:
            return []
        tasks: list[tuple[Coroutine[Any, Any, None], str]] = [(self._run_alerts(self.alerts), "alerts")]
        dispatcher = self.alerts.dispatcher()
        if dispatcher is not None:
            tasks.append((dispatcher.run(), "alert-webhooks"))
        return tasks

    async def _run_alerts(self, alerts: AlertEngine) -> None:
        def forget_stopped() -> int:
            active = {a.id for a in self._registry.accounts() if a.status is AccountStatus.ACTIVE}
            return alerts.forget_all_but(active)

        forgotten = await asyncio.to_thread(forget_stopped)
        if forgotten:
            log.info("alerts: forgot %d account(s) that stopped while hookflash was down", forgotten)
        await alerts.run()

    def on_event(self, event: LifecycleEvent) -> None:
        """A lifecycle event (from the LifecycleWatcher): count stops, forget their alerts."""
        if not event.stops_collection:
            return
        self.stats.collection_stops[event.type.value] += 1
        self.rollouts.clear()
        if self.alerts is not None:
            device = event.device_id if event.type is EventType.DEVICE_REMOVED else None
            # alerts.db is SQLite: forgotten in a worker thread, never on the loop.
            forget = self.alerts.forget
            task = asyncio.get_running_loop().run_in_executor(None, forget, event.account_id, device)
            self._forgetting.add(task)
            task.add_done_callback(self._forgotten)

    def _forgotten(self, task: asyncio.Future[None]) -> None:
        self._forgetting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("forgetting a stopped account's alerts failed: %s", task.exception())

    async def settle(self) -> None:
        """Wait for the forgetting of stopped accounts' alerts that is under way."""
        if self._forgetting:
            await asyncio.gather(*self._forgetting, return_exceptions=True)

    def close(self) -> None:
        if self.alerts is not None:
            self.alerts.close()
        self.views.db.close()
