"""The `hookflash` command imports a command's module only when that command runs: the
command list is kept in collector/cli/main.py, equal to each command's own help, and
the commands a billing script or an operator runs most do not import the service, the
HTTP API or the store clients (bench/cli_start.py times them)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

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
    probe = (
        "import json, sys\n"
        "from collector.cli.main import cli\n"
        f"try:\n    cli({args!r})\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    heavy = sorted(m for m in loaded if m.startswith(HEAVY))
    assert heavy == [], heavy
    assert "Usage:" in done.stdout


def test_an_unknown_command_is_refused_by_name() -> None:
    result = CliRunner().invoke(cli, ["revok"])
    assert result.exit_code == 2 and "No such command 'revok'" in result.output
