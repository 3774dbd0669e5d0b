"""Change events derived from what devices report: firmware upgrades and downgrades,
reboots (sysUpTime went backwards) and configuration changes (hash of the redacted
configuration). They are records of kind `change`, gated and retained like any other."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from collector.core.records import FieldValue, Kind, Observation
from collector.core.scrub import is_secret_field
from collector.core.versions import version_key


def config_hash(fields: Mapping[str, FieldValue]) -> str:
    """Stable hash of a configuration with anything secret-looking left out (P7)."""
    redacted = {k: v for k, v in sorted(fields.items()) if not is_secret_field(k)}
    return hashlib.sha256(json.dumps(redacted, sort_keys=True).encode()).hexdigest()[:16]


class ChangeDetector:
    def __init__(self) -> None:
        self._firmware: dict[str, str] = {}
        self._uptime: dict[str, int] = {}
        self._config: dict[str, str] = {}

    def seed(self, firmware: Mapping[str, str], uptime: Mapping[str, int], config: Mapping[str, str]) -> None:
        """Last known state (from the store at start-up), so a change across a restart counts."""
        self._firmware.update(firmware)
        self._uptime.update(uptime)
        self._config.update(config)

    def forget(self, device_ids: Iterable[str]) -> None:
        """What was known of these devices (their data was erased: a revocation, a removal),
        so the first record after a reactivation is not compared with the erased past."""
        for device in device_ids:
            self._firmware.pop(device, None)
            self._uptime.pop(device, None)
            self._config.pop(device, None)

    def firmware_of(self, device_id: str) -> str | None:
        return self._firmware.get(device_id)

    def observe(self, observation: Observation) -> Observation | None:
        """The change event this observation reveals, if any."""
        fields, device = observation.fields, observation.device_id
        change: dict[str, FieldValue] | None = None
        if observation.kind is Kind.FIRMWARE and isinstance(fields.get("version"), str):
            new = str(fields["version"])
            old = self._firmware.get(device)
            self._firmware[device] = new
            if old is not None and old != new:
                old_key, new_key = version_key(old), version_key(new)
                direction = (
                    "upgrade"
                    if old_key and new_key and new_key > old_key
                    else "downgrade"
                    if old_key and new_key and new_key < old_key
                    else "change"
                )
                change = {
                    "event": "firmware_changed",
                    "version": new,
                    "previous_version": old,
                    "direction": direction,
                }
        elif observation.kind is Kind.PERFORMANCE and isinstance(fields.get("uptime_s"), int):
            new_uptime = int(fields["uptime_s"])
            old_uptime = self._uptime.get(device)
            self._uptime[device] = new_uptime
            if old_uptime is not None and new_uptime < old_uptime:
                change = {"event": "reboot", "uptime_s": new_uptime, "previous_uptime_s": old_uptime}
        elif observation.kind is Kind.CONFIG:
            digest = config_hash(fields)
            old_digest = self._config.get(device)
            self._config[device] = digest
            if old_digest is not None and old_digest != digest:
                change = {"event": "config_changed", "config_hash": digest, "previous_hash": old_digest}
        if change is None:
            return None
        return Observation(
            device_id=device,
            kind=Kind.CHANGE,
            observed_at=observation.observed_at,
            fields=change,
            source=observation.source,
        )
