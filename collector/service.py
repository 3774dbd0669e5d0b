"""Wiring: sinks first, then the pipeline, then sources; stopped in reverse with a flush."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from collector.config import ServiceConfig
from collector.gate import Gate
from collector.lifecycle import LifecycleWatcher
from collector.pipeline import Pipeline
from collector.profiles import load_profiles
from collector.retention import load_policy
from collector.retention.sweeper import RetentionSweeper
from collector.sinks.sqlite_store import SqliteStore
from collector.sources.mqtt import MqttSubscriber
from collector.sources.snmp import SnmpPoller
from collector.stats import Stats
from collector.tag import Tagger
from provisioning.registry import Registry

log = logging.getLogger(__name__)


def registry_path(data_dir: Path) -> Path:
    return data_dir / "registry.db"


def store_path(data_dir: Path) -> Path:
    return data_dir / "telemetry.db"


class Service:
    def __init__(self, config: ServiceConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.policy = load_policy(config.retention_policy)
        self.profiles = load_profiles(config.profile_dirs)
        communities = config.communities()
        self.registry = registry or Registry(registry_path(config.data_dir))
        self.store = SqliteStore(store_path(config.data_dir))
        self.stats = Stats()
        self.gate = Gate(self.registry)
        self.pipeline = Pipeline(self.gate, Tagger(self.policy), [self.store], self.store, self.stats)
        self.watcher = LifecycleWatcher(self.registry, self.pipeline, self.policy, config.lifecycle_poll_s)
        self.sweeper = RetentionSweeper(self.policy, self.store, self.registry)
        self.poller = (
            SnmpPoller(self.pipeline, self.profiles, config.snmp, communities)
            if config.snmp.enabled
            else None
        )
        self.subscriber = (
            MqttSubscriber(self.pipeline, self.profiles, config.mqtt) if config.mqtt.enabled else None
        )
        for source in (self.poller, self.subscriber):
            if source is not None:
                self.watcher.on_event(source.on_event)
        self._tasks: list[asyncio.Task[None]] = []

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def start(self) -> None:
        self.pipeline.start()
        self._spawn(self.watcher.run(), "lifecycle")
        self._spawn(self._sweep_forever(), "sweeper")
        if self.subscriber is not None:
            await self.subscriber.start()
        if self.poller is not None:
            self._spawn(self.poller.run(), "snmp-poller")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.poller is not None:
            await self.poller.close()
        if self.subscriber is not None:
            await self.subscriber.stop()
        await self.watcher.drain()
        await self.pipeline.stop()
        self.store.close()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval_s)
            try:
                counts = await self.pipeline.run_in_writer(self.sweeper.sweep)
            except Exception:
                log.exception("retention sweep failed; will try again next interval")
                continue
            if any(counts.values()):
                log.info("retention sweep ended %s", counts)
