"""`hookflash profiles list` and `show`: the resolved profiles, and where each field came from."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from collector.cli.main import cli


def run(*args: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(cli, ["profiles", *args, "--format", "json"])
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, rows, result.output


def test_list_names_every_bundled_profile() -> None:
    code, rows, _ = run("list")
    assert code == 0
    names = {r["name"] for r in rows}
    assert {"generic", "grandstream-ht8xx", "yealink-t5x", "snom"} <= names
    yealink = next(r for r in rows if r["name"] == "yealink-t5x")
    assert yealink["vendor"] == "Yealink" and int(str(yealink["mqtt_fields"])) > 0


def test_show_resolves_extends_and_names_each_field_s_file() -> None:
    code, rows, _ = run("show", "grandstream-ht8xx")
    assert code == 0
    by_field = {(r["kind"], r["field"]): r for r in rows}
    assert by_field[("firmware", "version")]["file"] == "bundled grandstream-ht8xx.toml"
    assert by_field[("performance", "uptime_s")]["file"] == "bundled generic.toml"  # inherited
    assert by_field[("performance", "uptime_s")]["range"] == "0.."
    assert by_field[("firmware", "version")]["mib"] == "GS-HT8XX-MIB::versionCore DisplayString"


def test_a_user_profile_and_an_unknown_name(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "acme.toml").write_text(
        'vendor = "Acme"\nmodels = ["A1"]\nextends = ["generic"]\n'
        '[[snmp]]\nkind = "firmware"\nfield = "build"\noid = "1.3.6.1.4.1.99999.1.0"\ntype = "string"\n'
    )
    (tmp_path / "hookflash.toml").write_text('profile_dirs = ["profiles"]\n')
    result = CliRunner().invoke(
        cli, ["profiles", "show", "acme", "-c", str(tmp_path / "hookflash.toml"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(r["field"] == "build" and str(r["file"]).endswith("acme.toml") for r in rows)
    code, _, output = run("show", "nosuch")
    assert code == 2 and "unknown profile 'nosuch'" in output and "generic" in output
