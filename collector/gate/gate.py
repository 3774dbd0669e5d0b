"""The gate: an in-memory view of the registry, updated by lifecycle events.

Checked twice per record: before a poll is sent (so no request reaches a revoked
device) and again right before a sink write (so records in flight are dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from collector.records import Kind
from provisioning.events import EventType, LifecycleEvent
from provisioning.models import AccountStatus, Device
from provisioning.registry import Registry

Clock = Callable[[], datetime]


class Gate:
    def __init__(self, registry: Registry, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._registry = registry
        self._clock = clock
        self._devices: dict[str, Device] = {}
        self._status: dict[str, AccountStatus] = {}
        self.reload()

    def reload(self) -> None:
        self._status = {a.id: a.status for a in self._registry.accounts()}
        self._devices = {d.id: d for d in self._registry.devices()}

    def apply(self, event: LifecycleEvent) -> None:
        if event.type in (EventType.DEVICE_ADDED, EventType.DEVICE_REMOVED, EventType.DEVICE_DEBUG_WINDOW):
            # Device rows change rarely; re-reading keeps one code path for both.
            self._devices = {d.id: d for d in self._registry.devices()}
            self._status = {a.id: a.status for a in self._registry.accounts()}
            return
        self._status[event.account_id] = {
            EventType.ACCOUNT_REVOKED: AccountStatus.REVOKED,
            EventType.ACCOUNT_INACTIVE: AccountStatus.INACTIVE,
        }.get(event.type, AccountStatus.ACTIVE)

    def device(self, device_id: str) -> Device | None:
        """The provisioned device, or None when it is not in the registry (P1)."""
        return self._devices.get(device_id)

    def devices(self) -> list[Device]:
        return list(self._devices.values())

    def account_active(self, account_id: str) -> bool:
        return self._status.get(account_id) is AccountStatus.ACTIVE

    def allows(self, device_id: str) -> bool:
        device = self._devices.get(device_id)
        return device is not None and self.account_active(device.account_id)

    def allows_kind(self, device: Device, kind: Kind) -> bool:
        """Diagnostic data only inside an open troubleshooting window (P8)."""
        if kind is not Kind.DIAGNOSTIC:
            return True
        return device.debug_until is not None and device.debug_until > self._clock()

    def allowed_kinds(self, device: Device) -> frozenset[Kind]:
        return frozenset(k for k in Kind if self.allows_kind(device, k))
