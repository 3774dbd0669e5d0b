"""The profile schema. Files are TOML; unknown keys are errors so typos never pass silently."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.core.records import Kind

_NUMERIC_OID = re.compile(r"^1(\.\d+){3,127}$")
_PATH = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

Conversion = Literal["int", "float", "string", "bool", "timeticks_s", "mac", "oid", "enum"]
_MIB_OBJECT = re.compile(r"^[A-Z][A-Za-z0-9-]*::[a-zA-Z][A-Za-z0-9-]*$")

# The SYNTAX of an object as its MIB declares it (base types and the textual conventions
# bundled profiles meet), what it travels as on the wire (the simulated agents and the
# tests serve that), and which profile conversions can read it.
Syntax = Literal[
    "INTEGER", "Integer32", "Unsigned32", "Gauge32", "Counter32", "Counter64", "TimeTicks",
    "TruthValue", "OCTET STRING", "DisplayString", "SnmpAdminString", "PhysAddress",
    "MacAddress", "OBJECT IDENTIFIER", "IpAddress",
]  # fmt: skip
_NUMBERS = frozenset({"int", "float", "enum", "bool"})
WIRE: dict[str, tuple[str, frozenset[str]]] = {
    "INTEGER": ("integer", _NUMBERS),
    "Integer32": ("integer", _NUMBERS),
    "TruthValue": ("integer", frozenset({"enum", "bool"})),
    "Unsigned32": ("gauge", _NUMBERS),
    "Gauge32": ("gauge", _NUMBERS),
    "Counter32": ("counter32", frozenset({"int", "float"})),
    "Counter64": ("counter64", frozenset({"int", "float"})),
    "TimeTicks": ("timeticks", frozenset({"timeticks_s", "int"})),
    "OCTET STRING": ("octets", frozenset({"string", "mac", "enum"})),
    "DisplayString": ("octets", frozenset({"string", "enum"})),
    "SnmpAdminString": ("octets", frozenset({"string", "enum"})),
    "PhysAddress": ("octets", frozenset({"mac", "string"})),
    "MacAddress": ("octets", frozenset({"mac"})),
    "OBJECT IDENTIFIER": ("oid", frozenset({"oid", "string"})),
    "IpAddress": ("ipaddress", frozenset({"string"})),
}


class MibObject(BaseModel):
    """Where an SNMP field comes from in a published MIB: `mib = "GS-HT8XX-MIB::versionCore"`
    and the object's `syntax` there, which must suit the field's `type`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mib: str = ""
    syntax: Syntax | None = None

    @field_validator("mib")
    @classmethod
    def _module_and_object(cls, value: str) -> str:
        if value and not _MIB_OBJECT.match(value):
            raise ValueError(f"mib {value!r} must be MODULE::object, e.g. SNMPv2-MIB::sysUpTime")
        return value

    def _check_syntax(self, conversion: str) -> None:
        if self.syntax is not None and conversion not in WIRE[self.syntax][1]:
            allowed = ", ".join(sorted(WIRE[self.syntax][1]))
            raise ValueError(f"type {conversion!r} cannot read a {self.syntax} (syntax allows: {allowed})")

    @property
    def wire(self) -> str | None:
        """How the object travels (collector.sim.snmp_agent kinds), None without a syntax."""
        return None if self.syntax is None else WIRE[self.syntax][0]


class FieldSpec(BaseModel):
    """One field of one record kind, with how to convert the raw value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    field: str
    type: Conversion
    scale: float | None = None
    enum: dict[str, str] | None = None
    # The plausible range of a number, after `scale` (MOS 1 to 5, loss 0 to 100 %): a value
    # outside it, or one that is not finite, quarantines the record with the field and value.
    min: float | None = None
    max: float | None = None
    # Replaces the field of the same kind and name that a profile it extends declares.
    override: bool = False
    # A secret the device reports (a password, a key): never read, never stored (P7). It is
    # declared so that `profiles check` and reviewers see it is known and left out.
    secret: bool = False
    note: str = ""

    @field_validator("field")
    @classmethod
    def _field_name(cls, value: str) -> str:
        if not _FIELD.match(value):
            raise ValueError(f"field name {value!r} must be snake_case, starting with a letter")
        return value

    @model_validator(mode="after")
    def _enum_and_scale(self) -> FieldSpec:
        if (self.type == "enum") != (self.enum is not None):
            raise ValueError("type 'enum' needs an enum table, and an enum table needs type 'enum'")
        if self.scale is not None and self.type not in ("int", "float"):
            raise ValueError(f"scale only applies to int or float, not {self.type}")
        ranged = self.min is not None or self.max is not None
        if ranged and self.type not in ("int", "float", "timeticks_s"):
            raise ValueError(f"min and max only apply to numbers, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self

    @property
    def key(self) -> tuple[Kind, str]:
        return self.kind, self.field


class SnmpFieldSpec(FieldSpec, MibObject):
    oid: str = Field(description="numeric OID of a scalar instance, e.g. 1.3.6.1.2.1.1.3.0")

    @model_validator(mode="after")
    def _syntax_fits(self) -> SnmpFieldSpec:
        self._check_syntax(self.type)
        return self

    @field_validator("oid")
    @classmethod
    def _numeric(cls, value: str) -> str:
        if not _NUMERIC_OID.match(value):
            raise ValueError(f"oid {value!r} is not a numeric OID like 1.3.6.1.2.1.1.3.0")
        return value


class MqttFieldSpec(FieldSpec):
    path: str = Field(description="dotted path into the JSON payload, e.g. wifi.rssi")

    @field_validator("path")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not _PATH.match(value):
            raise ValueError(f"path {value!r} must be dotted names like wifi.rssi")
        return value


class TableColumn(MibObject):
    """One column of an SNMP table: `column` is the sub-identifier under the entry OID."""

    column: int = Field(ge=1)
    field: str
    type: Conversion
    scale: float | None = None
    enum: dict[str, str] | None = None
    min: float | None = None
    max: float | None = None
    note: str = ""

    @model_validator(mode="after")
    def _syntax_fits(self) -> TableColumn:
        self._check_syntax(self.type)
        return self


class TableSpec(BaseModel):
    """An SNMP table walked with GETBULK: one record of `kind` per row, tagged with its index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    oid: str = Field(description="numeric OID of the table entry, e.g. 1.3.6.1.2.1.2.2.1 (ifEntry)")
    mib: str = ""  # the entry, e.g. IF-MIB::ifEntry
    index_field: str = "index"
    max_rows: int = Field(default=16, ge=1, le=64)
    columns: tuple[TableColumn, ...] = Field(min_length=1)

    @field_validator("oid")
    @classmethod
    def _numeric(cls, value: str) -> str:
        if not re.match(r"^1(\.\d+){3,126}$", value):
            raise ValueError(f"oid {value!r} is not a numeric OID like 1.3.6.1.2.1.2.2.1")
        return value

    @field_validator("mib")
    @classmethod
    def _entry(cls, value: str) -> str:
        return MibObject(mib=value).mib

    @model_validator(mode="after")
    def _fields(self) -> TableSpec:
        names = [self.index_field, *(c.field for c in self.columns)]
        for name in names:
            if not _FIELD.match(name):
                raise ValueError(f"field name {name!r} must be snake_case, starting with a letter")
        if len(set(names)) != len(names):
            raise ValueError("table field names (and index_field) must be unique")
        for column in self.columns:
            self._spec(column)  # the same rules as a scalar field
        return self

    @property
    def key(self) -> tuple[Kind, str]:
        return self.kind, self.oid

    def column_specs(self) -> list[tuple[str, FieldSpec]]:
        """(column OID prefix, field spec) for each column."""
        return [(f"{self.oid}.{c.column}", self._spec(c)) for c in self.columns]

    def _spec(self, c: TableColumn) -> FieldSpec:
        return FieldSpec(
            kind=self.kind, field=c.field, type=c.type, scale=c.scale, enum=c.enum, min=c.min, max=c.max
        )


class TrapIdentity(MibObject):
    """The varbind of a trap or inform that names its device (a MAC, as device IDs are),
    for agents whose source address does not (several devices behind one NAT)."""

    oid: str

    @field_validator("oid")
    @classmethod
    def _numeric(cls, value: str) -> str:
        return SnmpFieldSpec._numeric(value)

    @model_validator(mode="after")
    def _syntax_fits(self) -> TrapIdentity:
        self._check_syntax("mac")
        return self


class ProfileFile(BaseModel):
    """A profile as written in its file, before `extends` is resolved."""

    model_config = ConfigDict(extra="forbid")

    extends: list[str] = []
    vendor: str = ""
    models: list[str] = []
    sysobjectid: list[str] = []
    note: str = ""
    snmp: list[SnmpFieldSpec] = []
    tables: list[TableSpec] = []
    # False for agents that answer GET only (no GETNEXT/GETBULK): no table is walked.
    getbulk: bool = True
    mqtt: list[MqttFieldSpec] = []
    trap_identity: TrapIdentity | None = None

    @field_validator("sysobjectid")
    @classmethod
    def _prefixes(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(r"^1(\.\d+)+$", value):
                raise ValueError(f"sysobjectid prefix {value!r} is not a numeric OID")
        return values


class DeviceProfile(BaseModel):
    """A resolved profile: its own fields plus everything it extends."""

    model_config = ConfigDict(frozen=True)

    name: str
    vendor: str
    models: tuple[str, ...]
    sysobjectid: tuple[str, ...]
    snmp: tuple[SnmpFieldSpec, ...]
    tables: tuple[TableSpec, ...] = ()
    mqtt: tuple[MqttFieldSpec, ...]
    origin: str
    trap_identity: TrapIdentity | None = None

    def snmp_oids(self, kinds: frozenset[Kind]) -> list[str]:
        return [spec.oid for spec in self.snmp if spec.kind in kinds and not spec.secret]  # never asked

    def kinds(self) -> list[Kind]:
        """Every kind this profile polls over SNMP, scalars and tables, in declaration order."""
        return list(dict.fromkeys([*(s.kind for s in self.snmp), *(t.kind for t in self.tables)]))
