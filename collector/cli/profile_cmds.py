"""`hookflash profiles list` and `hookflash profiles show NAME`: the device profiles as
hookflash resolves them (bundled, then the config's `profile_dirs`), and where each field
came from."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from collector.cli.common import config_option, console, emit, fail_cleanly, format_option
from collector.cli.profile_check import check_agent
from collector.cli.profile_walk import parse_walk, starting_profile
from collector.config import load_config
from collector.profiles import load_profiles
from collector.profiles.loader import ProfileSet


def _profiles(config_path: Path | None) -> ProfileSet:
    dirs = load_config(config_path).profile_dirs if config_path is not None else []
    return load_profiles(dirs)


@click.group()
def profiles() -> None:
    """Device profiles: which fields hookflash reads from each model, and how."""


@profiles.command("list")
@config_option("Also the profiles in this config's profile_dirs.")
@format_option
@fail_cleanly
def list_profiles(config_path: Path | None, fmt: str) -> None:
    """Every concrete profile: vendor, models, sysObjectID prefixes, field counts, file."""
    found = _profiles(config_path)
    rows = []
    for name in found.names:
        p = found.get(name)
        rows.append(
            {
                "name": name,
                "vendor": p.vendor,
                "models": " ".join(p.models),
                "sysobjectid": " ".join(p.sysobjectid),
                "snmp_fields": len(p.snmp),
                "tables": len(p.tables),
                "mqtt_fields": len(p.mqtt),
                "file": p.origin,
            }
        )
    emit(
        rows, fmt, ["name", "vendor", "models", "sysobjectid", "snmp_fields", "tables", "mqtt_fields", "file"]
    )


@profiles.command("show")
@click.argument("name")
@config_option("Also the profiles in this config's profile_dirs.")
@format_option
@fail_cleanly
def show_profile(name: str, config_path: Path | None, fmt: str) -> None:
    """NAME resolved after `extends`: every field, how it is read, and the file it came from."""
    found = _profiles(config_path)
    profile = found.get(name)
    origins = found.origins[name]
    rows: list[dict[str, object]] = []
    for s in profile.snmp:
        rows.append(_row("snmp", s.kind.value, s.field, s.oid, s, origins["snmp"].get(s.key, "")))
    for t in profile.tables:
        for c in t.columns:
            rows.append(
                _row(
                    "table", t.kind.value, c.field, f"{t.oid}.{c.column}", c, origins["tables"].get(t.key, "")
                )
            )
    for m in profile.mqtt:
        rows.append(_row("mqtt", m.kind.value, m.field, m.path, m, origins["mqtt"].get(m.key, "")))
    columns = ["via", "kind", "field", "read_from", "mib", "type", "scale", "range", "enum", "file"]
    emit(rows, fmt, columns, title=name)


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _row(via: str, kind: str, field: str, read_from: str, spec: object, origin: str) -> dict[str, object]:
    low, high = getattr(spec, "min", None), getattr(spec, "max", None)
    return {
        "via": via,
        "kind": kind,
        "field": field,
        "read_from": read_from,
        "mib": " ".join(filter(None, (getattr(spec, "mib", ""), getattr(spec, "syntax", None) or ""))),
        "type": getattr(spec, "type", ""),
        "scale": getattr(spec, "scale", None),
        "range": "" if low is None and high is None else f"{_bound(low)}..{_bound(high)}",
        "enum": getattr(spec, "enum", None),
        "file": origin,
    }


@profiles.command("check")
@click.argument("name")
@click.option("--agent", required=True, help="HOST[:PORT] of the agent (default port 161).")
@click.option("--credential", required=True, help="A credential set of the config (v2c or v3).")
@config_option("The config holding the credential set (and profile_dirs).", required=True)
@click.option("--timeout", default=2.0, show_default=True, help="Seconds per request.")
@fail_cleanly
def check_profile(name: str, agent: str, credential: str, config_path: Path, timeout: float) -> None:
    """Poll AGENT once with profile NAME: per declared field, whether it answered, what it
    sent and what hookflash makes of it; then what the agent holds under the profile's
    enterprise subtree that the profile does not declare. Exit status 1 if a declared
    field is missing."""
    config = load_config(config_path)
    found = load_profiles(config.profile_dirs)
    profile = found.get(name)
    creds = config.resolved_credentials()
    if credential not in creds:
        raise ValueError(f"no credential set {credential!r} in {config_path}")
    host, _, port = agent.rpartition(":") if agent.count(":") == 1 else (agent, "", "")
    address = (host or agent, int(port) if port else 161)
    report = asyncio.run(check_agent(profile, address, creds[credential], timeout))
    missing = [f for f in report.fields if not f.answered]
    rows = [
        {
            "kind": f.kind,
            "field": f.field,
            "oid": f.oid,
            "answered": "yes" if f.answered else "NO",
            "raw": f.raw,
            "value": f.value,
        }
        for f in report.fields
    ]
    emit(rows, "table", ["kind", "field", "oid", "answered", "raw", "value"], title=f"{name} on {agent}")
    if report.undeclared:
        console.print(f"under {', '.join(report.subtrees)}, not in the profile ({len(report.undeclared)}):")
        for oid, raw in report.undeclared:
            console.print(f"  {oid} = {raw}", highlight=False)
    if missing:
        console.print(f"{len(missing)} declared field(s) missing: {', '.join(f.field for f in missing)}")
        raise SystemExit(1)


@profiles.command("new")
@click.option(
    "--from-walk",
    "walk_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="`snmpwalk -On` output of the model's agent.",
)
@click.option("--vendor", required=True)
@click.option("--model", required=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@fail_cleanly
def new_profile(walk_file: Path, vendor: str, model: str, output: Path | None) -> None:
    """A starting profile for a model no profile covers, from an snmpwalk of its agent:
    extends generic, one entry per scalar generic does not read, types guessed from the
    values. Review every entry before use (the file says how)."""
    walked = parse_walk(walk_file.read_text(encoding="utf-8", errors="replace"))
    covered = {s.oid for s in load_profiles().get("generic").snmp}
    text = starting_profile(walked, vendor, model, covered)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        console.print(f"wrote {output}; check it with: hookflash profiles show {output.stem} -c CONFIG")
