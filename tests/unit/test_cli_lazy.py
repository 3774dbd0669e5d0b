"""The `hookflash` command imports a command's module only when that command runs: the
command list is kept in collector/cli/main.py, equal to each command's own help, and
the commands a billing script or an operator runs most do not import the service, the
HTTP API or the store clients (bench/cli_start.py times them)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.cli.main import COMMANDS, cli, short_help

HEAVY = ("fastapi", "influxdb_client", "httpx", "collector.runtime.service", "collector.api", "pysnmp")


def test_the_command_list_matches_each_commands_own_help() -> None:
    for name, (module, attribute, _) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name
        assert short_help(name, 300) == command.get_short_help_str(300), name


@pytest.mark.parametrize(
    "args",
    [["--help"], ["accounts", "revoke", "--help"], ["query", "--help"], ["accounts", "list", "--help"]],
)
def test_everyday_commands_import_nothing_heavy(args: list[str]) -> None:
    output, loaded = _modules_after(args)
    heavy = sorted(m for m in loaded if m.startswith(HEAVY))
    assert heavy == [], heavy
    assert "Usage:" in output


def _modules_after(args: list[str]) -> tuple[str, list[str]]:
    """Run the command in a new interpreter: its output, and every module it imported.
    It must succeed."""
    probe = (
        "import json, sys\n"
        "from collector.cli.main import cli\n"
        f"try:\n    cli({args!r})\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def test_an_unknown_command_is_refused_by_name() -> None:
    result = CliRunner().invoke(cli, ["revok"])
    assert result.exit_code == 2 and "No such command 'revok'" in result.output


def test_a_revocation_from_the_cli_loads_no_config_models_and_no_rich(tmp_path: Path) -> None:
    """A billing script's `accounts revoke` without a config file: the service's config
    models and rich (tables) are not imported, only what the revocation itself needs."""
    from factories import snmp_device
    from provisioning.registry import Registry

    Registry(tmp_path / "registry.db").import_devices([snmp_device(1, "acct-1")], source="test")
    output, loaded = _modules_after(["accounts", "revoke", "acct-1", "--data-dir", str(tmp_path)])
    unwanted = sorted(m for m in loaded if m.startswith((*HEAVY, "collector.config", "rich")))
    assert unwanted == [], unwanted
    assert "acct-1: active -> revoked" in output
