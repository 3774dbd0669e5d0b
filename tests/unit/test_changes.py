"""Change detection forgets an erased device: after a revocation (or a removal) the first
firmware, uptime and config a device reports are not compared with the erased past."""

from __future__ import annotations

from datetime import UTC, datetime

from collector.core.records import Kind, Observation
from collector.tag.changes import ChangeDetector

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def observed(kind: Kind, **fields: object) -> Observation:
    return Observation(device_id="000b82000001", kind=kind, observed_at=NOW, fields=fields, source="snmp")  # type: ignore[arg-type]


def test_a_forgotten_device_starts_afresh() -> None:
    changes = ChangeDetector()
    for obs in (observed(Kind.FIRMWARE, version="1.0.43.11"), observed(Kind.PERFORMANCE, uptime_s=9000)):
        assert changes.observe(obs) is None
    upgrade = changes.observe(observed(Kind.FIRMWARE, version="1.0.47.4"))
    assert upgrade is not None and upgrade.fields["previous_version"] == "1.0.43.11"
    changes.forget(["000b82000001"])
    assert changes.firmware_of("000b82000001") is None
    assert (
        changes.observe(observed(Kind.FIRMWARE, version="1.0.41.2")) is None
    )  # no "downgrade" from the past
    assert changes.observe(observed(Kind.PERFORMANCE, uptime_s=10)) is None  # no "reboot" either
