"""`hookflash demo`: an embedded broker, a simulated fleet, and the real service collecting it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.live import Live
from rich.table import Table
from rich.text import Text

from collector.cli.common import check_data_dir, console, data_dir_option, fail_cleanly
from collector.config import ApiConfig, MqttConfig, ServiceConfig, SnmpConfig, SnmpCredential
from collector.config.alerts import AlertsConfig, FirmwareRegressedRule, MosBelowRule, RegistrationLostRule
from collector.config.sip import SipConfig
from collector.config.views import ViewsConfig
from collector.core.scrub import install_log_scrubbing
from collector.core.stats import Stats
from collector.runtime.paths import registry_path, store_path
from collector.runtime.service import Service
from collector.sim.broker import EmbeddedBroker
from collector.sim.fleet import COMMUNITY, SimulatedFleet, build_fleet
from collector.sim.sip_phones import SimulatedSipPhones
from provisioning.receipts import Action, ReceiptStatus
from provisioning.registry import Registry

MARKER = ".hookflash-demo"
INACTIVE_ACCOUNT, REVOKED_ACCOUNT = "acct-1002", "acct-1003"
PLANNED_CHANGES = (
    (INACTIVE_ACCOUNT, Action.SUSPEND, "inactive"),
    (REVOKED_ACCOUNT, Action.REVOKE, "revoked"),
)


@dataclass
class DemoResult:
    stats: Stats
    # account -> status it was set to halfway through ("failed" if that failed);
    # empty if the demo was stopped before halfway.
    changed: dict[str, str] = field(default_factory=dict)


def prepare_data_dir(data_dir: Path) -> None:
    """The demo starts from scratch, but never deletes a data dir it did not create."""
    check_data_dir(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    has_data = registry_path(data_dir).exists() or store_path(data_dir).exists()
    if has_data and not (data_dir / MARKER).exists():
        raise click.UsageError(f"{data_dir} holds data that a demo did not create; pass another --data-dir")
    for path in data_dir.glob("*.db*"):
        path.unlink()
    (data_dir / MARKER).write_text("created by hookflash demo; safe to delete\n")


def progress_table(stats: Stats, elapsed: float, duration: float, notes: list[str]) -> Table:
    table = Table(title=f"hookflash demo  {elapsed:5.1f}s / {duration:.0f}s", show_header=False)
    table.add_row("devices seen", str(len(stats.devices_seen)))
    for kind, count in sorted(stats.stored_by_kind.items()):
        table.add_row(f"stored {kind}", str(count))
    table.add_row("quarantined", str(stats.quarantined))
    table.add_row("polls sent / failed", f"{stats.polls_sent} / {stats.polls_failed}")
    table.add_row("dropped (account not active)", str(stats.dropped_inactive + stats.polls_skipped_inactive))
    for note in notes:
        table.add_row(Text("event", style="bold"), note)
    return table


def demo_views(period: float, port: int) -> dict[str, object]:
    """The dashboard part of the demo's config: the API on 127.0.0.1 with open reads (the
    deactivation endpoints keep a random token nobody is shown), and a few alert rules."""
    os.environ.setdefault("HOOKFLASH_DEMO_TOKEN", secrets.token_urlsafe(24))
    return {
        "api": ApiConfig(enabled=True, port=port, token_env="HOOKFLASH_DEMO_TOKEN", auth_reads=False),
        "views": ViewsConfig(offline_after_s=max(10 * period, 10), refresh_s=max(period, 1)),
        "alerts": AlertsConfig(
            enabled=True,
            interval_s=max(period, 1),
            rules=[
                MosBelowRule(name="poor-mos", type="mos_below", threshold=3.5, calls=3),
                RegistrationLostRule(name="registration-lost", type="registration_lost"),
                FirmwareRegressedRule(name="firmware-regressed", type="firmware_regressed"),
            ],
        ),
    }


async def run_demo(data_dir: Path, devices: int, duration: float, period: float, port: int = 0) -> DemoResult:
    prepare_data_dir(data_dir)
    logging.basicConfig(
        filename=data_dir / "hookflash.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_scrubbing()  # P7: no secret in any log line, third-party ones included
    broker = EmbeddedBroker()
    await broker.start()
    fleet = SimulatedFleet(build_fleet(devices), broker.port, period_s=period)
    provisioned = await fleet.start()
    registry = Registry(registry_path(data_dir))
    registry.import_devices(provisioned, source="hookflash demo")
    config = ServiceConfig(
        data_dir=data_dir,
        snmp=SnmpConfig(interval_s=period, timeout_s=1.0, retries=0),
        # The embedded broker (amqtt) speaks MQTT 3.1.1 and keeps no sessions.
        mqtt=MqttConfig(
            enabled=True,
            port=broker.port,
            client_id="hookflash-demo",
            protocol="3.1.1",
            persistent_session=False,
        ),
        sip=SipConfig(enabled=True, listen="127.0.0.1:0", tcp=False),
        credentials={"demo": SnmpCredential.model_validate({"community": COMMUNITY})},
        lifecycle_poll_s=0.05,
        **demo_views(period, port),
    )
    service = Service(config, registry=registry)
    await service.start()
    sip_phones = SimulatedSipPhones(provisioned, service.sources["sip"].ports["udp"], period_s=period)  # type: ignore[attr-defined]
    await sip_phones.start()
    console.print(f"dashboard: http://127.0.0.1:{service.api_port}/  (while the demo runs)", highlight=False)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    notes: list[str] = []
    result = DemoResult(service.stats)
    changed = False
    started = time.monotonic()
    interactive = console.is_terminal
    with (
        Live(console=console, refresh_per_second=4, transient=False)
        if interactive
        else contextlib.nullcontext() as live
    ):
        last_line = 0.0
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if elapsed >= duration:
                break
            if not changed and elapsed >= duration / 2:
                changed = True
                for account, action, _ in PLANNED_CHANGES:
                    receipt, _ = service.deactivator.request(action, account, reason="demo")
                    done = await service.deactivator.process(receipt)
                    result.changed[account] = (
                        str(done.result.get("status_after"))
                        if done.status is ReceiptStatus.DONE
                        else "failed"
                    )
                    what = (
                        "collection stopped, data kept"
                        if action is Action.SUSPEND
                        else "collection stopped, data erased/anonymized per policy"
                    )
                    notes.append(
                        f"{account} set {done.result.get('status_after')}: {what} "
                        f"(confirmed in {done.result.get('stop_latency_ms')} ms, receipt {done.id})"
                    )
                    if not interactive:
                        console.print(f"event: {notes[-1]}", highlight=False)
            if live is not None:
                live.update(progress_table(service.stats, elapsed, duration, notes))
            elif elapsed - last_line >= 5:
                last_line = elapsed
                s = service.stats
                console.print(
                    f"[{elapsed:5.1f}s] devices seen {len(s.devices_seen)}, stored {s.stored} "
                    f"{dict(sorted(s.stored_by_kind.items()))}, quarantined {s.quarantined}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    await sip_phones.stop()
    await fleet.stop()
    await service.stop()
    await broker.stop()
    registry.close()
    return result


def status_summary(changed: dict[str, str]) -> list[str]:
    """What happened to the demo's accounts: only what actually happened, never the plan."""
    lines = []
    for account, _, planned in PLANNED_CHANGES:
        status = changed.get(account)
        if status is None:
            lines.append(
                f"{account} was not set {planned}: the demo stopped before halfway, "
                "so this status change did not happen (the account is still active)."
            )
        elif status == "failed":
            lines.append(
                f"{account}: setting it {planned} FAILED; see hookflash receipts list --account {account}"
            )
        elif status == "inactive":
            lines.append(f"{account} is inactive (its data stays).")
        elif status == "revoked":
            lines.append(f"{account} is revoked (its data was erased or anonymized).")
        else:
            lines.append(f"{account} is {status}.")
    return lines


@click.command()
@click.option(
    "--devices",
    type=click.IntRange(min=4, max=2000),
    default=50,
    show_default=True,
    help="Simulated devices: half SNMP ATAs, half MQTT phones.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=2),
    default=30,
    show_default=True,
    help="Seconds to run (Ctrl-C stops earlier).",
)
@click.option(
    "--period",
    type=click.FloatRange(min=0.2),
    default=2,
    show_default=True,
    help="Seconds between a device's reports.",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    show_default=True,
    help="Port of the dashboard on 127.0.0.1 (0: any free port).",
)
@data_dir_option
@fail_cleanly
def demo(devices: int, duration: float, period: float, port: int, data_dir: Path) -> None:
    """Collect from a simulated fleet on this machine; no external service needed. The NOC
    dashboard is served on 127.0.0.1 while it runs; its URL is printed first.

    Halfway through, one account is set inactive and another revoked."""
    result = asyncio.run(run_demo(data_dir, devices, duration, period, port))
    stats = result.stats
    console.print(
        f"\ndone: {len(stats.devices_seen)} devices seen, {stats.stored} records stored, "
        f"{stats.quarantined} payloads quarantined, {stats.dropped_in_flight} in-flight records dropped"
    )
    for line in status_summary(result.changed):
        console.print(line)
    console.print("try:")
    for cmd in (
        f"hookflash query --data-dir {data_dir} --kind call_quality --limit 10",
        f"hookflash query --data-dir {data_dir} --format json --account {INACTIVE_ACCOUNT}",
        f"hookflash accounts list --data-dir {data_dir}",
        f"hookflash rollout status --model HT812 --target 1.0.47.4 --data-dir {data_dir}",
        f"hookflash quarantine --data-dir {data_dir}",
        f"hookflash audit --data-dir {data_dir}",
    ):
        console.print(f"  {cmd}", highlight=False)
