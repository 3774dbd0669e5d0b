"""Observation + provisioned device → TelemetryRecord with its retention class."""

from __future__ import annotations

from collector.records import Kind, Observation, TelemetryRecord
from collector.retention import RetentionPolicy
from provisioning.models import Device


class Tagger:
    def __init__(self, policy: RetentionPolicy) -> None:
        self.policy = policy
        # Latest firmware per device, so every record can be grouped by firmware
        # (rollout views, anonymized aggregates) without a join at read time.
        self._firmware: dict[str, str] = {}

    def remember_firmware(self, device_id: str, version: str) -> None:
        self._firmware[device_id] = version

    def tag(self, observation: Observation, device: Device) -> TelemetryRecord:
        if observation.kind is Kind.FIRMWARE:
            version = observation.fields.get("version")
            if isinstance(version, str) and version:
                self._firmware[device.id] = version
        return TelemetryRecord(
            device_id=device.id,
            account_id=device.account_id,
            kind=observation.kind,
            observed_at=observation.observed_at,
            fields=observation.fields,
            retention_class=self.policy.kinds[observation.kind],
            source=observation.source,
            model=device.model,
            firmware=self._firmware.get(device.id),
        )
