"""Wiring: sinks first, then the pipeline and the intake, then the sources; stopped in
reverse with a flush. This is the one file that knows every room."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import uvicorn

from collector.api import create_app
from collector.config import ResolvedToken, ServiceConfig
from collector.core.backoff import Backoff
from collector.core.errors import RegistryConflict
from collector.core.files import tighten
from collector.core.interfaces import AccountData, Sink, Source
from collector.core.records import QuarantineEntry
from collector.core.stats import Stats
from collector.gate import Gate
from collector.profiles import ProfileResolver, load_profiles
from collector.retention import load_policy
from collector.runtime.context import RuntimeContext
from collector.runtime.deactivation import build_deactivator
from collector.runtime.intake import Intake
from collector.runtime.lifecycle import LifecycleWatcher
from collector.runtime.observability import Observability
from collector.runtime.paths import (
    location_path,
    note_location,
    noted_location,
    registry_of,
    registry_path,
    store_path,
)
from collector.runtime.pipeline import Pipeline
from collector.runtime.plugins import SOURCES
from collector.runtime.spooled import SpooledSink
from collector.runtime.sweeper import RetentionSweeper
from collector.sinks.influx import InfluxSink, RejectedPoint, line_protocol
from collector.sinks.sqlite import EmbeddedStore
from collector.tag import Tagger
from collector.tag.changes import ChangeDetector, config_hash
from collector.webhooks import WebhookDispatcher, WebhookTarget
from provisioning.events import EventType, LifecycleEvent
from provisioning.outbox import Outbox
from provisioning.receipts import Receipt, ReceiptStatus
from provisioning.registry import Registry

log = logging.getLogger(__name__)
# Pending receipts: looked for every RECEIPT_POLL_S; one left pending (a store that did not
# confirm its erasure) is retried after RECEIPT_RETRY_S, doubling up to RECEIPT_RETRY_MAX_S.
RECEIPT_POLL_S, RECEIPT_RETRY_S, RECEIPT_RETRY_MAX_S = 0.25, 5.0, 300.0
_GC_YOUNG = 20_000


def tune_gc() -> None:
    """Ingest allocates and frees many small objects per message; the collector's default
    (a young-generation pass every 700 allocations, rescanning everything alive in the
    queue) costs a tenth of the loop's time at full rate. What exists now (profiles,
    registry, policy) lives as long as the service: freeze it out of every pass. Collect
    first: garbage frozen would never be freed (a process that starts several services, as
    the tests do, would keep every closed connection's file open)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])


def check_shared_registry(config: ServiceConfig, registry: Registry) -> None:
    """Before a service starts on a registry in PostgreSQL: no other collector may be
    running on it (several collectors sharing one database are not supported yet: each
    would erase only its own embedded store), and a registry.db holding accounts in the data
    dir must not be left behind silently."""
    others = [c for c in registry.live_collectors() if not _gone_from_this_host(c)]
    if others:
        raise RegistryConflict(
            f"{registry.db.describe()}: another collector is running on this registry ({others[0]});"
            " one collector per database in this release: stop it first"
        )
    local = registry_path(config.data_dir)
    if not local.is_file():
        return
    own = Registry(local)
    try:
        held = len(own.accounts())
    finally:
        own.close()
    if held and not registry.accounts():
        raise RegistryConflict(
            f"{local} holds {held} account(s) but database_url names an empty registry: copy it first"
            f" (hookflash db copy --from {config.data_dir} --to {registry.db.describe()}), or move it away"
        )
    if held:
        log.warning("%s is not used: the registry is %s", local, registry.db.describe())


def _gone_from_this_host(collector_id: str) -> bool:
    """A collector of this host whose process no longer exists (it crashed less than a
    heartbeat window ago, and is being restarted): not another collector."""
    host, _, rest = collector_id.rpartition("-")[0].rpartition("-")
    if host != os.uname().nodename or not rest.isdigit():
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class Service:
    def __init__(self, config: ServiceConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.policy = load_policy(config.retention_policy)
        self.profiles = ProfileResolver(load_profiles(config.profile_dirs))
        config.resolved_credentials()  # a credential naming an unset variable stops start-up here
        noted = noted_location(config.data_dir)
        if config.database_url is None and noted is not None:
            raise RegistryConflict(
                f"the registry of {config.data_dir} is in {noted[0]} (its service noted so in"
                f" {location_path(config.data_dir).name}): set database_url, or remove that file to"
                " go back to the data dir's registry.db"
            )
        self._owns_registry = registry is None
        self.registry = registry or registry_of(
            config.data_dir, config.database_url, config.database_password_env
        )
        if config.database_url is not None:
            check_shared_registry(config, self.registry)
        note_location(config.data_dir, config.database_url, config.database_password_env)
        self.store = EmbeddedStore.open(store_path(config.data_dir))
        self.stats = Stats()
        # Every remote sink gets its own disk spool and worker: a slow one blocks nobody.
        self.remote: list[SpooledSink] = []
        if config.influx.enabled:
            classes = list(self.policy.classes)
            influx = InfluxSink.from_config(config.influx, classes, self._quarantine_rejected)
            self.remote.append(self._spooled(influx))
        self.sinks: list[Sink] = [self.store.sink, *self.remote]  # what every record is written to
        # What holds an account's data, for purges and erasure: the sinks and the quarantine.
        self.holders: list[AccountData] = [self.store.sink, self.store.quarantine, *self.remote]
        first_event = self.registry.last_event_id()  # before the gate reads the registry
        self.gate = Gate(self.registry)
        self.pipeline = Pipeline(self.gate, self.sinks, self.store.quarantine, self.stats)
        self.intake_changes = self._changes()  # what change detection knows of each device
        self.intake = Intake(
            self.gate,
            self.profiles,
            {plugin.name: plugin.codec(config, self.profiles) for plugin in SOURCES},
            Tagger(self.policy, self.intake_changes),
            self.pipeline,
            self.stats,
        )
        self.watcher = LifecycleWatcher(
            self.registry, self.gate, self.pipeline, self.holders, config.lifecycle_poll_s, first_event
        )
        self.sweeper = RetentionSweeper(
            self.policy,
            self.store,
            self.registry,
            remote=self.remote,
            webhooks=[w.name for w in config.webhooks],
        )
        self.sources: dict[str, Source] = {
            plugin.name: plugin.build(config, self.profiles) for plugin in SOURCES if plugin.enabled(config)
        }
        self.watcher.on_event(self._forget_profile)
        for source in self.sources.values():
            self.watcher.on_event(source.on_event)
        # Remote stores are erased through the sweeper's ledger, so each revocation once.
        self.deactivator = build_deactivator(
            self.registry,
            [self.store.sink, self.store.quarantine],
            self.policy,
            ack_timeout_s=config.ack_timeout_s,
            run_blocking=self.pipeline.run_in_writer,
            remote_end=self.sweeper.end_revocation if self.remote else None,
        )
        self.dispatcher = webhook_dispatcher(config, self.registry) if config.webhooks else None
        self.observability = Observability(
            config, self.registry, self.pipeline, self.remote, self.stats, self.gate
        )
        self.watcher.on_event(self.observability.on_event)
        self.watcher.on_event(self._on_lifecycle)
        # Resolved (and checked for length) now: a short or missing token stops start-up.
        self.api_tokens = config.api.resolved_tokens() if config.api.enabled else None
        self.api_server: uvicorn.Server | None = None
        self.api_port: int | None = None  # the bound port (config.api.port may be 0: any free port)
        self._tasks: list[asyncio.Task[None]] = []
        self._one_offs: set[asyncio.Task[None]] = set()

    def _changes(self) -> ChangeDetector:
        """Change detection, remembering each device's last firmware, uptime and config as
        stored, so a change across a restart counts."""
        changes = ChangeDetector()
        latest = self.store.queries.latest_fields
        changes.seed(
            firmware={d: str(f["version"]) for d, f in latest("firmware").items() if "version" in f},
            uptime={
                d: int(f["uptime_s"])
                for d, f in latest("performance").items()
                if isinstance(f.get("uptime_s"), int)
            },
            config={d: config_hash(f) for d, f in latest("config").items()},
        )
        return changes

    def _forget_profile(self, event: LifecycleEvent) -> None:
        if event.device_id is not None:
            self.profiles.forget(event.device_id)

    def _quarantine_rejected(self, points: Sequence[RejectedPoint]) -> None:
        """Points the InfluxDB server refused (400/422) go to the quarantine, each with the
        server's reason, and are counted there (from the sink's worker thread)."""
        now = datetime.now(UTC)
        entries = [
            QuarantineEntry.of(
                "influx",
                f"{p.record.kind.value} ({p.record.retention_class})",
                line_protocol(p.record).encode(),
                p.reason,
                now,
                p.record.device_id,
                p.record.account_id,
            )
            for p in points
        ]
        self.store.quarantine.quarantine(entries)
        self.stats.quarantined += len(entries)
        log.error("the InfluxDB sink refused %d points; they are in the quarantine", len(entries))

    def _spooled(self, sink: Sink) -> SpooledSink:
        return SpooledSink(
            sink,
            self.config.data_dir / "spool" / sink.name,
            self.stats,
            max_bytes=self.config.spool.max_mb * 1024 * 1024,
            erased=lambda record: self.gate.erased(record.device_id, record.account_id),
        )

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def start(self) -> None:
        tune_gc()
        opened = await asyncio.to_thread(tighten, self.config.data_dir)
        if opened:
            where = self.config.data_dir
            log.warning("%d file(s) in %s were readable by others: now owner-only", len(opened), where)
        for sink in self.remote:
            sink.start()
        self.pipeline.start()
        self._spawn(self.watcher.run(), "lifecycle")
        self._spawn(self._sweep_forever(), "sweeper")
        context = RuntimeContext(self.intake, self.stats, self.gate)
        for source in self.sources.values():
            await source.start(context)
        if self.dispatcher is not None:
            self._spawn(self.dispatcher.run(), "webhooks")
        for coro, name in self.observability.tasks():
            self._spawn(coro, name)
        # With the registry in a shared database, a revocation may come from a host that
        # cannot reach this data dir: the embedded store is then erased here, like a remote one.
        shared = [self.store.sink.name] if self.config.database_url else []
        stores = [sink.name for sink in self.remote] + shared
        await asyncio.to_thread(self.registry.set_remote_stores, stores)
        # Receipts accepted before a crash or restart, or whose erasure is outstanding in a
        # store (a remote one the CLI could not reach): finished now, then retried.
        self._spawn(self._retry_receipts(), "receipts")
        if self.api_tokens is not None:
            await self._start_api(self.api_tokens)

    async def _retry_receipts(self) -> None:
        """Every pending receipt, at start and then with backoff while any is left."""
        backoff = Backoff(RECEIPT_RETRY_S, RECEIPT_RETRY_MAX_S)
        retry_at: dict[str, float] = {}  # receipt -> when it is tried again
        loop = asyncio.get_running_loop()
        while True:
            pending = await asyncio.to_thread(self.deactivator.receipts.pending)
            retry_at = {r.id: retry_at.get(r.id, 0.0) for r in pending}
            for receipt in pending:
                if retry_at[receipt.id] > loop.time():
                    continue
                try:
                    await self._finish(receipt)
                except Exception:
                    log.exception("receipt %s: not finished; retried later", receipt.id)
                retry_at[receipt.id] = loop.time() + backoff.next()
            if not retry_at:
                backoff.reset()
            await asyncio.sleep(RECEIPT_POLL_S)

    async def _finish(self, receipt: Receipt) -> None:
        if "erased" in receipt.result:
            await self.deactivator.process(receipt)  # the stop is done: only erasure is left
            return
        age = (datetime.now(UTC) - receipt.requested_at).total_seconds()
        if age < 2 * self.config.ack_timeout_s + 5:
            return  # young: most likely being processed right now by the CLI or the API
        receipts = self.deactivator.receipts
        later = [
            r
            for r in await asyncio.to_thread(receipts.for_account, receipt.account_id)
            if r.requested_at > receipt.requested_at
        ]
        if later:
            why = {"error": f"superseded by {later[-1].id}; not carried out"}
            await asyncio.to_thread(receipts.finish, receipt.id, ReceiptStatus.FAILED, why)
            return
        await self.deactivator.process(receipt)

    async def _start_api(self, tokens: list[ResolvedToken]) -> None:
        api = self.config.api
        tls = {}
        if api.tls_cert is not None and api.tls_key is not None:
            tls = {"ssl_certfile": str(api.tls_cert), "ssl_keyfile": str(api.tls_key)}
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.deactivator, tokens, self.observability),
                host=api.host,
                port=api.port,
                log_level="warning",
                lifespan="off",
                **tls,  # type: ignore[arg-type]
            )
        )
        self.api_server = server
        self._spawn(server.serve(), "http-api")
        while not server.started:
            if self._tasks[-1].done():
                self._tasks[-1].result()  # raises the bind error, naming the address
                raise OSError(f"HTTP API could not start on {api.host}:{api.port}")
            await asyncio.sleep(0.02)
        self.api_port = int(server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.api_server is not None:
            self.api_server.should_exit = True
            await asyncio.sleep(0.1)
        # The lifecycle watcher goes last: until everything queued is written, a stop made
        # from another process must still close the gate (and be acknowledged).
        lifecycle = [t for t in self._tasks if t.get_name() == "lifecycle"]
        others = [t for t in self._tasks if t not in lifecycle]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        for source in reversed(self.sources.values()):
            await source.stop()
        await self.watcher.drain()
        await self.pipeline.stop()
        for task in lifecycle:
            task.cancel()
        await asyncio.gather(*lifecycle, return_exceptions=True)
        for remote in self.remote:
            remote.close(self.config.spool.flush_on_stop_s)
        self.store.close()
        await self.observability.settle()
        self.observability.close()
        if self._owns_registry:
            self.registry.close()

    def _on_lifecycle(self, event: LifecycleEvent) -> None:
        if event.type is EventType.ACCOUNT_REVOKED:
            self.intake_changes.forget(d.id for d in self.gate.devices() if d.account_id == event.account_id)
        elif event.type is EventType.DEVICE_REMOVED and event.device_id is not None:
            self.intake_changes.forget([event.device_id])
        if event.type is EventType.ACCOUNT_REVOKED and self.remote:
            task = asyncio.create_task(self._end_remote(event.account_id))
            self._one_offs.add(task)
            task.add_done_callback(self._one_offs.discard)

    async def _end_remote(self, account_id: str | None) -> None:
        try:
            await self.pipeline.run_in_writer(lambda: self.sweeper.end_remote(account_id))
        except Exception:
            log.exception("ending data in the remote sinks failed; the next sweep tries again")

    async def _sweep_forever(self) -> None:
        if self.remote:
            await self._end_remote(None)  # what was revoked or ran out while we were stopped
        while True:
            await asyncio.sleep(self.config.sweep_interval_s)
            try:
                counts = await self.pipeline.run_in_writer(self.sweeper.sweep)
            except Exception:
                log.exception("retention sweep failed; will try again next interval")
                continue
            if any(counts.values()):
                log.info("retention sweep ended %s", counts)


def webhook_dispatcher(config: ServiceConfig, registry: Registry) -> WebhookDispatcher:
    targets = {w.name: WebhookTarget(w.name, w.url, w.secret(), w.timeout_s) for w in config.webhooks}

    def audit(action: str, detail: dict[str, Any], account_id: str | None) -> None:
        registry.record_audit(action, detail, account_id=account_id)

    return WebhookDispatcher(Outbox(registry.db), targets, audit)
