"""SNMP varbinds → Observations, one per record kind present in the response.

`SnmpCodec` is what the intake asks about a poll's answer: the poller names the device it
asked, so there is nothing to locate."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from collector.core.errors import ConversionError, Rejected
from collector.core.records import FieldValue, Kind, Observation, RawValue, Received, Varbinds
from collector.decode.base import Decoded, Located
from collector.decode.convert import convert
from collector.profiles.model import DeviceProfile, FieldSpec, TableSpec
from provisioning.models import Transport, normalize_mac

_IDENTITY = FieldSpec(kind=Kind.INVENTORY, field="device_id", type="mac")


def decode_snmp(
    profile: DeviceProfile,
    device_id: str,
    varbinds: Mapping[str, RawValue | None],
    observed_at: datetime,
) -> tuple[list[Observation], list[str]]:
    """The observations, and the reasons of the records refused (absent OIDs are no reason).
    A value that does not fit its field (wrong type, out of its plausible range) refuses the
    whole record of that kind: a record is quarantined whole, not stored in part."""
    by_kind: dict[Kind, dict[str, FieldValue]] = defaultdict(dict)
    refused: dict[Kind, str] = {}
    for spec in profile.snmp:
        raw = varbinds.get(spec.oid)
        if raw is None or spec.kind in refused or spec.secret:
            continue
        try:
            by_kind[spec.kind][spec.field] = convert(spec, raw)
        except ConversionError as exc:
            refused[spec.kind] = f"oid {spec.oid} {exc}"
    observations = [
        Observation(device_id=device_id, kind=kind, observed_at=observed_at, fields=fields, source="snmp")
        for kind, fields in by_kind.items()
        if kind not in refused
    ]
    return observations, list(refused.values())


def decode_table(
    table: TableSpec,
    device_id: str,
    varbinds: Sequence[tuple[str, RawValue | None]],
    observed_at: datetime,
) -> tuple[list[Observation], list[str]]:
    """GETBULK varbinds of a table walk → one observation per row, tagged with its index.

    Varbinds past the end of a column (another column, another table, endOfMibView) are
    ignored; an empty cell (e.g. a loopback's ifPhysAddress) leaves that field out."""
    columns = table.column_specs()
    rows: dict[str, dict[str, FieldValue]] = {}
    problems: list[str] = []
    refused: set[str] = set()
    for oid, raw in varbinds:
        for prefix, spec in columns:
            if not oid.startswith(prefix + "."):
                continue
            index = oid[len(prefix) + 1 :]
            if raw is None or raw in (b"", ""):
                break
            row = rows.setdefault(index, {})
            if len(rows) > table.max_rows:
                rows.pop(index)
                break
            try:
                row[spec.field] = convert(spec, raw)
            except ConversionError as exc:
                if index not in refused:
                    refused.add(index)
                    problems.append(f"{oid} {exc}")
            break
    observations = []
    for index, fields in rows.items():
        if not fields or index in refused:
            continue
        fields = {table.index_field: int(index) if index.isdigit() else index, **fields}
        observations.append(
            Observation(
                device_id=device_id, kind=table.kind, observed_at=observed_at, fields=fields, source="snmp"
            )
        )
    return observations, problems


class SnmpCodec:
    transport = Transport.SNMP
    uses_profile = True

    def locate(self, item: Received) -> Located:
        raise Rejected(f"an SNMP answer from {item.origin} does not name the device asked")

    def decode(
        self, profile: DeviceProfile | None, device_id: str, item: Received, located: Located | None
    ) -> Decoded:
        assert profile is not None  # uses_profile
        answer = item.payload
        if not isinstance(answer, Varbinds):
            raise Rejected(f"expected SNMP varbinds, got {type(answer).__name__}")
        observations, problems = decode_snmp(profile, device_id, answer.scalars, item.received_at)
        for table in profile.tables:
            rows = answer.walks.get(table.oid)
            if rows is not None and table.kind in answer.kinds:
                found, table_problems = decode_table(table, device_id, rows, item.received_at)
                observations += found
                problems += table_problems
        return observations, problems


class SnmpTrapCodec(SnmpCodec):
    """Traps and informs: the device is the one a profile's `trap_identity` varbind names
    (a MAC) when the notification carries one, else the one provisioned on the host it came
    from; its varbinds are read with the device's profile like a poll's, so a trap carrying
    the objects a poll asks for yields the same records."""

    def __init__(self, identity_oids: Sequence[str] = ()) -> None:
        self._identity_oids = tuple(dict.fromkeys(identity_oids))

    def locate(self, item: Received) -> Located:
        host = item.origin.rsplit(":", 1)[0].strip("[]")
        payload = item.payload
        if self._identity_oids and isinstance(payload, Varbinds):
            for oid in self._identity_oids:
                raw = payload.scalars.get(oid)
                if raw is not None:
                    try:
                        mac = convert(_IDENTITY, raw)
                        return Located(normalize_mac(str(mac)), None, "")
                    except (ConversionError, ValueError) as exc:
                        raise Rejected(f"oid {oid}: the device's identity is not a MAC ({exc})") from None
        return Located(None, host, "")
