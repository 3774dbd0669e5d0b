"""SNMP v2c poller on pysnmp 7's asyncio API.

Each device is polled once per interval at a stable offset derived from its id, so a
large fleet spreads evenly instead of firing together. The gate is asked right before
every request: a device whose account is not active gets no packet at all (P4).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import socket
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pyasn1.type import univ
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
)
from pysnmp.proto import rfc1902, rfc1905

from collector.config import SnmpConfig
from collector.decode.convert import RawValue
from collector.decode.snmp import decode_snmp
from collector.pipeline import Pipeline
from collector.profiles import DeviceProfile, ProfileError, ProfileSet
from collector.sources.snmp_codec import GetRequestTemplate
from collector.sources.snmp_fast import V2cClient
from provisioning.events import LifecycleEvent
from provisioning.models import Device, Transport

log = logging.getLogger(__name__)
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
_ABSENT = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView, rfc1902.Null)


def to_raw(value: Any) -> RawValue | None:
    """pysnmp value → plain Python; None for noSuch*/endOfMibView."""
    if isinstance(value, _ABSENT):
        return None
    if isinstance(value, univ.ObjectIdentifier):
        return ".".join(str(part) for part in value)
    if isinstance(value, rfc1902.IpAddress):
        return ".".join(str(b) for b in value.asOctets())
    if isinstance(value, univ.OctetString):
        return bytes(value.asOctets())
    if isinstance(value, univ.Integer):
        return int(value)
    raise SnmpError(f"unsupported SNMP value type {type(value).__name__}")


class SnmpPoller:
    def __init__(
        self,
        pipeline: Pipeline,
        profiles: ProfileSet,
        config: SnmpConfig,
        communities: Mapping[str, str],
    ) -> None:
        self._pipeline = pipeline
        self._profiles = profiles
        self._config = config
        self._communities = communities
        self._engine = SnmpEngine()
        self._targets: dict[str, UdpTransportTarget] = {}
        self._fast = V2cClient() if config.engine == "fast" else None
        self._templates: dict[tuple[str, tuple[str, ...]], GetRequestTemplate] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._profile_of: dict[str, DeviceProfile] = {}
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._schedule: list[tuple[float, str]] = []  # heap of (due, device id)
        self._scheduled: set[str] = set()

    def on_event(self, event: LifecycleEvent) -> None:
        """Schedule new devices; forget cached targets of changed ones; cancel polls in
        flight for devices whose collection just stopped."""
        if event.device_id is not None:
            self._targets.pop(event.device_id, None)
            self._addresses.pop(event.device_id, None)
            self._profile_of.pop(event.device_id, None)
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

    def _add(self, device_id: str) -> None:
        if device_id in self._scheduled:
            return
        # A stable per-device phase spreads the fleet evenly over the interval.
        phase = (zlib.crc32(device_id.encode()) % 10_000) / 10_000 * self._config.interval_s
        heapq.heappush(self._schedule, (asyncio.get_running_loop().time() + phase, device_id))
        self._scheduled.add(device_id)

    async def run(self) -> None:
        """Each tick pops only the devices that are due: cost follows the poll rate, not
        the fleet size."""
        loop = asyncio.get_running_loop()
        interval = self._config.interval_s
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
                next_due = due + interval
                heapq.heappush(self._schedule, (next_due if next_due > now else now + interval, device_id))
                if device_id not in self._in_flight:
                    self._start_poll(device)
            await asyncio.sleep(self._config.tick_s)

    async def close(self) -> None:
        """Let polls already sent finish (their answers are data too), then close."""
        pending = list(self._in_flight.values())
        if pending:
            grace = self._config.timeout_s * (self._config.retries + 1) + 1
            _done, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._engine.close_dispatcher()
        if self._fast is not None:
            self._fast.close()

    def _start_poll(self, device: Device) -> None:
        stats = self._pipeline.stats
        if not self._pipeline.gate.allows(device.id):
            stats.polls_skipped_inactive += 1
            return
        task = asyncio.create_task(self._poll(device))
        self._in_flight[device.id] = task
        task.add_done_callback(functools.partial(self._forget, device.id))

    def _forget(self, device_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(device_id, None)

    async def _poll(self, device: Device) -> None:
        try:
            await self._poll_device(device)
        except (TimeoutError, OSError, SnmpError) as exc:
            self._failed(exc)
            log.debug("poll of %s (%s) failed: %s", device.id, device.address, exc)
        except ProfileError as exc:
            self._failed(exc)
            log.error("device %s: %s", device.id, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one device's bad answer must never stop the poller
            self._failed(exc)
            log.exception("poll of %s (%s) failed unexpectedly", device.id, device.address)

    def _failed(self, exc: Exception) -> None:
        stats = self._pipeline.stats
        stats.polls_failed += 1
        stats.poll_errors[str(exc)[:80] or type(exc).__name__] += 1

    async def _poll_device(self, device: Device) -> None:
        profile = self._profile_of.get(device.id) or await self._resolve_profile(device)
        kinds = self._pipeline.gate.allowed_kinds(device)
        oids = profile.snmp_oids(kinds)
        if not oids:
            return
        values = await self._get(device, oids)
        observed_at = datetime.now(UTC)
        observations, problems = decode_snmp(profile, device.id, values, observed_at)
        for problem in problems:
            log.warning("device %s (%s): %s", device.id, profile.name, problem)
        for observation in observations:
            self._pipeline.submit(observation)

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
        community = self._communities.get(device.credentials or "default")
        if community is None:
            # The reference is not echoed: someone may have typed a secret into that column.
            raise SnmpError("the device's credentials reference names no credential set in the config")
        if self._fast is not None:
            return await self._get_fast(device, community, oids)
        return await self._get_pysnmp(device, community, oids)

    async def _get_fast(self, device: Device, community: str, oids: list[str]) -> dict[str, RawValue | None]:
        assert self._fast is not None
        key = (community, tuple(oids))
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = GetRequestTemplate(community.encode(), oids)
        address = self._addresses.get(device.id) or await self._resolve(device)
        response = None
        for attempt in range(self._config.retries + 1):
            if attempt and not self._pipeline.gate.allows(device.id):
                raise asyncio.CancelledError  # stopped between attempts: send nothing more
            self._pipeline.stats.polls_sent += 1
            try:
                response = await self._fast.get(address, template, self._config.timeout_s)
                break
            except TimeoutError:
                continue
        if response is None:
            raise SnmpError("no SNMP response before the timeout")
        if response.error_status:
            raise SnmpError(f"agent error-status {response.error_status} at index {response.error_index}")
        return dict(response.varbinds)

    async def _resolve(self, device: Device) -> tuple[str, int]:
        """IPv4 address of the device, resolved once (responses are matched by address)."""
        host, port = device.snmp_endpoint()
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
        )
        if not infos:
            raise SnmpError(f"{host} has no IPv4 address")
        address = (str(infos[0][4][0]), int(infos[0][4][1]))
        self._addresses[device.id] = address
        return address

    async def _get_pysnmp(
        self, device: Device, community: str, oids: list[str]
    ) -> dict[str, RawValue | None]:
        target = self._targets.get(device.id)
        if target is None:
            # pysnmp retries are off: it would retransmit even after the account stopped.
            target = await UdpTransportTarget.create(
                device.snmp_endpoint(), timeout=self._config.timeout_s, retries=0
            )
            self._targets[device.id] = target
        varbinds = [ObjectType(ObjectIdentity(oid)) for oid in oids]
        for attempt in range(self._config.retries + 1):
            if attempt and not self._pipeline.gate.allows(device.id):
                raise asyncio.CancelledError  # stopped between attempts: send nothing more
            self._pipeline.stats.polls_sent += 1
            error_indication, error_status, _index, var_binds = await get_cmd(
                self._engine,
                CommunityData(community, mpModel=1),
                target,
                ContextData(),
                *varbinds,
                lookupMib=False,
            )
            if not error_indication:
                break
        if error_indication:
            raise SnmpError(str(error_indication))
        if error_status:
            raise SnmpError(f"agent error {error_status.prettyPrint()}")
        return {str(name): to_raw(value) for name, value in var_binds}


class SnmpError(Exception):
    """A poll failed (timeout, agent error, missing credentials). Never carries a secret."""
