"""What an agent serves for a profile's fields: each value at the profile's own OID, typed as
the MIB's SYNTAX says (the field's `syntax`), raw as the device sends it (the inverse of
the profile's conversion: enum label to its number, scaled number to its raw integer,
seconds to TimeTicks). The simulated fleet and the tests' snmpd agents are both built with
this, so the demo, the tests and a real device of that model agree on the layout.
"""

from __future__ import annotations

from collections.abc import Mapping

from collector.core.records import FieldValue
from collector.profiles import DeviceProfile
from collector.profiles.model import SnmpFieldSpec, TableColumn
from collector.sim.snmp_agent import TypedValue

# A field's value by (kind, field); a table's rows by entry OID, then index, then field.
Fields = Mapping[tuple[str, str], FieldValue]
Rows = Mapping[str, Mapping[int, Mapping[str, FieldValue]]]
_DEFAULT_WIRE = {"string": "octets", "mac": "octets", "oid": "oid", "timeticks_s": "timeticks"}


def served(spec: SnmpFieldSpec | TableColumn, value: FieldValue) -> TypedValue:
    """The typed raw value an agent sends so that hookflash reads `value` for `spec`."""
    wire = spec.wire or _DEFAULT_WIRE.get(spec.type, "integer")
    raw: int | str | bytes
    if spec.type == "enum":
        assert spec.enum is not None
        key = next((k for k, label in spec.enum.items() if label == value), None)
        if key is None:
            raise ValueError(f"{value!r} is none of {spec.field}'s enum labels")
        raw = int(key) if wire != "octets" else key
    elif spec.type == "mac":
        raw = bytes.fromhex(str(value).replace(":", "").replace("-", ""))
    elif spec.type == "timeticks_s":
        raw = int(float(str(value)) * 100)
    elif spec.type in ("int", "float"):
        number = float(str(value)) / (spec.scale or 1.0)
        raw = round(number)
    elif spec.type == "bool":
        raw = 1 if value else 2  # TruthValue true(1), false(2)
    else:
        raw = str(value)
    return TypedValue(wire, raw)  # type: ignore[arg-type]


def agent_values(profile: DeviceProfile, fields: Fields, rows: Rows | None = None) -> dict[str, TypedValue]:
    """OID → typed value for every field of `profile` that `fields` (and `rows`) give."""
    out: dict[str, TypedValue] = {}
    for spec in profile.snmp:
        key = (spec.kind.value, spec.field)
        if key in fields:
            out[spec.oid] = served(spec, fields[key])
    for table in profile.tables:
        for index, row in (rows or {}).get(table.oid, {}).items():
            for column in table.columns:
                if column.field in row:
                    out[f"{table.oid}.{column.column}.{index}"] = served(column, row[column.field])
    return out
