"""The intake: the one place every source hands what it received to.

For each item, on the event loop: locate the device (P1: an item of no provisioned device
is dropped, not even quarantined), ask the gate (P4: nothing of a stopped account is
kept, quarantine included), pick the device's profile, decode, tag, queue, and settle the
item's acknowledgement once its records are written, it is quarantined, or it is dropped
on purpose. What cannot become a record is quarantined with one constructor.

It is also the fault boundary: whatever handling one item raises is caught here, per
item. The item is quarantined with the exception's reason (or counted and dropped when it
has no device), and the source that called goes on with the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from collector.core.errors import ProfileError, Rejected
from collector.core.interfaces import Verdict
from collector.core.records import Ack, Observation, QuarantineEntry, Received
from collector.core.stats import Stats
from collector.decode import Codec, Located
from collector.gate import Gate
from collector.profiles import ProfileResolver
from collector.runtime.pipeline import Pipeline
from collector.tag import Tagger
from provisioning.models import Device, Transport

log = logging.getLogger(__name__)
_RECORDS_PER_OBSERVATION = 2  # the observation's record, and perhaps a change record


def _settle(ack: Ack | None) -> None:
    if ack is not None:
        ack()


class Intake:
    def __init__(
        self,
        gate: Gate,
        profiles: ProfileResolver,
        codecs: Mapping[str, Codec],
        tagger: Tagger,
        pipeline: Pipeline,
        stats: Stats,
    ) -> None:
        self._gate = gate
        self._profiles = profiles
        self._codecs = dict(codecs)
        self._tagger = tagger
        self._pipeline = pipeline
        self._stats = stats

    # -- what a source sees (collector.core.interfaces.Intake) ----------------------------------

    @property
    def nearly_full(self) -> bool:
        return self._pipeline.nearly_full

    @property
    def saturated(self) -> bool:
        return self._pipeline.saturated

    def when_room(self, callback: Callable[[], None]) -> None:
        self._pipeline.when_room(callback)

    def receive(self, item: Received) -> Verdict:
        device: Device | None = None
        try:
            codec = self._codecs[item.source]
            located: Located | None = None
            if item.device_id is not None:  # a poll: the source asked this very device
                device = self._gate.device(item.device_id)
            else:
                try:
                    located = codec.locate(item)
                except Rejected:
                    pass  # unreadable before the device is known: nobody to blame (P1)
                else:
                    device = self._device(codec, located)
            if device is None:
                self._stats.dropped_not_provisioned += 1  # P1: not stored, not even quarantined
                _settle(item.ack)
                return Verdict.DROPPED
            if not self._gate.account_active(device.account_id):
                self._stats.dropped_inactive += 1  # P4: nothing of a stopped account is kept
                _settle(item.ack)
                return Verdict.DROPPED
            try:
                profile = self._profiles.require(device) if codec.uses_profile else None
                observations, refused = codec.decode(profile, device.id, item, located)
            except (Rejected, ProfileError) as exc:
                return self._quarantine(item, device, exc.reason if isinstance(exc, Rejected) else str(exc))
            last = len(refused) - 1
            for n, reason in enumerate(refused):  # records refused; the rest of the item is kept
                self._quarantine(item, device, reason, settle=not observations and n == last)
            if not observations and refused:
                return Verdict.QUARANTINED
            return self._admit(observations, device, item.ack)
        except Exception as exc:  # the fault boundary: nothing escapes into a socket callback
            return self._fault(item, device, exc)

    def derived(self, observation: Observation) -> Verdict:
        device = self._gate.device(observation.device_id)
        if device is None:
            self._stats.dropped_not_provisioned += 1
            return Verdict.DROPPED
        if not self._gate.account_active(device.account_id):
            self._stats.dropped_inactive += 1
            return Verdict.DROPPED
        try:
            return self._admit([observation], device, None)
        except Exception:
            log.exception("a %s record of %s could not be queued", observation.kind, observation.device_id)
            self._stats.intake_faults += 1
            return Verdict.DROPPED

    # -- one item ---------------------------------------------------------------------------------

    def _device(self, codec: Codec, located: Located) -> Device | None:
        """The provisioned device an item names: by SIP identity, by MAC, or by the address
        it came from."""
        if located.identity is not None:
            device = self._gate.by_sip_identity(located.identity)
            if device is not None:
                return device
        if located.device_id is not None:
            device = self._gate.device(located.device_id)
            if device is not None or codec.transport is not Transport.SIP:
                return device  # a SIP report's LocalMAC may be unknown: try its host then
        if located.address is not None:
            return self._gate.by_address(codec.transport, located.address)
        return None

    def _admit(self, observations: list[Observation], device: Device, ack: Ack | None) -> Verdict:
        """The gate's per-record questions (P8: diagnostic data only in a troubleshooting
        window; nothing observed before the account's current active period), then tag and
        queue. `ack` runs once every record is written."""
        gate = self._gate
        if len(observations) == 1:  # most items: one MQTT message, one observation
            first = observations[0]
            admitted = observations if gate.admits(device, first.kind, first.observed_at) else []
        else:
            admitted = [o for o in observations if gate.admits(device, o.kind, o.observed_at)]
        if len(admitted) < len(observations):
            self._stats.dropped_inactive += len(observations) - len(admitted)
        if not admitted:  # nothing to keep (or nothing the profile reads): settled now
            _settle(ack)
            return Verdict.DROPPED
        if not self._pipeline.has_room(_RECORDS_PER_OBSERVATION * len(admitted)):
            # Not settled: an MQTT QoS 1 message stays unacknowledged, and the broker
            # delivers it again after the subscriber reconnects.
            self._stats.queue_overflow += 1
            return Verdict.REFUSED
        self._stats.devices_seen.add(device.id)
        tag = self._tagger.tag
        records = (
            tag(admitted[0], device) if len(admitted) == 1 else [r for o in admitted for r in tag(o, device)]
        )
        self._pipeline.put(records, ack)
        return Verdict.QUEUED

    def _quarantine(self, item: Received, device: Device, reason: str, settle: bool = True) -> Verdict:
        """`settle`: this entry carries the item's acknowledgement (the last thing kept of it)."""
        entry = QuarantineEntry.of(
            item.source,
            item.origin,
            item.payload_bytes(),
            reason,
            item.received_at,
            device.id,
            device.account_id,
        )
        ack = item.ack if settle else None
        return Verdict.QUARANTINED if self._pipeline.quarantine(entry, ack) else Verdict.REFUSED

    def _fault(self, item: Received, device: Device | None, exc: Exception) -> Verdict:
        """What handling the item raised, unforeseen: quarantine it with the reason when a
        provisioned, active device sent it; else count it and drop it. Never raises."""
        self._stats.intake_faults += 1
        reason = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("%s item from %s could not be handled: %s", item.source, item.origin[:120], reason)
        log.debug("the item's handling raised", exc_info=exc)
        try:
            if device is not None and self._gate.allows(device.id):
                return self._quarantine(item, device, f"could not be handled: {reason}")
            if device is None:
                self._stats.dropped_not_provisioned += 1
            _settle(item.ack)
        except Exception:
            log.exception("%s item from %s: even dropping it failed", item.source, item.origin[:120])
        return Verdict.DROPPED
