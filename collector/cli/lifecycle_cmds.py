"""`hookflash accounts suspend|revoke|reactivate|set-status` and `hookflash devices remove`.

All go through the Deactivator, the same path the HTTP API uses: a receipt for every
request, confirmed stop from running collectors, erasure per policy on revoke, hooks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import click

from collector.cli.backend import BACKEND
from collector.cli.common import (
    config_option,
    data_dir_option,
    fail_cleanly,
    open_registry,
    open_store,
)
from collector.core.interfaces import AccountData
from collector.retention import load_policy
from collector.runtime.deactivation import Deactivator, action_for_status, build_deactivator
from collector.runtime.paths import store_path
from provisioning.models import AccountStatus, check_account_id, normalize_mac
from provisioning.receipts import Action, Receipt, ReceiptStatus

PENDING_EXIT = 3  # accepted and collection stopped, erasure not yet confirmed everywhere
_CONFIG_HELP = "Service config: its webhooks are notified and its retention policy applied."


def deactivator_for(data_dir: Path, config_path: Path | None) -> Deactivator:
    """The embedded store, and, when no collector is running, the remote stores the config
    names. A running collector erases its remote stores itself, between the sends of its
    spool (erasing from here could race a batch it is sending): the receipt stays pending
    until it has, and `run_requests` waits for that.

    With the registry in PostgreSQL, this host may hold no data dir of the collector's: then
    its embedded store is left to the running collector, which erases it like a remote store."""
    config = None
    if config_path is not None:
        from collector.config import load_config

        config = load_config(config_path)
        BACKEND.use(config.database_url, config.database_password_env)
    registry = open_registry(data_dir)
    local = BACKEND.for_data_dir(data_dir).url is None or store_path(data_dir).is_file()
    store = open_store(data_dir) if local else None
    holders: list[AccountData] = [store.sink, store.quarantine] if store is not None else []
    if config is None:  # the defaults, without importing the service's config models
        return build_deactivator(registry, holders, load_policy())
    policy = load_policy(config.retention_policy)
    remote_end = None
    if store is not None and config.influx.enabled and not registry.live_collectors():
        from collector.runtime.sweeper import RetentionSweeper  # imported here: the client only when used
        from collector.sinks.influx import InfluxSink

        influx = InfluxSink.from_config(config.influx, list(policy.classes))
        remote_end = RetentionSweeper(policy, store, registry, remote=[influx]).end_revocation
    return build_deactivator(
        registry, holders, policy, ack_timeout_s=config.ack_timeout_s, remote_end=remote_end
    )


def describe(receipt: Receipt) -> str:
    r = receipt.result
    target = receipt.device_id or receipt.account_id
    if receipt.status is ReceiptStatus.FAILED:
        return f"{target}: {receipt.action.value} FAILED: {r.get('error')} (receipt {receipt.id})"
    parts = [f"{target}: {r.get('status_before')} -> {r.get('status_after')}"]
    if r.get("collection_stopped"):
        acked = r.get("acknowledged_by", {})
        if not r.get("changed"):
            parts.append("collection was already stopped")
        elif acked:
            parts.append(
                f"collection stopped, confirmed by {len(acked)} running collector(s) "
                f"in {r.get('stop_latency_ms')} ms"
            )
        else:
            parts.append("collection stopped (no collector running)")
        if r.get("unacknowledged"):
            parts.append(f"NOT confirmed by {', '.join(r['unacknowledged'])}")
    for sink, per_class in r.get("erased", {}).items():
        if isinstance(per_class, str):  # "failed: <reason>", "outstanding: …", or a store's own retention
            parts.append(f"{sink} erasure {per_class}")
        else:
            parts.append(f"{sink} ended " + ", ".join(f"{c} {n}" for c, n in per_class.items()))
    if receipt.status is ReceiptStatus.PENDING:
        outstanding = ", ".join(r.get("outstanding", []))
        parts.append(f"PENDING: erasure outstanding in {outstanding}; the running service retries it")
    return "; ".join(parts) + f" (receipt {receipt.id})"


def run_requests(
    deactivator: Deactivator,
    action: Action,
    targets: list[str],
    reason: str,
    request_id: str | None,
    fmt: str,
    device: bool = False,
) -> None:
    failed = pending = 0
    for n, target in enumerate(targets):
        rid = f"{request_id}-{n}" if request_id and len(targets) > 1 else request_id
        account = deactivator_account(deactivator, target) if device else target
        receipt, _ = deactivator.request(action, account, reason, rid, target if device else None)
        done = asyncio.run(deactivator.process(receipt))
        if done.status is ReceiptStatus.PENDING and deactivator.registry.live_collectors():
            done = wait_while_pending(deactivator, done)
        failed += done.status is ReceiptStatus.FAILED
        pending += done.status is ReceiptStatus.PENDING
        if fmt == "json":
            click.echo(json.dumps(done.model_dump(mode="json"), sort_keys=True))
        else:
            click.echo(describe(done), err=done.status is not ReceiptStatus.DONE)
    if failed:
        raise SystemExit(1)
    if pending:
        raise SystemExit(PENDING_EXIT)


def wait_while_pending(deactivator: Deactivator, receipt: Receipt, timeout_s: float = 30.0) -> Receipt:
    """The running collector finishes an erasure left outstanding here: wait for it."""
    deadline = time.monotonic() + timeout_s
    while receipt.status is ReceiptStatus.PENDING and time.monotonic() < deadline:
        time.sleep(0.1)
        receipt = deactivator.receipts.get(receipt.id)
    return receipt


def deactivator_account(deactivator: Deactivator, device_id: str) -> str:
    for dev in deactivator.registry.devices():
        if dev.id == device_id:
            return dev.account_id
    raise LookupError(f"no such device: {device_id!r}")


def read_ids(path: Path, check: Callable[[str], str]) -> list[str]:
    """One id per line; blank lines and # comments skipped; any bad line rejects the file."""
    ids, errors = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            ids.append(check(text))
        except ValueError as exc:
            errors.append(f"  {path.name}:line {number}: {exc}")
    if errors:
        raise ValueError(f"{len(errors)} bad line(s) in {path}, nothing done:\n" + "\n".join(errors))
    return ids


def _lifecycle_command(action: Action, help_text: str) -> click.Command:
    @click.command(name=action.value, help=help_text)
    @click.argument("accounts", nargs=-1)
    @click.option(
        "--from-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A file with one account id per line (# comments allowed).",
    )
    @click.option("--reason", default="", help="Recorded in the receipt and the audit log.")
    @click.option("--request-id", help="Idempotency key: repeating it returns the first receipt.")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
    @config_option(_CONFIG_HELP)
    @data_dir_option
    @fail_cleanly
    def command(
        accounts: tuple[str, ...],
        from_file: Path | None,
        reason: str,
        request_id: str | None,
        fmt: str,
        config_path: Path | None,
        data_dir: Path,
    ) -> None:
        targets = [check_account_id(a) for a in accounts]
        if from_file is not None:
            targets += read_ids(from_file, check_account_id)
        if not targets:
            raise click.UsageError("name at least one account, or --from-file FILE")
        run_requests(deactivator_for(data_dir, config_path), action, targets, reason, request_id, fmt)

    return command


suspend = _lifecycle_command(Action.SUSPEND, "Set accounts inactive: collection stops at once; data is kept.")
revoke = _lifecycle_command(
    Action.REVOKE,
    "Revoke accounts: collection stops at once; data is erased or anonymized per the retention policy.",
)
reactivate = _lifecycle_command(Action.REACTIVATE, "Set accounts active again; nothing erased comes back.")


@click.command("set-status")
@click.argument("account_id")
@click.argument("status", type=click.Choice([s.value for s in AccountStatus]))
@click.option("--reason", default="", help="Recorded in the receipt and the audit log.")
@config_option(_CONFIG_HELP)
@data_dir_option
@fail_cleanly
def set_status(account_id: str, status: str, reason: str, config_path: Path | None, data_dir: Path) -> None:
    """Change an account's status (same as suspend / revoke / reactivate)."""
    action = action_for_status(AccountStatus(status))
    run_requests(
        deactivator_for(data_dir, config_path), action, [check_account_id(account_id)], reason, None, "text"
    )


@click.command("remove")
@click.argument("device_ids", nargs=-1, required=True)
@click.option("--reason", default="")
@config_option(_CONFIG_HELP)
@data_dir_option
@fail_cleanly
def remove_device(device_ids: tuple[str, ...], reason: str, config_path: Path | None, data_dir: Path) -> None:
    """Remove devices from the registry: collection from them stops at once."""
    ids = [normalize_mac(d) for d in device_ids]
    run_requests(
        deactivator_for(data_dir, config_path), Action.REMOVE_DEVICE, ids, reason, None, "text", device=True
    )
