"""The SNMP poller: tiered schedules, a hard per-device deadline, capped backoff for
unreachable devices, and reachability records when a device goes down or comes back.

Each device is polled at a stable phase derived from its id, so a fleet of 100,000 spreads
evenly over the interval instead of firing together. A poll asks only for the kinds that
are due (inventory hourly, call quality every minute, …). The runtime is asked right
before every request whether the device may be collected from: a device whose account is
not active gets no packet at all (P4). Each answer goes, as it arrived, to the intake.
v2c goes through hookflash's own codec on one shared socket (fast); v3 through pysnmp.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import socket
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from collector.config import ResolvedCredential, SnmpConfig
from collector.core.backoff import backoff_delay
from collector.core.errors import ProfileError, SourceError
from collector.core.interfaces import SourceContext
from collector.core.records import FieldValue, Kind, Observation, RawValue, Received, Varbind, Varbinds
from collector.profiles import DeviceProfile, ProfileResolver
from collector.profiles.model import TableSpec
from collector.sources.snmp.fast import FastGetter
from collector.sources.snmp.pysnmp_getter import PysnmpGetter
from provisioning.events import LifecycleEvent
from provisioning.models import Device, Transport

log = logging.getLogger(__name__)
T = TypeVar("T")
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


@dataclass
class DeviceState:
    """What the poller remembers about one device between polls."""

    last_polled: dict[Kind, float] = field(default_factory=dict)
    failures: int = 0
    backoff_until: float = 0.0
    up: bool | None = None
    down_since: datetime | None = None


class SnmpPoller:
    name = "snmp"

    def __init__(
        self,
        config: SnmpConfig,
        credentials: Mapping[str, ResolvedCredential],
        profiles: ProfileResolver,
    ) -> None:
        self._context: SourceContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._profiles = profiles
        self._config = config
        self._credentials = credentials
        self._fast = FastGetter(config.timeout_s) if config.engine == "fast" else None
        self._pysnmp = PysnmpGetter(config.timeout_s)
        self._kinds: dict[str, list[tuple[Kind, float]]] = {}  # per profile: kind, interval
        self._oids: dict[tuple[str, frozenset[Kind]], list[str]] = {}  # per profile and kinds
        self._addresses: dict[str, tuple[str, int]] = {}
        self._state: dict[str, DeviceState] = {}
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._schedule: list[tuple[float, str]] = []  # heap of (due, device id)
        self._scheduled: set[str] = set()
        # A device is visited at the shortest interval of any kind; each visit asks for the
        # kinds that are due then.
        self._tick = min([config.interval_s, *config.intervals.values()])

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def _ctx(self) -> SourceContext:
        assert self._context is not None, "the source has not been started"
        return self._context

    async def start(self, context: SourceContext) -> None:
        self._context = context
        if self._fast is not None:
            await self._fast.start()
        for known in context.devices(Transport.SNMP):
            self._add(known.id)
        self._task = asyncio.create_task(self._run(), name="snmp-poller")

    async def stop(self) -> None:
        """Stop scheduling; let polls already sent finish (their answers are data too)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._close()

    def on_event(self, event: LifecycleEvent) -> None:
        """Schedule new devices; forget cached addresses of changed ones; cancel polls in
        flight for devices whose collection just stopped."""
        if event.device_id is not None:
            address = self._addresses.pop(event.device_id, None)
            if address is not None:
                self._pysnmp.forget(address)
            self._add(event.device_id)
        if not event.stops_collection:
            return
        for device_id, task in list(self._in_flight.items()):
            if event.device_id is not None:
                hit = device_id == event.device_id
            else:
                device = self._ctx.device(device_id)
                hit = device is None or device.account_id == event.account_id
            if hit:
                task.cancel()

    async def _run(self) -> None:
        """Each tick pops only the devices that are due: cost follows the poll rate, not the
        fleet size."""
        loop = asyncio.get_running_loop()
        ctx = self._ctx
        limit = self._config.max_in_flight
        while True:
            try:
                self._tick_once(loop.time(), limit)
            except Exception:  # one tick's failure must never stop polling for everyone
                ctx.stats.source_faults += 1
                log.exception("the SNMP scheduler failed on a tick; it goes on")
            await asyncio.sleep(self._config.tick_s)

    def _tick_once(self, now: float, limit: int) -> None:
        ctx = self._ctx
        # At the in-flight limit, due devices wait at the top of the heap for a free slot.
        while self._schedule and self._schedule[0][0] <= now and len(self._in_flight) < limit:
            due, device_id = heapq.heappop(self._schedule)
            device = ctx.device(device_id)
            if device is None or device.transport is not Transport.SNMP:
                self._scheduled.discard(device_id)  # removed, or not polled over SNMP
                continue
            next_due = due + self._tick
            heapq.heappush(self._schedule, (next_due if next_due > now else now + self._tick, device_id))
            state = self._state.get(device_id)
            if state is None:
                state = self._state[device_id] = DeviceState()
            if device_id not in self._in_flight and state.backoff_until <= now:
                self._start_poll(device, state)

    async def _close(self) -> None:
        pending = list(self._in_flight.values())
        if pending:
            _done, late = await asyncio.wait(pending, timeout=self._config.poll_deadline_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._pysnmp.close()
        if self._fast is not None:
            self._fast.close()

    def _add(self, device_id: str) -> None:
        if device_id in self._scheduled:
            return
        phase = (zlib.crc32(device_id.encode()) % 10_000) / 10_000 * self._tick
        heapq.heappush(self._schedule, (asyncio.get_running_loop().time() + phase, device_id))
        self._scheduled.add(device_id)

    def _start_poll(self, device: Device, state: DeviceState) -> None:
        if not self._ctx.may_collect(device.id):
            self._ctx.stats.polls_skipped_inactive += 1
            return
        task = asyncio.create_task(self._poll(device, state))
        self._in_flight[device.id] = task
        task.add_done_callback(functools.partial(self._forget, device.id))

    def _forget(self, device_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(device_id, None)

    # -- one poll ----------------------------------------------------------------------------

    async def _poll(self, device: Device, state: DeviceState) -> None:
        try:
            async with asyncio.timeout(self._config.poll_deadline_s):
                await self._poll_device(device, state)
        except (TimeoutError, OSError, SourceError) as exc:
            self._failed(device, state, exc)
        except ProfileError as exc:
            self._failed(device, state, exc)
            log.error("device %s: %s", device.id, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one device's bad answer must never stop the poller
            self._failed(device, state, exc)
            log.exception("poll of %s (%s) failed unexpectedly", device.id, device.address)
        else:
            self._succeeded(device, state)

    async def _poll_device(self, device: Device, state: DeviceState) -> None:
        profile = self._profiles.for_device(device) or await self._learn_profile(device)
        now = asyncio.get_running_loop().time()
        due = self._due_kinds(profile, device, state, now)
        oids = self._oids.get((profile.name, due))
        if oids is None:
            oids = self._oids[(profile.name, due)] = profile.snmp_oids(due)
        scalars = await self._get(device, oids) if oids else {}
        walks: dict[str, list[Varbind]] = {}
        failure: BaseException | None = None
        try:
            for table in profile.tables:
                if table.kind in due:
                    walks[table.oid] = await self._walk(device, table)
        except (TimeoutError, OSError, SourceError) as exc:
            failure = exc  # the answers already in are kept: the poll still counts as failed
        for kind in due:
            state.last_polled[kind] = now
        if scalars or walks:
            host, port = self._addresses.get(device.id) or device.snmp_endpoint()
            answer = Varbinds(scalars, walks, due)  # a table not walked is in no walk: not decoded
            self._ctx.intake.receive(
                Received("snmp", f"{host}:{port}", answer, datetime.now(UTC), device_id=device.id)
            )
        if failure is not None:
            raise failure

    def _due_kinds(
        self, profile: DeviceProfile, device: Device, state: DeviceState, now: float
    ) -> frozenset[Kind]:
        allowed = self._ctx.allowed_kinds(device)
        kinds = self._kinds.get(profile.name)
        if kinds is None:
            kinds = self._kinds[profile.name] = [
                (kind, self._config.interval_for(kind) - self._tick / 2)  # due within half a tick
                for kind in profile.kinds()
            ]
        last = state.last_polled
        return frozenset(k for k, every in kinds if k in allowed and now - last.get(k, -1e18) >= every)

    def _succeeded(self, device: Device, state: DeviceState) -> None:
        was_up, down_since = state.up, state.down_since
        state.failures, state.backoff_until, state.up, state.down_since = 0, 0.0, True, None
        if was_up is not True:
            fields: dict[str, FieldValue] = {"state": "up"}
            if down_since is not None:
                fields["down_for_s"] = round((datetime.now(UTC) - down_since).total_seconds(), 1)
            self._reachability(device, fields)

    def _failed(self, device: Device, state: DeviceState, exc: Exception) -> None:
        stats = self._ctx.stats
        stats.polls_failed += 1
        if isinstance(exc, TimeoutError):
            stats.polls_timed_out += 1
        reason = str(exc)[:80] or type(exc).__name__
        stats.poll_errors[reason] += 1
        state.failures += 1
        log.debug("poll of %s (%s) failed: %s", device.id, device.address, reason)
        if state.failures >= self._config.down_after:
            # Capped exponential backoff: an unreachable device costs less and less.
            extra = backoff_delay(
                state.failures - self._config.down_after + 1, self._tick, self._config.max_backoff_s
            )
            state.backoff_until = asyncio.get_running_loop().time() + extra
            if state.up is not False:
                state.up, state.down_since = False, datetime.now(UTC)
                self._reachability(
                    device, {"state": "down", "reason": reason, "consecutive_failures": state.failures}
                )

    def _reachability(self, device: Device, fields: dict[str, FieldValue]) -> None:
        self._ctx.intake.derived(
            Observation(
                device_id=device.id,
                kind=Kind.REACHABILITY,
                observed_at=datetime.now(UTC),
                fields=fields,
                source="snmp",
            )
        )

    async def _learn_profile(self, device: Device) -> DeviceProfile:
        """No profile by name or model: ask the agent for its sysObjectID, once."""
        found = (await self._get(device, [SYS_OBJECT_ID])).get(SYS_OBJECT_ID)
        return self._profiles.learn(device, found if isinstance(found, str) else "")

    async def _get(self, device: Device, oids: list[str]) -> dict[str, RawValue | None]:
        def call(cred: ResolvedCredential, address: tuple[str, int]) -> Awaitable[dict[str, RawValue | None]]:
            if self._fast is not None and cred.version == "v2c":
                return self._fast.get(address, cred.community, oids)
            return self._pysnmp.get(address, cred, oids)

        return await self._attempts(device, call)

    async def _walk(self, device: Device, table: TableSpec) -> list[Varbind]:
        oids = [prefix for prefix, _spec in table.column_specs()]

        def call(cred: ResolvedCredential, address: tuple[str, int]) -> Awaitable[list[Varbind]]:
            if self._fast is not None and cred.version == "v2c":
                return self._fast.bulk(address, cred.community, oids, table.max_rows)
            return self._pysnmp.bulk(address, cred, oids, table.max_rows)

        return await self._attempts(device, call)

    async def _attempts(
        self, device: Device, call: Callable[[ResolvedCredential, tuple[str, int]], Awaitable[T]]
    ) -> T:
        """One request with hookflash's retries, each attempt only while the device may be
        collected from."""
        credential = self._credentials.get(device.credentials or "default")
        if credential is None:
            # The reference is not echoed: someone may have typed a secret into that column.
            raise SourceError("the device's credentials reference names no credential set in the config")
        address = self._addresses.get(device.id) or await self._resolve(device)
        for attempt in range(self._config.retries + 1):
            if attempt and not self._ctx.may_collect(device.id):
                raise asyncio.CancelledError  # stopped between attempts: send nothing more
            self._ctx.stats.polls_sent += 1
            try:
                return await call(credential, address)
            except TimeoutError:
                continue
        raise TimeoutError("no SNMP response before the timeout")

    async def _resolve(self, device: Device) -> tuple[str, int]:
        """IPv4 address of the device, resolved once (answers are matched by address)."""
        host, port = device.snmp_endpoint()
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
        )
        if not infos:
            raise SourceError(f"{host} has no IPv4 address")
        address = (str(infos[0][4][0]), int(infos[0][4][1]))
        self._addresses[device.id] = address
        return address
