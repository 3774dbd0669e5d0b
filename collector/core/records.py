"""What flows through the pipeline: items as received, observations decoded from them,
records for the sinks, and quarantine entries for what could not become a record."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from collector.core.scrub import scrub_bytes, scrub_text

FieldValue = int | float | str | bool
RawValue = int | float | str | bytes | bool  # a value as a transport delivered it
SourceName = Literal["snmp", "mqtt", "sip", "snmp_trap"]
Ack = Callable[[], None]


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


Varbind = tuple[str, RawValue | None]


_NO_WALKS: Mapping[str, Sequence[Varbind]] = MappingProxyType({})


class Varbinds(NamedTuple):
    """What an SNMP agent answered to one poll: the scalars asked for by GET (None for
    noSuchObject and the like), and the varbinds of each table walked, by the table's
    entry OID. The kinds asked for are the ones this poll may yield."""

    scalars: Mapping[str, RawValue | None]
    walks: Mapping[str, Sequence[Varbind]] = _NO_WALKS
    kinds: frozenset[Kind] = frozenset()

    def render(self) -> bytes:
        """As text, for the quarantine: `oid=value` pairs."""
        pairs = [*self.scalars.items(), *(vb for rows in self.walks.values() for vb in rows)]
        return " ".join(f"{oid}={value!r}" for oid, value in pairs).encode()


class Received(NamedTuple):
    """One item exactly as a source received it, handed to the intake.

    `origin` says where it came from (MQTT topic, agent host:port): the intake locates the
    device from it where the source does not know the device itself (`device_id`, set by
    a poll), and the quarantine shows it. `ack` is called once the item is settled:
    stored, quarantined, or dropped on purpose. (A named tuple: one is made per message,
    and it costs a quarter of a frozen dataclass.)"""

    source: SourceName
    origin: str
    payload: bytes | Varbinds
    received_at: datetime
    ack: Ack | None = None
    device_id: str | None = None

    def payload_bytes(self) -> bytes:
        payload = self.payload
        return payload if isinstance(payload, bytes) else payload.render()


class Observation(NamedTuple):
    """Fields decoded from one device message or poll, before the gate and tagging.

    A plain value: the decoders build it from values their conversions already typed, and
    the record made of it (TelemetryRecord) is what pydantic validates, once per record.
    (A named tuple, like Received: one is made per message.)"""

    device_id: str
    kind: Kind
    observed_at: datetime
    fields: dict[str, FieldValue]
    source: SourceName
    # Same for a redelivered copy of the same message: the store keeps one.
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
    source: SourceName
    model: str
    firmware: str | None = None
    dedupe_key: str | None = Field(default=None, exclude=True)  # internal: not shown or exported


class EndAction(StrEnum):
    """What happens to a record when its retention ends (P5)."""

    DELETE = "delete"
    ANONYMIZE = "anonymize"  # folded into per-model/firmware/day aggregates, identifiers dropped


@dataclass(frozen=True)
class Anonymization:
    """How ended records become aggregates that single out no one (P5): a bucket (model,
    firmware, kind, day, field) is kept only when the records folded into it together
    come from at least `min_group_size` devices of as many accounts; a smaller one is
    merged upward (firmware "*", then model "*") or dropped. Text is kept only for the
    fields listed, and only values from each field's vocabulary (others count as "other";
    a field without a vocabulary keeps its values, which the bucket's k then covers)."""

    text_fields: frozenset[str] = frozenset()
    text_values: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    min_group_size: int = 10


class RetentionClass(BaseModel):
    """A class of the retention policy: how long its records live, and how they end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    ttl: timedelta | None = Field(description="None: kept while the account is active")
    end_action: EndAction
    description: str = ""

    @property
    def while_active(self) -> bool:
        return self.ttl is None


HEAD_BYTES = 48


def redacted_head(payload: bytes) -> str:
    """The first bytes of a payload for the quarantine, with secret-looking values masked
    (P7) and escaped so control bytes and invalid UTF-8 are shown, never interpreted."""
    masked = scrub_bytes(payload[: HEAD_BYTES * 4])
    return repr(masked[:HEAD_BYTES])[2:-1]


@dataclass(frozen=True)
class QuarantineEntry:
    """A payload of a provisioned device that could not become a record, with the reason.
    Only its size and redacted first bytes are kept, never the payload."""

    at: datetime
    source: str
    topic: str
    size: int
    head: str
    reason: str
    device_id: str | None = None
    account_id: str | None = None

    @classmethod
    def of(
        cls,
        source: str,
        topic: str,
        payload: bytes,
        reason: str,
        at: datetime,
        device_id: str | None = None,
        account_id: str | None = None,
    ) -> QuarantineEntry:
        """The one constructor: the intake's and the remote sinks' refusals alike."""
        return cls(
            at=at,
            source=source,
            # A topic may be a SIP From header and a reason may quote the bad value: both
            # are scrubbed like the payload's head (P7).
            topic=scrub_text(topic[:1024])[:256],
            size=len(payload),
            head=redacted_head(payload),
            reason=scrub_text(reason[:1200])[:300],
            device_id=device_id,
            account_id=account_id,
        )
