"""`hookflash run -c CONFIG`: the service against real devices and a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
from pathlib import Path

import click

from collector.cli.backend import BACKEND
from collector.cli.common import (
    check_data_dir,
    config_option,
    console,
    fail_cleanly,
    open_registry,
    open_store,
)
from collector.config import load_config
from collector.core.scrub import install_log_scrubbing
from collector.runtime.service import Service


async def serve(service: Service) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await service.start()
    console.print(
        f"hookflash collecting: {service.registry.device_count()} provisioned devices, "
        f"data in {service.config.data_dir}; Ctrl-C stops"
    )
    await stop.wait()
    console.print("stopping: flushing queued records")
    await service.stop()


@click.command()
@config_option("TOML config file.", required=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HOOKFLASH_DATA_DIR",
    help="Overrides data_dir from the config (env: HOOKFLASH_DATA_DIR).",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
@fail_cleanly
def run(config_path: Path, data_dir: Path | None, log_level: str) -> None:
    """Run the collector from a validated config file until Ctrl-C or SIGTERM."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_scrubbing()  # P7: no secret in any log line, third-party ones included
    config = load_config(config_path)
    if data_dir is not None:
        config = config.model_copy(update={"data_dir": data_dir})
    if config.database_url is None and BACKEND.url is not None:  # --database-url, HOOKFLASH_DATABASE_URL
        backend = {"database_url": BACKEND.url, "database_password_env": BACKEND.password_env}
        config = config.model_copy(update=backend)
    check_data_dir(config.data_dir)
    try:
        service = Service(config)
    except sqlite3.DatabaseError:
        # One clear error naming the corrupt file, not a traceback from inside the service.
        open_registry(config.data_dir).close()
        open_store(config.data_dir).close()
        raise
    asyncio.run(serve(service))
