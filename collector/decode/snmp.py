"""SNMP varbinds → Observations, one per record kind present in the response."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

from collector.decode.convert import ConversionError, RawValue, convert
from collector.profiles.model import DeviceProfile
from collector.records import FieldValue, Kind, Observation


def decode_snmp(
    profile: DeviceProfile,
    device_id: str,
    varbinds: Mapping[str, RawValue | None],
    observed_at: datetime,
) -> tuple[list[Observation], list[str]]:
    """Return the observations and a list of per-field problems (absent OIDs are not problems)."""
    by_kind: dict[Kind, dict[str, FieldValue]] = defaultdict(dict)
    problems: list[str] = []
    for spec in profile.snmp:
        raw = varbinds.get(spec.oid)
        if raw is None:
            continue
        try:
            by_kind[spec.kind][spec.field] = convert(spec, raw)
        except ConversionError as exc:
            problems.append(f"oid {spec.oid} {exc}")
    observations = [
        Observation(device_id=device_id, kind=kind, observed_at=observed_at, fields=fields, source="snmp")
        for kind, fields in by_kind.items()
    ]
    return observations, problems
