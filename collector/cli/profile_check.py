"""What `hookflash profiles check` asks an agent: every declared scalar by GET, then the
profile's enterprise subtree by GETBULK, over the poller's own clients (the fast v2c one,
pysnmp's engine for SNMPv3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from collector.config import ResolvedCredential
from collector.core.errors import ConversionError
from collector.core.records import RawValue
from collector.decode.convert import convert
from collector.profiles.model import DeviceProfile
from collector.sources.snmp.fast import FastGetter
from collector.sources.snmp.pysnmp_getter import PysnmpGetter

GET_CHUNK = 16  # OIDs per GET: small enough for any agent's message size
WALK_LIMIT = 500  # varbinds read under the enterprise subtree at most


@dataclass
class FieldCheck:
    kind: str
    field: str
    oid: str
    answered: bool
    raw: str = ""
    value: str = ""


@dataclass
class CheckReport:
    fields: list[FieldCheck] = field(default_factory=list)
    subtrees: list[str] = field(default_factory=list)
    undeclared: list[tuple[str, str]] = field(default_factory=list)


def _raw(value: RawValue) -> str:
    kind = {bytes: "octets", int: "integer", str: "oid/text", float: "number", bool: "bool"}.get(
        type(value), "?"
    )
    text = value.hex(":") if isinstance(value, bytes) and not value.isascii() else repr(value)
    return f"{kind} {text[:60]}"


def enterprise_roots(profile: DeviceProfile) -> list[str]:
    """1.3.6.1.4.1.N for each of the profile's sysObjectID prefixes."""
    roots = []
    for prefix in profile.sysobjectid:
        parts = prefix.split(".")
        if parts[:6] == ["1", "3", "6", "1", "4", "1"] and len(parts) > 6:
            roots.append(".".join(parts[:7]))
    return list(dict.fromkeys(roots))


Get = Callable[[list[str]], Awaitable[dict[str, RawValue | None]]]
Bulk = Callable[[list[str], int], Awaitable[list[tuple[str, RawValue | None]]]]


async def check_agent(
    profile: DeviceProfile, address: tuple[str, int], credential: ResolvedCredential, timeout: float
) -> CheckReport:
    """Ask the agent with the credential set's version: v2c with its community (the poller's
    fast client), v3 as its USM user (pysnmp's engine); both getters take (address, who, …)."""
    get: Get
    bulk: Bulk
    if credential.version == "v2c":
        fast = FastGetter(timeout)
        await fast.start()
        get, bulk, close = (
            partial(fast.get, address, credential.community),
            partial(fast.bulk, address, credential.community),
            fast.close,
        )
    else:
        engine = PysnmpGetter(timeout)
        get, bulk, close = (
            partial(engine.get, address, credential),
            partial(engine.bulk, address, credential),
            engine.close,
        )
    try:
        report = CheckReport()
        specs = list(profile.snmp)
        answers: dict[str, RawValue | None] = {}
        for start in range(0, len(specs), GET_CHUNK):
            answers.update(await get([s.oid for s in specs[start : start + GET_CHUNK]]))
        for spec in specs:
            raw = answers.get(spec.oid)
            check = FieldCheck(spec.kind.value, spec.field, spec.oid, raw is not None)
            if raw is not None:
                check.raw = _raw(raw)
                try:
                    check.value = repr(convert(spec, raw))
                except ConversionError as exc:
                    check.value = f"refused: {exc.reason}"
            report.fields.append(check)
        declared = {s.oid for s in specs}
        tables = [f"{t.oid}." for t in profile.tables]
        report.subtrees = enterprise_roots(profile)
        for root in report.subtrees:
            cursor, seen = root, 0
            while seen < WALK_LIMIT:
                varbinds = await bulk([cursor], 25)
                inside = [(o, v) for o, v in varbinds if o.startswith(root + ".") and v is not None]
                for oid, value in inside:
                    if oid not in declared and not any(oid.startswith(t) for t in tables):
                        report.undeclared.append((oid, _raw(value)))
                seen += len(varbinds)
                if len(inside) < len(varbinds) or not varbinds:
                    break
                cursor = varbinds[-1][0]
        return report
    finally:
        close()
