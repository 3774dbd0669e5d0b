"""The SNMP poller: tiered schedules, a hard per-device deadline, capped backoff for
unreachable devices, and reachability records when a device goes down or comes back.

Each device is polled at a stable phase derived from its id, so a fleet of 100,000 spreads
evenly over the interval instead of firing together. A poll asks only for the kinds that
are due (inventory hourly, call quality every minute, …). The gate is asked right before
every request: a device whose account is not active gets no packet at all (P4).
v2c goes through hookflash's own codec on one shared socket (snmp_fast); v3 through pysnmp.
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
from collector.decode.convert import RawValue
from collector.decode.snmp import decode_snmp, decode_table
from collector.pipeline import Pipeline
from collector.profiles import DeviceProfile, ProfileError, ProfileSet
from collector.profiles.model import TableSpec
from collector.records import Kind, Observation
from collector.sources.snmp_fast import AgentError, FastGetter
from collector.sources.snmp_pysnmp import PysnmpGetter, SnmpError
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
    def __init__(
        self,
        pipeline: Pipeline,
        profiles: ProfileSet,
        config: SnmpConfig,
        credentials: Mapping[str, ResolvedCredential],
    ) -> None:
        self._pipeline = pipeline
        self._profiles = profiles
        self._config = config
        self._credentials = credentials
        self._fast = FastGetter(config.timeout_s) if config.engine == "fast" else None
        self._pysnmp = PysnmpGetter(config.timeout_s)
        self._profile_of: dict[str, DeviceProfile] = {}
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

    def on_event(self, event: LifecycleEvent) -> None:
        """Schedule new devices; forget cached addresses and profiles of changed ones; cancel
        polls in flight for devices whose collection just stopped."""
        if event.device_id is not None:
            self._profile_of.pop(event.device_id, None)
            address = self._addresses.pop(event.device_id, None)
            if address is not None:
                self._pysnmp.forget(address)
            self._add(event.device_id)
        if not event.stops_collection:
            return
        gate = self._pipeline.gate
        for device_id, task in list(self._in_flight.items()):
            if event.device_id is not None:
                hit = device_id == event.device_id
            else:
                device = gate.device(device_id)
                hit = device is None or device.account_id == event.account_id
            if hit:
                task.cancel()

    async def run(self) -> None:
        """Each tick pops only the devices that are due: cost follows the poll rate, not the
        fleet size."""
        loop = asyncio.get_running_loop()
        if self._fast is not None:
            await self._fast.start()
        for known in self._pipeline.gate.devices():
            self._add(known.id)
        limit = self._config.max_in_flight
        while True:
            now = loop.time()
            # At the in-flight limit, due devices wait at the top of the heap for a free slot.
            while self._schedule and self._schedule[0][0] <= now and len(self._in_flight) < limit:
                due, device_id = heapq.heappop(self._schedule)
                device = self._pipeline.gate.device(device_id)
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
            await asyncio.sleep(self._config.tick_s)

    async def close(self) -> None:
        """Let polls already sent finish (their answers are data too), then close."""
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
        if not self._pipeline.gate.allows(device.id):
            self._pipeline.stats.polls_skipped_inactive += 1
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
        except (TimeoutError, OSError, SnmpError, AgentError) as exc:
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
        profile = self._profile_of.get(device.id) or await self._resolve_profile(device)
        now = asyncio.get_running_loop().time()
        due = self._due_kinds(profile, device, state, now)
        oids = self._oids.get((profile.name, due))
        if oids is None:
            oids = self._oids[(profile.name, due)] = profile.snmp_oids(due)
        observations: list[Observation] = []
        problems: list[str] = []
        if oids:
            values = await self._get(device, oids)
            observations, problems = decode_snmp(profile, device.id, values, datetime.now(UTC))
        for table in profile.tables:
            if table.kind in due:
                rows, row_problems = decode_table(
                    table, device.id, await self._walk(device, table), datetime.now(UTC)
                )
                observations += rows
                problems += row_problems
        for kind in due:
            state.last_polled[kind] = now
        for problem in problems:
            log.warning("device %s (%s): %s", device.id, profile.name, problem)
        for observation in observations:
            self._pipeline.submit(observation)

    def _due_kinds(
        self, profile: DeviceProfile, device: Device, state: DeviceState, now: float
    ) -> frozenset[Kind]:
        allowed = self._pipeline.gate.allowed_kinds(device)
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
            fields: dict[str, int | float | str | bool] = {"state": "up"}
            if down_since is not None:
                fields["down_for_s"] = round((datetime.now(UTC) - down_since).total_seconds(), 1)
            self._reachability(device, fields)

    def _failed(self, device: Device, state: DeviceState, exc: Exception) -> None:
        stats = self._pipeline.stats
        stats.polls_failed += 1
        if isinstance(exc, TimeoutError):
            stats.polls_timed_out += 1
        reason = str(exc)[:80] or type(exc).__name__
        stats.poll_errors[reason] += 1
        state.failures += 1
        log.debug("poll of %s (%s) failed: %s", device.id, device.address, reason)
        if state.failures >= self._config.down_after:
            # Capped exponential backoff: an unreachable device costs less and less.
            extra = min(
                self._tick * 2 ** (state.failures - self._config.down_after), self._config.max_backoff_s
            )
            state.backoff_until = asyncio.get_running_loop().time() + extra
            if state.up is not False:
                state.up, state.down_since = False, datetime.now(UTC)
                self._reachability(
                    device, {"state": "down", "reason": reason, "consecutive_failures": state.failures}
                )

    def _reachability(self, device: Device, fields: dict[str, int | float | str | bool]) -> None:
        self._pipeline.submit(
            Observation(
                device_id=device.id,
                kind=Kind.REACHABILITY,
                observed_at=datetime.now(UTC),
                fields=fields,
                source="snmp",
            )
        )

    async def _resolve_profile(self, device: Device) -> DeviceProfile:
        if device.profile:
            profile = self._profiles.get(device.profile)
        else:
            by_model = self._profiles.by_model(device.vendor, device.model)
            if by_model is not None:
                profile = by_model
            else:
                found = (await self._get(device, [SYS_OBJECT_ID])).get(SYS_OBJECT_ID)
                profile = self._profiles.by_sysobjectid(found if isinstance(found, str) else "")
        self._profile_of[device.id] = profile
        return profile

    async def _get(self, device: Device, oids: list[str]) -> dict[str, RawValue | None]:
        def call(cred: ResolvedCredential, address: tuple[str, int]) -> Awaitable[dict[str, RawValue | None]]:
            if self._fast is not None and cred.version == "v2c":
                return self._fast.get(address, cred.community, oids)
            return self._pysnmp.get(address, cred, oids)

        return await self._attempts(device, call)

    async def _walk(self, device: Device, table: TableSpec) -> list[tuple[str, RawValue | None]]:
        oids = [prefix for prefix, _spec in table.column_specs()]

        def call(
            cred: ResolvedCredential, address: tuple[str, int]
        ) -> Awaitable[list[tuple[str, RawValue | None]]]:
            if self._fast is not None and cred.version == "v2c":
                return self._fast.bulk(address, cred.community, oids, table.max_rows)
            return self._pysnmp.bulk(address, cred, oids, table.max_rows)

        return await self._attempts(device, call)

    async def _attempts(
        self, device: Device, call: Callable[[ResolvedCredential, tuple[str, int]], Awaitable[T]]
    ) -> T:
        """One request with hookflash's retries: the gate is asked before each attempt."""
        credential = self._credentials.get(device.credentials or "default")
        if credential is None:
            # The reference is not echoed: someone may have typed a secret into that column.
            raise SnmpError("the device's credentials reference names no credential set in the config")
        address = self._addresses.get(device.id) or await self._resolve(device)
        for attempt in range(self._config.retries + 1):
            if attempt and not self._pipeline.gate.allows(device.id):
                raise asyncio.CancelledError  # stopped between attempts: send nothing more
            self._pipeline.stats.polls_sent += 1
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
            raise SnmpError(f"{host} has no IPv4 address")
        address = (str(infos[0][4][0]), int(infos[0][4][1]))
        self._addresses[device.id] = address
        return address
