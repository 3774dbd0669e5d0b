"""Entry point of the `hookflash` command.

Each command's module is imported only when that command runs: `hookflash --help` or a
billing script's `hookflash accounts revoke` does not pay for the service, the HTTP API
or the store clients (`bench/cli_start.py` measures it). The one-line help the command
list shows is kept here for that reason; `tests/unit/test_cli_lazy.py` holds it equal to
each command's own.
"""

from __future__ import annotations

import importlib

import click

from collector.cli.backend import BACKEND
from collector.core.files import private_umask
from provisioning.database_url import DEFAULT_PASSWORD_ENV

# name: (module, attribute, the first line of its help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "collector.cli.demo",
        "demo",
        "Collect from a simulated fleet on this machine; no external service needed.",
    ),
    "run": (
        "collector.cli.run_cmd",
        "run",
        "Run the collector from a validated config file until Ctrl-C or SIGTERM.",
    ),
    "devices": (
        "collector.cli.registry_cmds",
        "devices",
        "Provisioned devices (P1: only these are ever collected from).",
    ),
    "accounts": (
        "collector.cli.registry_cmds",
        "accounts",
        "Customer accounts and their lifecycle (P3, P4).",
    ),
    "query": ("collector.cli.query_cmds", "query", "Print stored telemetry records, oldest first."),
    "quarantine": (
        "collector.cli.query_cmds",
        "quarantine",
        "Show quarantined payloads (newest first): reason, topic, size, first bytes.",
    ),
    "audit": (
        "collector.cli.query_cmds",
        "audit",
        "The append-only audit log: lifecycle changes, imports, erasures, sweeps.",
    ),
    "sweep": ("collector.cli.query_cmds", "sweep", "Run the retention sweeper once now."),
    "privacy": (
        "collector.cli.privacy_cmds",
        "privacy",
        "Data subject rights (P6): export what is held about an account.",
    ),
    "receipts": ("collector.cli.privacy_cmds", "receipts", "Receipts of deactivation requests."),
    "rollout": (
        "collector.cli.rollout_cmds",
        "rollout",
        "Firmware rollouts: progress, failures, regressions, call quality before and after.",
    ),
    "influx": ("collector.cli.influx_cmds", "influx", "InfluxDB v2: the buckets the sink writes to."),
    "db": (
        "collector.cli.db_cmds",
        "db",
        "The registry's schema: its version, and migrating it (SQLite files or PostgreSQL).",
    ),
    "profiles": (
        "collector.cli.profile_cmds",
        "profiles",
        "Device profiles: which fields hookflash reads from each model, and how.",
    ),
}


def short_help(name: str, limit: int = 45) -> str:
    """The command list's line for a command, as click would shorten the command's help."""
    return click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A group whose commands are imported when one is asked for by name."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table above, importing none of them."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, short_help(name, limit)) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hookflash")
@click.option(
    "--database-url",
    envvar="HOOKFLASH_DATABASE_URL",
    metavar="URL",
    help="The registry in this PostgreSQL database (postgresql://user@host:port/db, no password)"
    " instead of the data dir's registry.db. A -c config's database_url wins.",
)
@click.option(
    "--database-password-env",
    default=DEFAULT_PASSWORD_ENV,
    show_default=True,
    metavar="NAME",
    help="The environment variable holding the database's password.",
)
def cli(database_url: str | None, database_password_env: str) -> None:
    """hookflash: privacy-first telemetry for provider-supplied ATAs and VoIP phones."""
    private_umask()  # every file this process writes: owner-only (collector/core/files.py)
    BACKEND.url, BACKEND.password_env = database_url or None, database_password_env


if __name__ == "__main__":
    cli()
