"""Entry point of the `hookflash` command."""

from __future__ import annotations

import click

from collector.cli.demo import demo
from collector.cli.influx_cmds import influx
from collector.cli.privacy_cmds import privacy, receipts
from collector.cli.profile_cmds import profiles
from collector.cli.query_cmds import audit, quarantine, query, sweep
from collector.cli.registry_cmds import accounts, devices
from collector.cli.rollout_cmds import rollout
from collector.cli.run_cmd import run
from collector.core.files import private_umask


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hookflash")
def cli() -> None:
    """hookflash: privacy-first telemetry for provider-supplied ATAs and VoIP phones."""
    private_umask()  # every file this process writes: owner-only (collector/core/files.py)


for command in (demo, run, devices, accounts, query, quarantine, audit, sweep, privacy, receipts, rollout):
    cli.add_command(command)
cli.add_command(influx)
cli.add_command(profiles)


if __name__ == "__main__":
    cli()
