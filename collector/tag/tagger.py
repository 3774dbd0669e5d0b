"""Observation + provisioned device → TelemetryRecord with its retention class."""

from __future__ import annotations

from collections.abc import Mapping

from collector.core.records import FieldValue, Observation, TelemetryRecord
from collector.core.scrub import might_hide_a_secret, scrub_text
from collector.retention import RetentionPolicy
from collector.tag.changes import ChangeDetector
from provisioning.models import Device


def scrubbed(fields: Mapping[str, FieldValue]) -> Mapping[str, FieldValue]:
    """Every text value with what looks like a secret masked (P7): a device's free text (a
    log excerpt, a URL it reports) may carry a password, a SIP URI with one, a token."""
    for value in fields.values():  # a loop, not any(genexpr): asked for every record
        if type(value) is str and might_hide_a_secret(value):
            return {k: scrub_text(v) if type(v) is str else v for k, v in fields.items()}
    return fields  # the common case: numbers and plain words, no copy


class Tagger:
    def __init__(self, policy: RetentionPolicy, changes: ChangeDetector | None = None) -> None:
        self.policy = policy
        # Also the memory of each device's firmware, so every record can be grouped by
        # firmware (rollout views, anonymized aggregates) without a join at read time.
        self.changes = changes or ChangeDetector()

    def tag(self, observation: Observation, device: Device) -> list[TelemetryRecord]:
        """The record for the observation, plus a `change` record when it reveals one."""
        change = self.changes.observe(observation)
        firmware = self.changes.firmware_of(device.id)
        return (
            [self._record(observation, device, firmware)]
            if change is None
            else [
                self._record(observation, device, firmware),
                self._record(change, device, firmware),
            ]
        )

    def _record(self, obs: Observation, device: Device, firmware: str | None) -> TelemetryRecord:
        return TelemetryRecord(
            device_id=device.id,
            account_id=device.account_id,
            kind=obs.kind,
            observed_at=obs.observed_at,
            fields=scrubbed(obs.fields),
            retention_class=self.policy.kinds[obs.kind],
            source=obs.source,
            model=device.model,
            firmware=firmware,
            dedupe_key=obs.dedupe_key,
        )
