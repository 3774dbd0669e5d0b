"""The gate: an in-memory view of the registry, updated by lifecycle events.

Asked only by the runtime: before a poll is sent (so no request reaches a device of a
stopped account), at the intake, and again right before a sink write (so records in
flight are dropped). It also finds the device an item came from (by id, or by the address
it is provisioned at). Device events update one entry, so a bulk import of thousands of
devices costs one registry read per device, not a reload per device.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from collector.core.records import Kind
from provisioning.events import EventType, LifecycleEvent
from provisioning.models import Account, AccountStatus, Device, Transport
from provisioning.registry import Registry

Clock = Callable[[], datetime]
_WITHOUT_DIAGNOSTIC = frozenset(k for k in Kind if k is not Kind.DIAGNOSTIC)
_STATUS_AFTER = {
    EventType.ACCOUNT_REVOKED: AccountStatus.REVOKED,
    EventType.ACCOUNT_INACTIVE: AccountStatus.INACTIVE,
    EventType.ACCOUNT_ACTIVATED: AccountStatus.ACTIVE,
    EventType.ACCOUNT_REACTIVATED: AccountStatus.ACTIVE,
}


class Gate:
    def __init__(self, registry: Registry, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._registry = registry
        self._clock = clock
        self._devices: dict[str, Device] = {}
        self._by_address: dict[Transport, dict[str, Device]] = {t: {} for t in Transport}
        self._by_aor: dict[str, Device] = {}
        self._by_host: dict[tuple[Transport, str], set[str]] = {}  # SNMP and SIP devices' hosts
        self._status: dict[str, AccountStatus] = {}
        self._active_since: dict[str, datetime] = {}
        self.reload()

    def reload(self) -> None:
        accounts = self._registry.accounts()
        self._status = {a.id: a.status for a in accounts}
        self._active_since = {a.id: a.status_changed_at for a in accounts}
        self._devices = {}
        self._by_address = {t: {} for t in Transport}
        self._by_aor, self._by_host = {}, {}
        for device in self._registry.devices():
            self._index(device)

    def _index(self, device: Device) -> None:
        self._devices[device.id] = device
        self._by_address[device.transport][device.address] = device
        for aor in device.sip_aor.split():
            self._by_aor[aor] = device
        if device.transport is not Transport.MQTT:
            self._by_host.setdefault((device.transport, device.snmp_endpoint()[0]), set()).add(device.id)

    def _unindex(self, old: Device) -> None:
        if self._by_address[old.transport].get(old.address) is old:
            del self._by_address[old.transport][old.address]
        for aor in old.sip_aor.split():
            if self._by_aor.get(aor) is old:
                del self._by_aor[aor]
        if old.transport is not Transport.MQTT:
            self._by_host.get((old.transport, old.snmp_endpoint()[0]), set()).discard(old.id)

    def apply(self, event: LifecycleEvent) -> None:
        """Apply an event, reading what it concerns from the registry (blocking: the
        running service calls `read` in a worker thread, then `update`)."""
        self.update(event, *self.read(event))

    def read(self, event: LifecycleEvent) -> tuple[Device | None, Account | None]:
        """What `update` needs from the registry for an event (blocking SQLite reads): the
        event's device as it is now (None: removed, or not a device event), and its account
        when this gate has not seen that account yet."""
        device = self._registry.device(event.device_id) if event.device_id is not None else None
        account = None
        if device is not None and device.account_id not in self._status:
            account = self._registry.account(device.account_id)
        return device, account

    def update(self, event: LifecycleEvent, device: Device | None, account: Account | None = None) -> None:
        """Apply an event with what the registry holds now: for a device event, the device
        (None: removed) and, if this gate has not seen its account yet, the account."""
        if event.device_id is not None:
            old = self._devices.pop(event.device_id, None)
            if old is not None:
                self._unindex(old)
            if device is not None:
                self._index(device)
            if account is not None:
                self._status[account.id] = account.status
                self._active_since[account.id] = account.status_changed_at
            return
        status = _STATUS_AFTER.get(event.type)
        if status is not None:
            self._status[event.account_id] = status
            if status is AccountStatus.ACTIVE:
                self._active_since[event.account_id] = event.at

    def device(self, device_id: str) -> Device | None:
        """The provisioned device, or None when it is not in the registry (P1)."""
        return self._devices.get(device_id)

    def by_address(self, transport: Transport, address: str) -> Device | None:
        """The device provisioned at this address (an MQTT device's topic root), or None.
        For SIP and SNMP, a bare host (where a report or a trap came from) finds the one
        device provisioned on that host: for SIP an SNMP or SIP device, for SNMP an SNMP
        one (None when several share it, behind a NAT say)."""
        if transport is Transport.MQTT:
            return self._by_address[transport].get(address)
        if transport is Transport.SNMP and (found := self._by_address[transport].get(address)):
            return found  # host:port, as provisioned
        ids = self._by_host.get((transport, address), set())
        if transport is Transport.SIP:
            ids = ids | self._by_host.get((Transport.SNMP, address), set())
        return self._devices.get(next(iter(ids))) if len(ids) == 1 else None

    def by_sip_identity(self, aor: str) -> Device | None:
        """The device whose `sip_aor` holds this address of record (user@host), or None."""
        return self._by_aor.get(aor)

    def devices(self, transport: Transport | None = None) -> list[Device]:
        if transport is None:
            return list(self._devices.values())
        return [d for d in self._devices.values() if d.transport is transport]

    def account_active(self, account_id: str) -> bool:
        return self._status.get(account_id) is AccountStatus.ACTIVE

    def allows(self, device_id: str) -> bool:
        device = self._devices.get(device_id)
        return device is not None and self.account_active(device.account_id)

    def erased(self, device_id: str, account_id: str) -> bool:
        """True when this device's data may no longer exist anywhere: the device was removed
        (or moved to another account), or its account revoked. For what waits in a spool
        while that happens (perhaps while hookflash was not even running)."""
        device = self._devices.get(device_id)
        if device is None or device.account_id != account_id:
            return True
        return self._status.get(account_id, AccountStatus.REVOKED) is AccountStatus.REVOKED

    def observed_while_active(self, account_id: str, observed_at: datetime) -> bool:
        """False for data timestamped before the account's current active period began:
        a device back-filling its buffer must not restore what an inactive period or a
        revocation ended ("nothing erased comes back")."""
        since = self._active_since.get(account_id)
        return since is None or observed_at >= since

    def admits(self, device: Device, kind: Kind, observed_at: datetime) -> bool:
        """Whether a record of this kind and time may be kept for an allowed device."""
        return self.allows_kind(device, kind) and self.observed_while_active(device.account_id, observed_at)

    def allows_kind(self, device: Device, kind: Kind) -> bool:
        """Diagnostic data only inside an open troubleshooting window (P8)."""
        if kind is not Kind.DIAGNOSTIC:
            return True
        return device.debug_until is not None and device.debug_until > self._clock()

    def allowed_kinds(self, device: Device) -> frozenset[Kind]:
        if device.debug_until is None:
            return _WITHOUT_DIAGNOSTIC  # the common case, asked on every poll
        return frozenset(k for k in Kind if self.allows_kind(device, k))
