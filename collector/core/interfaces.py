"""The small interfaces between the rooms: what a source is, what it may ask the runtime,
what the intake promises it, and what a sink is.

A source receives; the intake (in the runtime) does everything else with what it received:
locates the device, asks the gate, decodes with the device's profile, quarantines, tags,
queues, and settles the acknowledgement. A source never decides whether something is
stored, and never talks to a sink.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from collector.core.records import Anonymization, Kind, Observation, Received, RetentionClass, TelemetryRecord
from collector.core.stats import Stats
from provisioning.events import LifecycleEvent
from provisioning.models import Device, Transport


class Verdict(Enum):
    """What the intake did with an item."""

    QUEUED = "queued"  # its records wait for the sinks; acknowledged once written
    QUARANTINED = "quarantined"  # it could not become a record; acknowledged once quarantined
    DROPPED = "dropped"  # on purpose (not provisioned, account not active): acknowledged now
    REFUSED = "refused"  # the pipeline is full: not acknowledged, so the sender may resend


class Intake(Protocol):
    """Where a source hands everything it receives. Called on the event loop; never raises:
    whatever handling one item raises is caught there, per item."""

    def receive(self, item: Received) -> Verdict: ...

    def derived(self, observation: Observation) -> Verdict:
        """A record a source derives itself rather than receives (a device went down)."""
        ...

    @property
    def nearly_full(self) -> bool:
        """Time for a source that can wait (MQTT) to stop reading until `when_room`."""
        ...

    @property
    def saturated(self) -> bool:
        """Too full to take another item's records."""
        ...

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, on the loop, when the backlog is down to half its size."""
        ...


class SourceContext(Protocol):
    """What the runtime hands a source when it starts: the intake, and the registry
    questions a source may ask. `may_collect` must be asked before any request is sent to
    a device (P4: no poll of a stopped account's device)."""

    intake: Intake
    stats: Stats

    def may_collect(self, device_id: str) -> bool: ...

    def allowed_kinds(self, device: Device) -> frozenset[Kind]:
        """The record kinds that may be collected from the device now (P8: diagnostic data
        only inside a troubleshooting window)."""
        ...

    def device(self, device_id: str) -> Device | None: ...

    def devices(self, transport: Transport) -> list[Device]: ...


class Source(Protocol):
    """A plugin that receives telemetry from devices: an SNMP poller, an MQTT subscriber.
    Registered in `collector.runtime.plugins`; started after the sinks and the pipeline,
    stopped before them."""

    name: str

    async def start(self, context: SourceContext) -> None:
        """Begin receiving; return once started (long-running work goes in tasks)."""
        ...

    async def stop(self) -> None:
        """Stop receiving; let what is already on its way finish."""
        ...

    def on_event(self, event: LifecycleEvent) -> None:
        """A registry change, after the runtime applied it: drop or add what it concerns."""
        ...


class AccountData(Protocol):
    """Anything that holds an account's data: the sinks and the quarantine. When collection
    stops it is purged of what was in flight; on revocation each class's end action is
    applied to it (P4, P5)."""

    name: str

    def erase_account(
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: Anonymization
    ) -> dict[str, int]:
        """Apply each class's end action to the account's records; counts per class."""
        ...

    def purge_since(self, account_id: str, since: datetime, device_id: str | None = None) -> int:
        """Delete the account's (or one device's) records observed or received at or after
        `since`: stragglers that were in flight when collection stopped."""
        ...

    def last_seen(self, account_id: str) -> dict[str, datetime]:
        """Per device of the account, the newest observation time held."""
        ...


class Sink(AccountData, Protocol):
    """Where tagged records are stored (the embedded SQLite store, InfluxDB). Called from
    one writer thread; raise to have the batch retried."""

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        """Store records; return how many were stored. Raise to have the batch retried."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SinkHealth:
    """How a remote sink's sending goes, for the alert rules about sinks."""

    name: str
    down_for_s: float | None  # since the first failure of the current run of them; None: up
    status: int | None  # the last failure's HTTP status (None: a connection error, or up)
    reason: str  # the last failure, as logged (no token)
    spool_batches: int
    spool_bytes: int
