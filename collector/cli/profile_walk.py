"""`hookflash profiles new --from-walk FILE`: a starting profile from `snmpwalk -On` output,
for a model no profile covers.

Each scalar instance (an OID ending in `.0`) outside what `generic` already reads becomes
an `[[snmp]]` entry with its type guessed from the value: STRING and IpAddress `string`
(a 6-octet Hex-STRING `mac`), INTEGER `int` (or `enum` when the walk shows `name(n)`),
Counter/Gauge/Unsigned `int`, Timeticks `timeticks_s`, OID `oid`. The kind is only a
guess (text: inventory, numbers: performance) and the field name a placeholder: every
entry says so, for the person who reviews it against the MIB and the privacy policy (P2:
leave out what is not device information, such as call-forward numbers). Each entry's
`syntax` is the wire type the agent sent (the MIB may name a textual convention of it);
standard objects get their `mib` name, vendor ones a TODO for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^\.?(?P<oid>\d+(?:\.\d+)+) = (?:(?P<type>[A-Za-z0-9-]+): )?(?P<value>.*)$")
_ENUM = re.compile(r"^(?P<name>[A-Za-z][\w-]*)\((?P<number>-?\d+)\)$")
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
# Standard scalars by name: (MIB object, field name; None: left out, the comment says why)
STANDARD: dict[str, tuple[str, str | None]] = {
    "1.3.6.1.2.1.1.4.0": ("SNMPv2-MIB::sysContact", None),  # a person's contact: not device data (P2)
    "1.3.6.1.2.1.1.5.0": ("SNMPv2-MIB::sysName", "sys_name"),
    "1.3.6.1.2.1.1.6.0": ("SNMPv2-MIB::sysLocation", None),  # a customer's premises (P2)
    "1.3.6.1.2.1.1.7.0": ("SNMPv2-MIB::sysServices", "sys_services"),
    "1.3.6.1.2.1.1.8.0": ("SNMPv2-MIB::sysORLastChange", None),  # the agent's own bookkeeping
}
STANDARD_SYNTAX = {"1.3.6.1.2.1.1.5.0": "DisplayString", "1.3.6.1.2.1.1.7.0": "INTEGER"}
# snmpwalk's type word -> the SMI base type it is
_SYNTAX = {
    "string": "OCTET STRING", "hex-string": "OCTET STRING", "integer": "INTEGER", "gauge32": "Gauge32",
    "unsigned32": "Unsigned32", "counter32": "Counter32", "counter64": "Counter64",
    "timeticks": "TimeTicks", "oid": "OBJECT IDENTIFIER", "ipaddress": "IpAddress",
}  # fmt: skip


@dataclass(frozen=True)
class Walked:
    oid: str
    type: str  # the profile type guessed
    value: str  # as the walk showed it
    enum: tuple[tuple[str, str], ...] = ()
    syntax: str = ""  # the SMI type the agent sent


def parse_walk(text: str) -> list[Walked]:
    """The varbinds of `snmpwalk -On` output; raises ValueError naming a line it cannot read."""
    found: list[Walked] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip()
        if not line or line.startswith(("No more variables", "No Such", "Timeout")):
            continue
        match = _LINE.match(line)
        if match is None:
            if found and not re.match(r"^\.?\d+\.\d", line):
                continue  # the continuation of a multi-line STRING
            raise ValueError(f"line {number}: not `snmpwalk -On` output: {line[:80]!r}")
        kind, value = (match.group("type") or "").lower(), match.group("value").strip()
        guess = _guess(match.group("oid"), kind, value)
        found.append(Walked(guess.oid, guess.type, guess.value, guess.enum, _SYNTAX.get(kind, "")))
    return found


def _guess(oid: str, kind: str, value: str) -> Walked:
    if kind == "integer":
        enum = _ENUM.match(value)
        if enum:
            return Walked(oid, "enum", value, ((enum.group("number"), enum.group("name")),))
        return Walked(oid, "int", value)
    if kind in ("counter32", "counter64", "gauge32", "unsigned32"):
        return Walked(oid, "int", value)
    if kind == "timeticks":
        return Walked(oid, "timeticks_s", value)
    if kind == "oid":
        return Walked(oid, "oid", value.lstrip("."))
    if kind == "hex-string" and len(value.split()) == 6:
        return Walked(oid, "mac", value)
    return Walked(oid, "string", value)


def starting_profile(walk: list[Walked], vendor: str, model: str, covered: set[str]) -> str:
    """TOML of a profile extending `generic`; `covered`: the OIDs generic already reads."""
    sys_object_id = next((w.value for w in walk if w.oid == SYS_OBJECT_ID), "")
    lines = [
        f"# Starting profile for {vendor} {model}, made by `hookflash profiles new` from an snmpwalk.",
        "# Review every entry against the vendor's MIB: the kind is a guess, the field name a",
        "# placeholder, and anything the privacy policy does not list must go (P2).",
        f"vendor = {_quote(vendor)}",
        f"models = [{_quote(model)}]",
        f"sysobjectid = [{_quote(sys_object_id)}]" if sys_object_id else "sysobjectid = []",
        'extends = ["generic"]',
    ]
    for w in walk:
        if not w.oid.endswith(".0") or w.oid in covered:
            continue  # table rows need a [[tables]] entry; generic already reads these
        kind = "inventory" if w.type in ("string", "oid", "mac") else "performance"
        standard = STANDARD.get(w.oid)
        if standard is not None and standard[1] is None:
            lines += ["", f"# {standard[0]} ({w.oid}) left out: not device information the policy lists (P2)"]
            continue
        syntax = w.syntax
        if standard is not None:
            name, note = str(standard[1]), f"walked {w.value[:50]}  (TODO: kind)"
            mib, syntax = f"mib = {_quote(standard[0])}", STANDARD_SYNTAX.get(w.oid, syntax)
        else:
            parts = w.oid.split(".")
            name = "f_" + "_".join(parts[6:-1] if w.oid.startswith("1.3.6.1.4.1.") else parts)
            note = f"walked: {w.value[:60]}  (TODO: kind, field name)"
            mib = '# mib = "VENDOR-MIB::object"  (TODO: the MIB object, and its SYNTAX below)'
        lines += [
            "",
            f"# {note}",
            "[[snmp]]",
            f'kind = "{kind}"',
            f'field = "{name}"',
            f'oid = "{w.oid}"',
            mib,
        ]
        lines += [f"syntax = {_quote(syntax)}"] if syntax else []
        lines.append(f'type = "{w.type}"')
        if w.enum:
            lines.append("enum = { " + ", ".join(f"{_quote(k)} = {_quote(v)}" for k, v in w.enum) + " }")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
