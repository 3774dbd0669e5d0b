"""Observation + provisioned device → TelemetryRecord with its retention class."""

from __future__ import annotations

from collector.core.records import Observation, TelemetryRecord
from collector.retention import RetentionPolicy
from collector.tag.changes import ChangeDetector
from provisioning.models import Device


class Tagger:
    def __init__(self, policy: RetentionPolicy, changes: ChangeDetector | None = None) -> None:
        self.policy = policy
        # Also the memory of each device's firmware, so every record can be grouped by
        # firmware (rollout views, anonymized aggregates) without a join at read time.
        self.changes = changes or ChangeDetector()

    def tag(self, observation: Observation, device: Device) -> list[TelemetryRecord]:
        """The record for the observation, plus a `change` record when it reveals one."""
        change = self.changes.observe(observation)
        observations = [observation] if change is None else [observation, change]
        firmware = self.changes.firmware_of(device.id)
        return [
            TelemetryRecord(
                device_id=device.id,
                account_id=device.account_id,
                kind=obs.kind,
                observed_at=obs.observed_at,
                fields=obs.fields,
                retention_class=self.policy.kinds[obs.kind],
                source=obs.source,
                model=device.model,
                firmware=firmware,
                dedupe_key=obs.dedupe_key,
            )
            for obs in observations
        ]
