"""What flows through the pipeline: observations from sources, records for sinks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FieldValue = int | float | str | bool
Source = Literal["snmp", "mqtt"]


class Kind(StrEnum):
    """Record kinds: exactly the data P2 of the privacy policy allows."""

    INVENTORY = "inventory"  # hardware model, serial, device identifier
    FIRMWARE = "firmware"  # OS / firmware version
    CONFIG = "config"  # redacted device configuration
    NETWORK = "network"  # IP address, interfaces
    SIGNAL = "signal"  # Wi-Fi / DECT signal strength
    REGISTRATION = "registration"  # SIP registration state
    CALL_QUALITY = "call_quality"  # MOS, jitter, loss
    PERFORMANCE = "performance"  # uptime, CPU, memory
    DIAGNOSTIC = "diagnostic"  # troubleshooting data (P8), only inside a debug window
    REACHABILITY = "reachability"  # device went up or down (derived from polls)
    CHANGE = "change"  # firmware upgrade/downgrade, reboot, configuration change (derived)


@dataclass(frozen=True, slots=True)
class Observation:
    """Fields decoded from one device message or poll, before the gate and tagging.

    A plain value: the decoders build it from values their conversions already typed, and
    the record made of it (TelemetryRecord) is what pydantic validates, once per record."""

    device_id: str
    kind: Kind
    observed_at: datetime
    fields: dict[str, FieldValue]
    source: Source
    # Same for a redelivered copy of the same message: the store keeps one (see SqliteStore).
    dedupe_key: str | None = None


class TelemetryRecord(BaseModel):
    """A gated, retention-tagged record, as every sink stores it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: str
    account_id: str
    kind: Kind
    observed_at: datetime
    fields: dict[str, FieldValue] = Field(min_length=1)
    retention_class: str
    source: Source
    model: str
    firmware: str | None = None
    dedupe_key: str | None = Field(default=None, exclude=True)  # internal: not shown or exported
